/* Sou: drawing QR codes on the device — `SouQR`, for the pages that must show a code even
 * when the node cannot be reached (a phone in a dead zone showing the payment
 * authorisation it has just signed).
 *
 * Codes are drawn by the vendored zxing-wasm writer (ZXing-C++ and zint compiled to
 * WebAssembly, /static/vendor/zxing-wasm/) as the node draws them (web/qr.py): error
 * correction M, a quiet zone of 4 modules, black on white, one SVG path scaled by its
 * viewBox to whatever box holds it.
 *
 *   SouQR.ready(base?) -> Promise<void>   loads the writer and compiles its .wasm, once; both
 *       stay in memory, so call it while the network is there and later drawings need none.
 *       A failure is not kept: the next call tries again. base: where the vendored files
 *       are (default /static/vendor/zxing-wasm/).
 *   SouQR.svg(text) -> Promise<string>    the code of `text` as an SVG document (a viewBox,
 *       no width or height). Rejects when the text cannot be encoded (too long).
 *   SouQR.show(img, text) -> Promise<void>   puts that SVG in an <img> as a data: URL (a
 *       Content-Security-Policy needs `img-src data:`; compiling the .wasm needs
 *       `'wasm-unsafe-eval'` in `script-src`). The page gives the image its alt text.
 *
 * Like the other scripts it holds no text of its own and runs nothing when loaded.
 */
"use strict";

const SouQR = (() => {
  const DEFAULT_BASE = "/static/vendor/zxing-wasm/";
  const QUIET_ZONE = 4; // modules of white border: what the standard asks, and readers need
  const WRITER = { format: "QRCode", options: "ecLevel=M" };
  let loading = null; // the writer module, once asked for

  // -- the writer --------------------------------------------------------------------------

  /** The writer's script, run; it hands back the package's namespace. */
  function loadScript(base) {
    return new Promise((resolve, reject) => {
      if (typeof WebAssembly !== "object") throw new Error("no WebAssembly");
      // The reader and the writer builds both name their global `ZXingWASM`: the reader's
      // (scan.js) keeps the name, the writer is kept here only.
      const before = window.ZXingWASM;
      const script = document.createElement("script");
      script.src = base + "zxing_writer.js";
      script.onload = () => {
        const zxing = window.ZXingWASM;
        window.ZXingWASM = before;
        if (zxing && typeof zxing.writeBarcode === "function") resolve(zxing);
        else reject(new Error("no QR code writer"));
      };
      script.onerror = () => reject(new Error("the QR code writer did not load"));
      document.head.appendChild(script);
    });
  }

  /** The writer with its .wasm compiled: fetched from the node (the package would ask a
   * CDN), then held by the package in memory for every later drawing. */
  async function loadWriter(base) {
    const zxing = await loadScript(base);
    const wasmUrl = new URL(base + "zxing_writer.wasm", location.href).href;
    try {
      await zxing.prepareZXingModule({
        overrides: { locateFile: (path, prefix) => (path.endsWith(".wasm") ? wasmUrl : prefix + path) },
        fireImmediately: true,
      });
    } catch (error) {
      zxing.purgeZXingModule(); // the package keeps a failed module: forget it for a retry
      throw error;
    }
    return zxing;
  }

  /** The writer, loaded on first use and kept. */
  function writer(base = DEFAULT_BASE) {
    if (!loading) {
      loading = loadWriter(base);
      loading.catch(() => { loading = null; }); // the link may be back next time
    }
    return loading;
  }

  async function ready(base = DEFAULT_BASE) {
    await writer(base);
  }

  // -- the drawing -------------------------------------------------------------------------

  /** The path of the dark modules of a symbol (one byte a module, dark below 128), a run of
   * dark modules of a row a rectangle, shifted by the quiet zone. */
  function darkPath({ data, width, height }) {
    const runs = [];
    for (let y = 0; y < height; y++) {
      let x = 0;
      while (x < width) {
        if (data[y * width + x] >= 128) { x++; continue; }
        const start = x;
        while (x < width && data[y * width + x] < 128) x++;
        runs.push(`M${start + QUIET_ZONE} ${y + QUIET_ZONE}h${x - start}v1h-${x - start}z`);
      }
    }
    return runs.join("");
  }

  async function svg(text) {
    const zxing = await writer();
    const written = await zxing.writeBarcode(String(text), WRITER);
    if (written.error) throw new Error(written.error);
    const width = written.symbol.width + 2 * QUIET_ZONE;
    const height = written.symbol.height + 2 * QUIET_ZONE;
    // crispEdges: no grey seams between the runs however the image is scaled.
    return (
      `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" ` +
      `shape-rendering="crispEdges"><rect width="${width}" height="${height}" fill="#fff"/>` +
      `<path fill="#000" d="${darkPath(written.symbol)}"/></svg>`
    );
  }

  async function show(img, text) {
    const drawn = await svg(text);
    await new Promise((resolve, reject) => {
      const settled = new AbortController(); // whichever comes, both listeners go
      const settle = (outcome) => () => { settled.abort(); outcome(); };
      img.addEventListener("load", settle(resolve), { signal: settled.signal });
      img.addEventListener("error", settle(() => reject(new Error("the QR code did not show"))),
        { signal: settled.signal });
      img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(drawn);
    });
  }

  return { ready, svg, show };
})();
