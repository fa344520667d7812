/* Sou: the counter — the shop's point of sale, its day (refunds), and the customer's pay
 * page that every counter code opens.
 *
 * Data and messages come from the page's <script type="application/json" id="page-data">;
 * amounts are integer cents (Sou.parseCents, Sou.formatCents in sou.js). Payments and refunds
 * are signed on this device with its key (Sou.signedOrder), as on the send page.
 */
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const M = data.messages || {};
  const money = { decimal: data.decimal, group: data.group, currency: data.currency };
  const parseCents = (text) =>
    Sou.parseCents(text, { maxAmount: data.maxAmount, messages: M, ...money });
  const formatCents = (cents) => Sou.formatCents(cents, money);
  const timeOf = (ms) => new Date(ms).toLocaleTimeString(document.documentElement.lang,
    { hour: "2-digit", minute: "2-digit" });

  /** This device's key of the member, made and registered first if it has none; where the
   *  page says it may not (`mayRegisterKeys`: a device paired with a shop's counter got its
   *  key when paired, and registers none), a refusal saying so instead. */
  async function ensureKey() {
    if (await Sou.deviceKey(data.member)) return;
    if (data.mayRegisterKeys === false) throw new Error(data.unpaired);
    await Sou.createDeviceKey(data.member, data.label);
  }

  /** Sign `fields` with this device's key (made and registered first if it has none, or if
   *  the node no longer knows it: revoked from another device) and send them. */
  async function signAndSend(path, fields) {
    await ensureKey();
    try {
      return await Sou.api("POST", path, await Sou.signedOrder(data.member, fields));
    } catch (error) {
      if (error.code !== "revoked_key" && error.code !== "unknown_key") throw error;
      if (data.mayRegisterKeys === false) throw new Error(data.unpaired);
      await Sou.createDeviceKey(data.member, data.label);
      return Sou.api("POST", path, await Sou.signedOrder(data.member, fields));
    }
  }

  // -- the point of sale -------------------------------------------------------------------

  function counterPage() {
    const form = document.getElementById("invoice-form");
    const amount = form.elements.amount;
    const waiting = document.getElementById("waiting");
    const paid = document.getElementById("paid");
    const state = document.getElementById("waiting-state");
    const live = document.getElementById("live");
    const waitingText = state.textContent;
    let current = null; // the invoice on the screen
    let expiryTimer = null;
    let takings = data.takings;

    document.getElementById("keypad").addEventListener("click", (event) => {
      const key = event.target.dataset && event.target.dataset.key;
      if (!key) return;
      amount.value = key === "⌫" ? amount.value.slice(0, -1) : amount.value + key;
    });

    function showPaid(sale) {
      clearTimeout(expiryTimer);
      waiting.hidden = true;
      document.getElementById("paid-text").textContent = Sou.fill(M.paidBy, {
        amount: formatCents(sale.amount), payer: sale.customer_name,
      });
      paid.hidden = false;
      delete paid.dataset.queued;
      current = null;
    }

    function reset() {
      clearTimeout(expiryTimer);
      current = null;
      waiting.hidden = true;
      paid.hidden = true;
      form.hidden = false;
      form.reset();
      amount.focus();
    }

    Sou.sends(form, async () => {
      const invoice = await Sou.busy(form, () => {
        const body = { amount: parseCents(amount.value) };
        const label = form.elements.label.value.trim();
        if (label) body.label = label;
        return Sou.api("POST", "/api/v1/pos/invoices", body);
      });
      if (!invoice) return;
      current = invoice;
      document.getElementById("qr").src = "/pos/invoices/" + encodeURIComponent(invoice.id) + "/qr.svg";
      document.getElementById("qr").dataset.url = invoice.url;
      document.getElementById("waiting-amount").textContent = formatCents(invoice.amount);
      document.getElementById("waiting-label").textContent = invoice.label || "";
      document.getElementById("waiting-expiry").textContent =
        Sou.fill(M.expiresAt, { time: timeOf(invoice.expires_ms) });
      state.textContent = waitingText;
      form.hidden = true;
      paid.hidden = true;
      waiting.hidden = false;
      expiryTimer = setTimeout(() => { state.textContent = M.expired; }, invoice.expires_ms - Date.now());
    });

    document.getElementById("cancel").addEventListener("click", async () => {
      if (current) {
        try {
          await Sou.api("POST", "/api/v1/pos/invoices/" + encodeURIComponent(current.id) + "/cancel");
        } catch (error) {
          if (error.code === "invoice_paid") return checkCurrent();
          state.textContent = error.message;
          return;
        }
      }
      reset();
    });
    document.getElementById("next-sale").addEventListener("click", reset);

    function addSale(sale) {
      const list = document.getElementById("sales");
      if (list.querySelector('[data-transfer="' + sale.transfer_id + '"]')) return false;
      const item = document.createElement("li");
      item.dataset.transfer = sale.transfer_id;
      item.textContent = timeOf(sale.created_ms) + " · " + formatCents(sale.amount) + " · " + sale.customer_name;
      list.prepend(item);
      takings += sale.amount;
      document.getElementById("takings").textContent = formatCents(takings);
      return true;
    }

    /** After a reconnection: was the invoice on the screen paid meanwhile? */
    async function checkCurrent() {
      if (!current) return;
      const invoice = await Sou.api("GET", "/api/v1/pos/invoices/" + encodeURIComponent(current.id));
      if (invoice.state === "paid") {
        showPaid({ amount: invoice.amount, customer_name: invoice.payer_name });
      }
    }

    // EventSource reconnects by itself, sending the last event id it saw.
    const feed = new EventSource("/api/v1/pos/events");
    feed.addEventListener("ready", () => {
      live.textContent = M.live;
      live.dataset.state = "live";
      checkCurrent().catch(() => {});
    });
    feed.addEventListener("sale", (event) => {
      const sale = JSON.parse(event.data);
      const fresh = addSale(sale);
      if (current && sale.invoice === current.id) showPaid(sale);
      else if (fresh && !sale.invoice && waiting.hidden) {
        document.getElementById("paid-text").textContent = Sou.fill(M.received, {
          amount: formatCents(sale.amount), payer: sale.customer_name,
        });
        paid.hidden = false;
        form.hidden = false;
      }
    });
    feed.addEventListener("cancelled", (event) => {
      const { invoice } = JSON.parse(event.data);
      if (current && current.id === invoice) state.textContent = M.cancelled;
    });
    feed.onerror = () => {
      live.textContent = M.reconnecting;
      live.dataset.state = "reconnecting";
    };
    collectCodes(showPaid);
    keepForOffline();
    // The key that signs collections taken offline is made while the node answers.
    ensureKey().catch(() => {});
  }

  /** A customer's code, scanned or typed: who authorises how much, then the shop signs a
   *  collection of the amount due (at most that). */
  function collectCodes(showPaid) {
    const form = document.getElementById("collect-form");
    const input = form.elements.code;
    const found = document.getElementById("collect-found");
    const video = document.getElementById("scan-video");
    const scan = document.getElementById("scan-start");
    let scanned = null;

    const codeOf = (text) => {
      const trimmed = String(text).trim();
      const link = /\/c\/([A-Za-z0-9-]{8,12})(?:[?#].*)?$/.exec(trimmed);
      return (link ? link[1] : trimmed).toUpperCase().replace(/[^A-Z0-9]/g, "");
    };

    async function lookUp(text) {
      found.hidden = true;
      if (/#o=/.test(String(text))) {
        scanned = await Sou.busy(form, () => offlineCode(String(text)));
        if (!scanned) return;
        document.getElementById("collect-who").textContent = Sou.fill(M.authorisesOffline, {
          payer: scanned.payer_name, cap: formatCents(scanned.cap),
        });
        found.hidden = false;
        document.getElementById("collect-amount").focus();
        return;
      }
      scanned = await Sou.busy(form, () =>
        Sou.api("GET", "/api/v1/pos/authorisations/" + encodeURIComponent(codeOf(text))));
      if (!scanned) return;
      document.getElementById("collect-who").textContent = Sou.fill(M.authorises, {
        payer: scanned.payer_name, cap: formatCents(scanned.cap),
      });
      const typed = document.getElementById("amount").value.trim();
      if (typed) document.getElementById("collect-amount").value = typed;
      found.hidden = false;
      document.getElementById("collect-amount").focus();
    }

    document.getElementById("code-look").addEventListener("click", () => lookUp(input.value));
    if (typeof SouScan !== "undefined") {
      // Loaded while the node answers, so that codes are read where it does not.
      SouScan.ready(data.scanner).then(() => { scan.dataset.decoder = "ready"; }, () => {});
      scan.hidden = false;
      scan.addEventListener("click", () => {
        video.hidden = false;
        SouScan.start(video, {
          ...data.scanner,
          onCode(text) {
            SouScan.stop();
            video.hidden = true;
            input.value = codeOf(text);
            lookUp(text);
          },
          onError() {
            video.hidden = true;
            input.placeholder = M.scanFailed;
            input.focus();
          },
        });
      });
    }
    // Taken over before the look-up below, which keeps the button disabled while it runs.
    Sou.sends(form, async () => {
      if (!scanned) return lookUp(input.value);
      if (scanned.offline) {
        const queued = await Sou.busy(form, () => queueOffline(scanned));
        if (!queued) return;
        showPaid({ amount: queued.amount, customer_name: scanned.payer_name });
        document.getElementById("paid-text").textContent += " " + M.queued;
        document.getElementById("paid").dataset.queued = queued.id;  // until the node says
        scanned = null;
        found.hidden = true;
        form.reset();
        flushQueue();
        return;
      }
      const done = await Sou.busy(form, () => {
        const cents = parseCents(document.getElementById("collect-amount").value);
        if (cents > scanned.cap) throw new Error(Sou.fill(M.overCap, { cap: formatCents(scanned.cap) }));
        const expires = Math.min(Math.floor(Date.now() / 1000) + 300, Math.floor(scanned.expires_ms / 1000));
        return signAndSend("/api/v1/pos/collections", {
          kind: "collection", from: scanned.payer, to: "member:" + data.member, amount: cents,
          currency: data.currency, auth: scanned.auth, auth_sig: scanned.auth_sig, expires,
        });
      });
      if (!done) return;
      showPaid({ amount: done.amount, customer_name: scanned.payer_name });
      scanned = null;
      found.hidden = true;
      form.reset();
    });
    if (input.value) lookUp(input.value);
    showQueue();
    window.addEventListener("online", flushQueue);
    setInterval(flushQueue, 15000);
    flushQueue();
  }

  // -- offline: the shop's side -------------------------------------------------------------
  // A code made offline carries the customer's authorisation and the certificate the node
  // signed for their device: checked here with the node's public key alone, the collection
  // is signed by this device and queued (IndexedDB: kept across reloads), then sent in order
  // once the node answers. The node applies each once (the authorisation's one-time token).

  const unb64 = (text) => {
    const plain = text.replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(plain + "===".slice((plain.length + 3) % 4)), (c) => c.charCodeAt(0));
  };

  async function verifies(publicKey, signature, bytes) {
    const key = await crypto.subtle.importKey("raw", unb64(publicKey), { name: "Ed25519" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "Ed25519" }, key, unb64(signature), bytes);
  }

  /** What an offline code authorises, checked on this device; an Error saying why not. */
  async function offlineCode(text) {
    let code;
    try {
      code = JSON.parse(new TextDecoder().decode(unb64(text.split("#o=")[1])));
    } catch (damaged) {
      throw new Error(M.offlineDamaged);
    }
    const { sig, ...fields } = code.c || {};
    const certified = new TextEncoder().encode(Sou.canonical({ ...fields, kind: "allowance", node: data.node }));
    if (!sig || !(await verifies(data.nodeKey, sig, certified))) throw new Error(M.offlineForged);
    const bytes = unb64(code.a);
    const auth = JSON.parse(new TextDecoder().decode(bytes));
    if (!(await verifies(fields.public_key, code.s, bytes)) || auth.key !== fields.key
        || auth.from !== "member:" + fields.member || auth.node !== data.node) {
      throw new Error(M.offlineForged);
    }
    const now = Date.now() / 1000;
    if (auth.expires <= now || fields.expires <= now) throw new Error(M.offlineExpired);
    if (auth.to && auth.to !== "member:" + data.member) throw new Error(M.offlineOtherShop);
    const held = (await queued()).filter((q) => q.cert === fields.id && q.state !== "failed");
    const left = Math.min(auth.cap, fields.cap - held.reduce((n, q) => n + q.amount, 0));
    if (left <= 0) throw new Error(M.offlineSpent);
    return { offline: true, payer: auth.from, payer_name: fields.name, cap: left, cert: fields.id,
             member: fields.member, auth: code.a, auth_sig: code.s, expires: auth.expires };
  }

  function queueStore(mode, work) {
    return new Promise((resolve, reject) => {
      const opening = indexedDB.open("sou-pos", 1);
      opening.onupgradeneeded = () => opening.result.createObjectStore("queue", { keyPath: "id", autoIncrement: true });
      opening.onerror = () => reject(opening.error);
      opening.onsuccess = () => {
        const tx = opening.result.transaction("queue", mode);
        const request = work(tx.objectStore("queue"));
        tx.oncomplete = () => resolve(request.result);
        tx.onerror = () => reject(tx.error);
      };
    });
  }
  const queued = () => queueStore("readonly", (store) => store.getAll());
  const putQueued = (entry) => queueStore("readwrite", (store) => store.put(entry));
  const dropQueued = (id) => queueStore("readwrite", (store) => store.delete(id));

  async function queueOffline(found) {
    const cents = parseCents(document.getElementById("collect-amount").value);
    if (cents > found.cap) throw new Error(Sou.fill(M.overCap, { cap: formatCents(found.cap) }));
    await ensureKey();
    const envelope = await Sou.signedOrder(data.member, {
      kind: "collection", from: "escrow:offline:" + found.member, to: "member:" + data.member,
      amount: cents, currency: data.currency, auth: found.auth, auth_sig: found.auth_sig,
      expires: Math.min(Math.floor(Date.now() / 1000) + 86400, found.expires),
    });
    const entry = { envelope, amount: cents, payer: found.payer_name, cert: found.cert,
                    made: Date.now(), state: "pending" };
    entry.id = await putQueued(entry);
    showQueue();
    return entry;
  }

  const whatOf = (q) => formatCents(q.amount) + " · " + q.payer + " · " + timeOf(q.made);

  /** A collection taken offline that the node refused: said at once where the shop looks,
   *  and "Paid" no longer shown for it. */
  function tellRefused(entry) {
    const paid = document.getElementById("paid");
    if (paid.dataset.queued === String(entry.id)) paid.hidden = true;
    const out = document.querySelector("#collect-form .outcome");
    out.textContent = Sou.fill(M.offlineFailed, { what: whatOf(entry), why: entry.message });
    out.className = "outcome flash error";
    out.hidden = false;
  }

  /** Why the node refused a collection taken offline, as the counter says it: an allowance
   *  found short means another counter collected from it first. */
  function refusalOf(entry, error) {
    const fromAllowance = String(entry.envelope.order.from).startsWith("escrow:offline:");
    if (error.code === "insufficient_funds" && fromAllowance) {
      return Sou.fill(M.allowanceShort, { payer: entry.payer });
    }
    return error.message;
  }

  let flushing = false;
  /** Send what was taken offline, oldest first; stop at the first network failure. */
  async function flushQueue() {
    if (flushing) return;
    flushing = true;
    try {
      const pending = (await queued()).filter((q) => q.state === "pending").sort((a, b) => a.id - b.id);
      for (const entry of pending) {
        try {
          await Sou.api("POST", "/api/v1/pos/collections", entry.envelope);
          await dropQueued(entry.id);
        } catch (error) {
          // No answer from the node, or no session to send with (log in again): later.
          if (!error.status || error.status >= 500 || error.status === 401 || error.status === 429) break;
          const refused = { ...entry, state: "failed", message: refusalOf(entry, error), code: error.code };
          await putQueued(refused);
          tellRefused(refused);
        }
      }
    } catch (unavailable) {
      // IndexedDB unavailable (a private window, say): nothing was queued either.
    } finally {
      flushing = false;
      showQueue();
    }
  }

  async function showQueue() {
    const list = document.getElementById("offline-queue");
    if (!list) return;
    let entries = [];
    try { entries = await queued(); } catch (unavailable) { entries = []; }
    list.replaceChildren(...entries.map((q) => {
      const item = document.createElement("li");
      item.dataset.state = q.state;
      const what = whatOf(q);
      item.textContent = q.state === "failed"
        ? Sou.fill(M.offlineFailed, { what, why: q.message }) : Sou.fill(M.offlinePending, { what });
      if (q.state === "failed") item.className = "flash error";
      return item;
    }));
    document.getElementById("offline-section").hidden = entries.length === 0;
  }

  // -- where there is no network: the pages kept on the device -----------------------------

  /** Have this page (and its scripts) kept so that it opens without the node: web/static/sw.js.
   *  Once kept, `data-offline="ready"` on the body, and the page's note (if any) shows. */
  function keepForOffline() {
    if (!("serviceWorker" in navigator)) return;
    navigator.serviceWorker.register("/sw.js", { scope: "/" })
      .then(() => navigator.serviceWorker.ready)
      .then(() => {
        document.body.dataset.offline = "ready";
        const note = document.getElementById("offline-ready");
        if (note) note.hidden = false;
      })
      .catch(() => {});  // a browser without it (or a private window): online only
  }

  // -- the shop a customer's code is for ---------------------------------------------------
  // Optional. Found as one types, by the send page's search (GET /api/v1/payees: approved
  // shops by words of their trade name or place); the shop chosen is shown before signing
  // and named in the authorisation (`to`), so that no other shop can collect the code. A
  // text typed and not chosen in the list signs nothing.

  const SEARCH_DELAY_MS = 250;

  function shopChooser(form) {
    const input = form.elements.shop;
    const list = document.getElementById("payees");
    const none = document.getElementById("payees-none");
    let chosen = null, timer = null, asked = 0;

    const placeOf = (shop) => (shop.place ? Sou.fill(M.shopPlace, { place: shop.place }) : "");

    function choose(shop) {
      chosen = shop;
      list.hidden = true;
      none.hidden = true;
      Sou.showPayee(shop, placeOf);
    }

    function option(shop) {
      return Sou.payeeOption(shop, placeOf, () => {
        input.value = shop.name;
        choose(shop);
      });
    }

    async function search() {
      const mine = ++asked;
      let shops = [], failed = false;
      try {
        const found = await Sou.api("GET", "/api/v1/payees?q=" + encodeURIComponent(input.value.trim()));
        shops = found.filter((p) => p.kind === "shop" && p.slug && p.member_id !== data.member);
      } catch (error) {
        failed = true;
      }
      if (mine !== asked) return;  // a later search is on its way
      list.replaceChildren(...shops.map(option));
      list.hidden = shops.length === 0;
      none.textContent = failed ? M.shopSearchFailed : M.noShop;
      none.hidden = shops.length > 0;
    }

    input.addEventListener("input", () => {
      choose(null);
      clearTimeout(timer);
      asked++;  // what searches sent before find is no longer what is typed
      if (input.value.trim().length >= 2) timer = setTimeout(search, SEARCH_DELAY_MS);
    });
    document.getElementById("payee-any").addEventListener("click", () => {
      input.value = "";
      choose(null);
      input.focus();
    });

    return {
      /** The shop to name, null for any; an Error while what is typed names none chosen. */
      shop() {
        if (chosen) return chosen;
        if (input.value.trim()) throw new Error(M.chooseShop);
        return null;
      },
      /** "Only valid at …" for the code's screen, or "" for any shop. */
      label(shop) {
        return shop ? Sou.fill(M.onlyAt, { shop: shop.place ? shop.name + " (" + shop.place + ")" : shop.name }) : "";
      },
    };
  }

  function showShop(element, text) {
    element.textContent = text;
    element.hidden = !text;
  }

  // -- the customer shows a code -----------------------------------------------------------

  function codePage() {
    const form = document.getElementById("code-form");
    const shown = document.getElementById("code-shown");
    const state = document.getElementById("code-state");
    const waitingText = state.textContent;
    const shops = shopChooser(form);
    let watching = null;

    async function signedAuthorisation(cap, shop) {
      if (!(await Sou.deviceKey(data.member))) await Sou.createDeviceKey(data.member, data.label);
      const key = await Sou.deviceKey(data.member);
      const auth = {
        v: 1, node: data.node, kind: "authorisation", id: crypto.randomUUID(), key: key.keyId,
        from: "member:" + data.member, cap, currency: data.currency,
        expires: Math.floor(Date.now() / 1000) + data.ttl, ...(shop ? { to: shop.account } : {}),
      };
      const bytes = new TextEncoder().encode(Sou.canonical(auth));
      const sig = await crypto.subtle.sign({ name: "Ed25519" }, key.privateKey, bytes);
      return { auth: Sou.b64url(bytes), auth_sig: Sou.b64url(sig) };
    }

    async function watch(code) {
      const seen = await Sou.api("GET", "/api/v1/pay/authorisations/" + encodeURIComponent(code));
      if (seen.state === "used") {
        state.textContent = Sou.fill(M.used, { amount: formatCents(seen.collected), shop: seen.collected_by });
        state.className = "flash paid";
        const wallet = await Sou.api("GET", "/api/v1/wallet");
        document.getElementById("balance").textContent = formatCents(wallet.balance);
      } else if (seen.state === "expired") {
        state.textContent = M.expired;
        state.className = "flash error";
      } else {
        watching = setTimeout(() => watch(code).catch(() => {}), 1500);
        return;
      }
      document.getElementById("code-again").hidden = false;
    }

    Sou.sends(form, async () => {
      clearTimeout(watching);
      const progress = document.getElementById("code-progress");
      let shop = null;
      const made = await Sou.busy(form, async () => {
        try {
          const cap = parseCents(form.elements.cap.value);
          shop = shops.shop();
          progress.hidden = false;
          progress.textContent = M.signing;
          let signed;
          try {
            signed = await signedAuthorisation(cap, shop);
            return await Sou.api("POST", "/api/v1/pay/authorisations", signed);
          } catch (error) {
            if (error.code !== "revoked_key" && error.code !== "unknown_key") throw error;
            await Sou.createDeviceKey(data.member, data.label);  // this device's key was revoked
            signed = await signedAuthorisation(cap, shop);
            return await Sou.api("POST", "/api/v1/pay/authorisations", signed);
          }
        } finally {
          progress.hidden = true;
        }
      });
      if (!made) return;
      document.getElementById("qr").src = "/pay/authorisations/" + encodeURIComponent(made.code) + "/qr.svg";
      document.getElementById("qr").dataset.url = made.url;
      document.getElementById("code-text").textContent = made.code.slice(0, 4) + " " + made.code.slice(4);
      document.getElementById("code-expiry").textContent = Sou.fill(M.expiresAt, { time: timeOf(made.expires_ms) });
      showShop(document.getElementById("code-shop"), shops.label(shop));
      state.textContent = waitingText;
      state.className = "";
      form.hidden = true;
      shown.hidden = false;
      document.getElementById("code-again").hidden = true;
      watch(made.code).catch(() => {});
    });
    document.getElementById("code-again").addEventListener("click", () => {
      shown.hidden = true;
      form.hidden = false;
      form.elements.cap.value = "";  // the shop chosen stays: a new code is often for it
    });
  }

  // -- the customer pays -------------------------------------------------------------------

  function payPage() {
    const form = document.getElementById("pay-form");
    if (!form) return;  // nothing to pay: the page says why
    const progress = document.getElementById("pay-progress");
    if (data.expiresMs) {
      setTimeout(() => {
        form.querySelector("button[type=submit]").disabled = true;
        const out = form.querySelector(".outcome");
        out.textContent = M.expired;
        out.className = "outcome flash error";
        out.hidden = false;
      }, Math.max(0, data.expiresMs - Date.now()));
    }
    Sou.sends(form, async () => {
      const done = await Sou.busy(form, async () => {
        try {
          const cents = data.invoice ? data.amount : parseCents(form.elements.amount.value);
          const fields = { kind: "payment", from: "member:" + data.member, to: "member:" + data.shop,
                           amount: cents, currency: data.currency };
          let path = "/api/v1/pay/shops/" + encodeURIComponent(data.shop);
          if (data.invoice) {
            fields.invoice = data.invoice;
            path = "/api/v1/pay/invoices/" + encodeURIComponent(data.invoice);
          } else if (form.elements.memo.value.trim()) {
            fields.memo = form.elements.memo.value.trim();
          }
          progress.hidden = false;
          progress.textContent = M.signing;
          const paid = await signAndSend(path, fields);
          progress.textContent = M.sending;
          const wallet = await Sou.api("GET", "/api/v1/wallet");
          return { paid, balance: wallet.balance };
        } finally {
          progress.hidden = true;
        }
      });
      if (!done) return;
      form.hidden = true;
      document.getElementById("pay-done-text").textContent = Sou.fill(M.paid, {
        amount: formatCents(done.paid.amount), shop: data.shopName, balance: formatCents(done.balance),
      });
      document.getElementById("pay-receipt").href = "/wallet/receipts/" + done.paid.transfer_id;
      document.getElementById("balance").textContent = formatCents(done.balance);
      document.getElementById("pay-done").hidden = false;
    });
  }

  // -- the shop's day: refunds -------------------------------------------------------------

  function dayPage() {
    document.querySelectorAll(".refund-form").forEach((form) => {
      Sou.sends(form, async () => {
        const done = await Sou.busy(form, async () => {
          const cents = parseCents(form.elements.amount.value);
          const customer = form.dataset.name;
          if (!confirm(Sou.fill(M.confirmRefund, { amount: formatCents(cents), customer }))) return null;
          return signAndSend("/api/v1/pos/refunds", {
            kind: "refund", from: "member:" + data.member, to: "member:" + form.dataset.customer,
            amount: cents, currency: data.currency, ref: Number(form.dataset.transfer),
          });
        });
        if (done) location.reload();
      });
    });
  }

  // -- offline: the customer's side -------------------------------------------------------

  const certKey = () => "sou-certificate-" + data.member;
  const storedCertificate = () => JSON.parse(localStorage.getItem(certKey()) || "null");

  /** The authorisation this device signs, as codePage does, for `cap` until `expires`. */
  async function signAuthorisation(fields) {
    const key = await Sou.deviceKey(data.member);
    const auth = { v: 1, node: data.node, kind: "authorisation", id: crypto.randomUUID(),
                   key: key.keyId, from: "member:" + data.member, currency: data.currency, ...fields };
    const bytes = new TextEncoder().encode(Sou.canonical(auth));
    const sig = await crypto.subtle.sign({ name: "Ed25519" }, key.privateKey, bytes);
    return { auth: Sou.b64url(bytes), auth_sig: Sou.b64url(sig) };
  }

  function offlinePage() {
    // Opened without the network, the page is the copy kept on this device (keepForOffline).
    document.getElementById("offline-copy").hidden = navigator.onLine;
    keepForOffline();
    const certificate = document.getElementById("certificate");
    function showCertificate() {
      const cert = storedCertificate();
      if (!cert || cert.expires * 1000 <= Date.now()) return;
      certificate.textContent = Sou.fill(M.certified, {
        cap: formatCents(cert.cap), time: new Date(cert.expires * 1000).toLocaleString(document.documentElement.lang),
      });
      certificate.dataset.state = "certified";
    }
    showCertificate();
    const form = document.getElementById("offline-form");
    const shops = shopChooser(form);
    // Loaded while the node answers, so that codes are drawn where it does not.
    if (typeof SouQR !== "undefined") SouQR.ready().then(() => { form.dataset.qr = "ready"; });

    const hold = document.getElementById("hold-form");
    Sou.sends(hold, async () => {
      const done = await Sou.busy(hold, async () => {
        const cents = parseCents(hold.elements.hold.value);
        if (!(await Sou.deviceKey(data.member))) await Sou.createDeviceKey(data.member, data.label);
        const key = await Sou.deviceKey(data.member);
        const signed = await Sou.signedOrder(data.member, {
          kind: "allowance_hold", from: "member:" + data.member, to: data.escrow, amount: cents,
          currency: data.currency,
        });
        return Sou.api("POST", "/api/v1/pay/allowance", { ...signed, device_key: key.keyId });
      });
      if (!done) return;
      localStorage.setItem(certKey(), JSON.stringify(done.certificate));
      document.getElementById("allowance").textContent = formatCents(done.balance);
      const wallet = await Sou.api("GET", "/api/v1/wallet");
      document.getElementById("balance").textContent = formatCents(wallet.balance);
      hold.reset();
      showCertificate();
    });

    Sou.sends(form, async () => {
      const shown = await Sou.busy(form, async () => {
        const cert = storedCertificate();
        if (!cert || cert.expires * 1000 <= Date.now()) throw new Error(M.noCertificate);
        const cap = parseCents(form.elements.cap.value);
        if (cap > cert.cap) throw new Error(Sou.fill(M.overCertificate, { cap: formatCents(cert.cap) }));
        const shop = shops.shop();  // chosen while the network was there, or none
        // No network needed from here: the device signs, the page draws.
        const signed = await signAuthorisation(
          { cap, expires: cert.expires, ...(shop ? { to: shop.account } : {}) });
        const payload = Sou.b64url(new TextEncoder().encode(JSON.stringify(
          { a: signed.auth, s: signed.auth_sig, c: cert })));
        const link = data.origin + "/c#o=" + payload;
        await SouQR.show(document.getElementById("qr"), link);
        document.getElementById("qr").dataset.url = link;
        showShop(document.getElementById("offline-shop"), shops.label(shop));
        return true;
      });
      if (shown) document.getElementById("offline-shown").hidden = false;
    });

    const release = document.getElementById("release-form");
    Sou.sends(release, async () => {
      const done = await Sou.busy(release, () => Sou.api("POST", "/api/v1/pay/allowance/release"));
      if (done) location.reload();
    });
  }

  const pages = {
    counter: counterPage, pay: payPage, day: dayPage, code: codePage, offline: offlinePage,
  };
  if (pages[data.page]) pages[data.page]();
})();
