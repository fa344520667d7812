/* Sou: reading QR codes with the camera — `SouScan`, for every page that scans (the point
 * of sale, /scan).
 *
 * Frames of the rear camera are decoded on the device by the vendored zxing-wasm (ZXing-C++
 * compiled to WebAssembly, /static/vendor/zxing-wasm/, loaded on first use; Chromium on
 * Linux has no BarcodeDetector). Where it cannot load, or finds nothing for a while, a
 * downscaled JPEG of a frame goes to the node, which decodes it with zxing-cpp
 * (POST /api/v1/qr/decode). Typing the short code is the last resort: `SouScan.fromText`.
 *
 *   SouScan.start(video, options) -> Promise<boolean>: true once the camera shows, false
 *       when it cannot (options.onError was told why). options:
 *     onCode(text, found)  a code was read (or typed): the camera is stopped first;
 *                          found = { text, via: "device" | "server" | "typed",
 *                                    url: the link or null, own: a link of this node,
 *                                    code: a short code or null }
 *     onError(message)     why the camera or the decoder cannot help, in the reader's words
 *     messages             those words: denied, noCamera, insecure, unavailable, offline
 *     origin               the node's public origin (links of it are `own`), besides
 *                          the page's own
 *     decodeUrl, decoderBase   where the server decoder and the vendored one are
 *     everyMs, serverAfterMs, serverEveryMs   how often to look, when to ask the server
 *   The page's data block gives all but the handlers: `pos.scanning.scanner_data`.
 *   SouScan.stop()           releases the camera (also on leaving the page)
 *   SouScan.fromText(text)   a link or short code typed by hand: `found` (and onCode of the
 *                            last start is called with it), or null if it is neither
 *   SouScan.parse(text)      what `found` says of a text, without calling anything
 *
 * Like the other scripts it holds no text of its own: the page gives its messages in a
 * <script type="application/json" id="page-data"> block. The /scan page's code is at the
 * end, run only on that page.
 */
"use strict";

const SouScan = (() => {
  const DEFAULTS = {
    decodeUrl: "/api/v1/qr/decode",
    decoderBase: "/static/vendor/zxing-wasm/",
    origin: "",
    messages: {},
    everyMs: 200, // five looks a second: prompt, and light on a cheap phone
    serverAfterMs: 2500, // nothing found on the device by then: ask the server too
    serverEveryMs: 1500,
    // A short code as people type it: letters, digits and dashes (spaces are dropped).
    codePattern: "^[A-Za-z0-9][A-Za-z0-9-]{3,63}$",
  };
  const SERVER_SIDE = 1024; // pixels on the longest side of a frame sent to the node
  const SERVER_BYTES = 512 * 1024; // what the node accepts at most
  let session = null; // the camera being read: at most one at a time
  let handlers = { ...DEFAULTS }; // the options of the last start, for `fromText`
  let decoderLoading = null;

  // -- the decoder on the device -----------------------------------------------------------

  function loadDecoder(base) {
    if (decoderLoading) return decoderLoading;
    decoderLoading = new Promise((resolve, reject) => {
      if (typeof WebAssembly !== "object") throw new Error("no WebAssembly");
      // The writer build (qr.js) names its global the same: only a reader will do.
      if (window.ZXingWASM && window.ZXingWASM.readBarcodes) return resolve(window.ZXingWASM);
      const script = document.createElement("script");
      script.src = base + "zxing_reader.js";
      script.onload = () =>
        window.ZXingWASM && window.ZXingWASM.readBarcodes
          ? resolve(window.ZXingWASM) : reject(new Error("no decoder"));
      script.onerror = () => reject(new Error("the decoder did not load"));
      document.head.appendChild(script);
    }).then(async (zxing) => {
      // The package would fetch its .wasm from a CDN: the node serves it instead.
      const wasmUrl = new URL(base + "zxing_reader.wasm", location.href).href;
      await zxing.prepareZXingModule({
        overrides: { locateFile: (path, prefix) => (path.endsWith(".wasm") ? wasmUrl : prefix + path) },
        fireImmediately: true,
      });
      return zxing;
    });
    // A failure is not kept: the next start tries again (the link may be back).
    decoderLoading.catch(() => { decoderLoading = null; });
    return decoderLoading;
  }

  async function readOnDevice(zxing, canvas) {
    const context = canvas.getContext("2d", { willReadFrequently: true });
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
    const results = await zxing.readBarcodes(pixels, {
      formats: ["QRCode"], tryHarder: true, maxNumberOfSymbols: 1,
    });
    const good = results.find((r) => r.isValid && r.text);
    return good ? good.text : null;
  }

  // -- the decoder of the node -------------------------------------------------------------

  function csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function jpegOf(canvas, quality) {
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
  }

  /** The text the node reads in this frame; null if it sees no code. A refusal of the
   *  node (signed out, say) is thrown with its message. */
  async function readOnServer(current, frame) {
    const canvas = scaled(frame, SERVER_SIDE);
    let picture = await jpegOf(canvas, 0.85);
    if (picture && picture.size > SERVER_BYTES) picture = await jpegOf(canvas, 0.6);
    if (!picture || picture.size > SERVER_BYTES) return null;
    const response = await fetch(current.options.decodeUrl, {
      method: "POST",
      headers: { "Content-Type": "image/jpeg", "X-CSRF-Token": csrf(),
                 "Accept-Language": document.documentElement.lang },
      body: picture,
      credentials: "same-origin",
    });
    let answer = {};
    try {
      answer = await response.json();
    } catch (notJson) { // a proxy's error page, say
      answer = {};
    }
    if (response.ok) return answer.text || null;
    if (answer.error === "no_code_found") return null;
    const refused = new Error(answer.message || response.statusText);
    refused.refused = true;
    throw refused;
  }

  // -- frames ------------------------------------------------------------------------------

  function scaled(source, longest) {
    const width = source.videoWidth || source.width, height = source.videoHeight || source.height;
    const ratio = Math.min(1, longest / Math.max(width, height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(width * ratio));
    canvas.height = Math.max(1, Math.round(height * ratio));
    canvas.getContext("2d", { willReadFrequently: true })
      .drawImage(source, 0, 0, canvas.width, canvas.height);
    return canvas;
  }

  async function look(current) {
    if (current !== session) return;
    const { video, options } = current;
    if (video.readyState >= 2 && video.videoWidth > 0) {
      const frame = scaled(video, 1280);
      let text = null, via = "device";
      if (current.decoder) {
        try {
          text = await readOnDevice(current.decoder, frame);
        } catch (failed) { // a decoder that breaks once is not trusted again
          current.decoder = null;
          current.deviceFailed = true;
        }
      }
      if (!text && serverDue(current)) {
        current.lastServer = Date.now();
        via = "server";
        text = await askServer(current, frame);
      }
      if (current !== session) return;
      if (text) return deliver(text, via);
    }
    current.timer = setTimeout(() => look(current), options.everyMs);
  }

  function serverDue(current) {
    if (current.serverRefused) return false;
    const now = Date.now();
    const waited = current.deviceFailed || now - current.started >= current.options.serverAfterMs;
    return waited && now - current.lastServer >= current.options.serverEveryMs;
  }

  async function askServer(current, frame) {
    try {
      return await readOnServer(current, frame);
    } catch (failed) {
      if (failed.refused) { // the node says no (signed out...): asking again will not help
        current.serverRefused = true;
        say(current.options, failed.message);
      } else if (!current.offlineSaid) { // no connection: say so once, keep trying
        current.offlineSaid = true;
        say(current.options, current.options.messages.offline);
      }
      return null;
    }
  }

  // -- the camera --------------------------------------------------------------------------

  function say(options, message) {
    if (options.onError) options.onError(message || "");
  }

  function cameraProblem(error, messages) {
    const name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") return messages.denied;
    if (name === "NotFoundError" || name === "OverconstrainedError") return messages.noCamera;
    return messages.unavailable;
  }

  async function start(video, given) {
    stop();
    const options = { ...DEFAULTS, ...given, messages: { ...(given && given.messages) } };
    handlers = options;
    const media = navigator.mediaDevices;
    if (!window.isSecureContext || !media || !media.getUserMedia) {
      say(options, window.isSecureContext ? options.messages.unavailable : options.messages.insecure);
      return false;
    }
    const current = { video, options, started: Date.now(), lastServer: 0, decoder: null };
    session = current;
    // The decoder loads while the camera opens; until it is there, or if it never is,
    // the server is asked as soon as `serverDue` allows.
    loadDecoder(options.decoderBase).then(
      (zxing) => { current.decoder = zxing; },
      () => { current.deviceFailed = true; },
    );
    let stream;
    try {
      stream = await media.getUserMedia({
        audio: false,
        video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
      });
    } catch (error) {
      if (session === current) session = null;
      say(options, cameraProblem(error, options.messages));
      return false;
    }
    if (session !== current) { // stopped meanwhile
      stream.getTracks().forEach((track) => track.stop());
      return false;
    }
    current.stream = stream;
    video.setAttribute("playsinline", "");
    video.muted = true;
    video.srcObject = stream;
    try {
      await video.play();
    } catch (error) { // autoplay refused: the frames still arrive once the user taps
      video.controls = true;
    }
    if (session !== current) return false;
    look(current);
    return true;
  }

  function stop() {
    const current = session;
    session = null;
    if (!current) return;
    clearTimeout(current.timer);
    if (current.stream) current.stream.getTracks().forEach((track) => track.stop());
    current.video.srcObject = null;
  }

  function deliver(text, via) {
    const options = session ? session.options : handlers;
    stop();
    const found = parse(text, via, options);
    if (options.onCode) options.onCode(found.text, found);
    return found;
  }

  // -- what a code says --------------------------------------------------------------------

  function parse(text, via, options) {
    const settings = options || handlers;
    const raw = String(text == null ? "" : text).trim();
    const found = { text: raw, via: via || "typed", url: null, own: false, code: null };
    if (/^https?:\/\//i.test(raw)) {
      try {
        const url = new URL(raw);
        const ours = [location.origin];
        if (settings.origin) ours.push(new URL(settings.origin, location.href).origin);
        found.url = url.href;
        found.own = ours.includes(url.origin);
      } catch (notUrl) { // "https://" and nothing sensible: neither a link nor a code
        found.url = null;
      }
      return found;
    }
    const compact = raw.replace(/\s+/g, "");
    if (new RegExp(settings.codePattern).test(compact)) found.code = compact;
    return found;
  }

  function fromText(text) {
    const found = parse(text, "typed", handlers);
    if (!found.url && !found.code) return null;
    return deliver(found.text, "typed");
  }

  window.addEventListener("pagehide", stop);

  /** Load the decoder now, while the node answers: a later start needs no network. */
  function ready(options = {}) {
    return loadDecoder({ ...DEFAULTS, ...options }.decoderBase);
  }

  return { start, stop, ready, fromText, parse: (text) => parse(text, "typed", handlers) };
})();

// -- the /scan page: any code of the node, opened if it is one of its links ----------------

(() => {
  const dataNode = document.getElementById("page-data");
  const data = dataNode ? JSON.parse(dataNode.textContent) : {};
  if (data.page !== "scan") return;
  const M = data.messages || {};
  const video = document.getElementById("scan-video");
  const status = document.getElementById("scan-status");
  const result = document.getElementById("scan-result");
  const again = document.getElementById("scan-again");
  const typed = document.getElementById("scan-typed");
  video.style.width = "100%"; // the camera's frames are wider than a phone

  function tell(message, kind) {
    status.textContent = message;
    status.className = kind ? "flash " + kind : "muted";
  }

  function show(text, found) {
    result.hidden = false;
    result.dataset.via = found.via;
    document.getElementById("scan-text").textContent = text;
    again.hidden = false;
    video.hidden = true;
    if (found.own) {
      tell(M.opening);
      location.assign(found.url);
    } else if (found.url) {
      tell(M.foreign, "error");
    } else {
      tell(found.code ? M.shortCode : M.read);
    }
  }

  async function scan() {
    result.hidden = true;
    again.hidden = true;
    video.hidden = false;
    tell(M.starting);
    const options = { ...data.scanner, onCode: show, onError: (message) => tell(message, "error") };
    if (await SouScan.start(video, options)) tell(M.looking);
  }

  again.addEventListener("click", scan);
  Sou.sends(typed, () => {
    const field = typed.elements.namedItem("code");
    if (SouScan.fromText(field.value) === null) tell(M.badCode, "error");
  });
  scan();
})();
