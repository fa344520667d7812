/* Sou wallet: the device key and signed orders, in the browser.
 *
 * The key is an Ed25519 key made by WebCrypto as non-extractable: the page can ask the
 * browser to sign with it, but nobody (not even this script) can read it out. It is kept
 * in IndexedDB, one per member on this device. Orders are signed over their RFC 8785
 * canonical JSON; our orders are flat objects of strings and integers, for which that is
 * the keys sorted by UTF-16 code units and JSON.stringify of each value.
 *
 * Amounts are integer cents everywhere: `parseCents` reads what people type and
 * `formatCents` writes cents as the server does, for every page's script.
 */
"use strict";

const Sou = (() => {
  const DB = "sou-wallet", STORE = "keys";

  function csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function origin() {
    const meta = document.querySelector('meta[name="sou-node"]');
    return meta ? meta.content : "";
  }

  function b64url(bytes) {
    let text = "";
    new Uint8Array(bytes).forEach((b) => { text += String.fromCharCode(b); });
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function canonical(order) {
    const keys = Object.keys(order).sort();  // JS sorts strings by UTF-16 code units
    return "{" + keys.map((k) => {
      const v = order[k];
      if (typeof v === "number" && !Number.isSafeInteger(v)) throw new Error("amounts are integers");
      if (typeof v !== "number" && typeof v !== "string") throw new Error("flat orders only");
      return JSON.stringify(k) + ":" + JSON.stringify(v);
    }).join(",") + "}";
  }

  function openDb() {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open(DB, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }

  async function stored(memberId, value) {
    const db = await openDb();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, value === undefined ? "readonly" : "readwrite");
      const store = tx.objectStore(STORE);
      const request = value === undefined ? store.get(memberId) : store.put(value, memberId);
      request.onsuccess = () => resolve(value === undefined ? request.result : value);
      request.onerror = () => reject(request.error);
    });
  }

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf(),
                 "Accept-Language": document.documentElement.lang },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    const text = await response.text();
    let data = {};
    try {
      data = text ? JSON.parse(text) : {};
    } catch (notJson) {  // a proxy's error page, say: keep the status as the message
      data = {};
    }
    if (!response.ok) {
      const error = new Error(data.message || response.statusText);
      error.status = response.status;
      error.code = data.error;
      throw error;
    }
    return data;
  }

  /** This device's key for the member, or null if it has none yet. */
  async function deviceKey(memberId) {
    return (await stored(memberId)) || null;
  }

  /** Make a non-extractable key, register its public half, keep it on this device. */
  async function createDeviceKey(memberId, label) {
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
    const registered = await api("POST", "/api/v1/me/keys", { public_key: b64url(raw), label });
    return stored(memberId, { keyId: registered.key_id, privateKey: pair.privateKey });
  }

  /** Keep on this device a key registered by other means (a counter device's, when it is
   *  paired with a shop), where `deviceKey` finds it. */
  async function keepDeviceKey(memberId, keyId, privateKey) {
    return stored(memberId, { keyId, privateKey });
  }

  /** Whether this device holds a key of the member that is still registered and live. */
  async function hasLiveKey(memberId) {
    const mine = await deviceKey(memberId);
    if (!mine) return false;
    const keys = await api("GET", "/api/v1/me/keys");
    return keys.some((k) => k.key_id === mine.keyId && k.revoked_ms === null);
  }

  /**
   * A page's offer to sign with this device: `#no-key` (with its `#make-key` button and
   * `#key-outcome`) shows while the device has no live key of the member; once a key is made,
   * `said` tells `madeText`. Returns `ready()`, true when the device may sign now (else the
   * offer is shown again).
   */
  function keyOffer({ member, label, said, madeText }) {
    const noKey = document.getElementById("no-key");
    const outcome = document.getElementById("key-outcome");
    document.getElementById("make-key").addEventListener("click", async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      outcome.hidden = true;
      try {
        const where = navigator.platform ? " · " + navigator.platform : "";
        await createDeviceKey(member, (label + where).slice(0, 80));
        noKey.hidden = true;
        said.textContent = madeText;
        said.hidden = false;
      } catch (error) {
        outcome.textContent = error.message;
        outcome.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
    async function ready() {
      let live = false;
      try {
        live = await hasLiveKey(member);
      } finally {
        noKey.hidden = live;
      }
      return live;
    }
    ready().catch(() => {});
    return ready;
  }

  /** Show whom a form pays (#payee: name, and `describe(payee)` beside it); hide for null. */
  function showPayee(payee, describe) {
    const card = document.getElementById("payee");
    card.hidden = !payee;
    if (!payee) return;
    document.getElementById("payee-name").textContent = payee.name;
    document.getElementById("payee-detail").textContent = describe(payee);
    card.dataset.member = payee.member_id;
  }

  /** A list item to pick a payee found by a search: its name, `describe(payee)` beside it. */
  function payeeOption(payee, describe, onPick) {
    const item = document.createElement("li");
    const pick = document.createElement("button");
    const detail = document.createElement("span");
    pick.type = "button";
    pick.dataset.member = payee.member_id;
    pick.textContent = payee.name;
    detail.className = "muted";
    detail.textContent = describe(payee);
    pick.append(detail);
    pick.addEventListener("click", () => onPick(payee));
    item.append(pick);
    return item;
  }

  async function signedOrder(memberId, fields) {
    const key = await deviceKey(memberId);
    if (!key) throw new Error("no device key");
    const nonce = crypto.getRandomValues(new Uint8Array(16));
    const order = {
      v: 1, node: origin(), id: crypto.randomUUID(), key: key.keyId, nonce: b64url(nonce),
      expires: Math.floor(Date.now() / 1000) + 600, ...fields,
    };
    const bytes = new TextEncoder().encode(canonical(order));
    const sig = await crypto.subtle.sign({ name: "Ed25519" }, key.privateKey, bytes);
    return { order, sig: b64url(sig) };
  }

  /** Show progress on a form's button while `work` runs, and its refusal in plain words. */
  async function busy(form, work) {
    const button = form.querySelector("button[type=submit]");
    const out = form.querySelector(".outcome");
    if (button) button.disabled = true;
    if (out) { out.hidden = true; out.className = "outcome flash"; }
    try {
      return await work();
    } catch (error) {
      if (out) { out.textContent = error.message; out.className = "outcome flash error"; out.hidden = false; }
      return null;
    } finally {
      if (button) button.disabled = false;
    }
  }

  /**
   * Take `form` over for the page's script: each submit runs `work(event)`, never a plain
   * page request. The form's `[data-script-sends]` buttons, disabled by the server until now,
   * are enabled once, here, as the handler is attached: never enabled with nothing to answer
   * a tap. A button the page's script disables afterwards (a payee being looked up) stays as
   * the script leaves it: call this before the script touches the button.
   */
  function sends(form, work) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      work(event);
    });
    form.querySelectorAll("button[data-script-sends]").forEach((button) => {
      button.disabled = false;
    });
  }

  // -- amounts: integer cents, read from what people type, written as the server does ----

  /** A message with its `{name}`s filled from `values`; a name not given stays as it is. */
  function fill(template, values) {
    return String(template).replace(/\{(\w+)\}/g, (all, name) => (
      Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : all));
  }

  /** Cents as the server writes them (`money` in web/i18n.py), with the reader's separators:
   *  formatCents(123450, {decimal: ",", group: "\u202f", currency: "SOU"}) → "1 234,50 SOU". */
  function formatCents(cents, { decimal = ".", group = "", currency = "" } = {}) {
    if (!Number.isSafeInteger(cents)) throw new TypeError("an amount is a whole number of cents");
    const digits = String(Math.abs(cents)).padStart(3, "0");
    const whole = digits.slice(0, -2).replace(/\B(?=([0-9]{3})+$)/g, () => group);
    const figure = (cents < 0 ? "\u2212" : "") + whole + decimal + digits.slice(-2);
    return currency ? figure + " " + currency : figure;
  }

  // What people type in an amount's field, read exactly as the server reads a form's
  // (`parse_euros` in web/pages.py; tests/test_amounts_browser.py holds both to one table).
  // The figure: digits, or groups of three after a space (plain, no-break or narrow
  // no-break, as French writes "1 250"); then one decimal comma or point and digits.
  // "12 50" is refused, never read as 1 250; so are signs, exponents and "12," alone. A
  // page whose group separator is a comma (English) also reads "1,250.50", but "1,250" is
  // refused: it would be 1.25 to a French reader.
  const SPACES = " \u00a0\u202f";
  const DECIMAL_MARKS = ".,";
  function typedFigure(group) {
    const grouped = (separators) =>
      "[0-9]{1,3}(?:[" + separators.replace(/[\\\]\[^-]/g, "\\$&") + "][0-9]{3})+";
    const single = typeof group === "string" && group.length === 1;
    const own = single && !/[0-9.,]/.test(group) ? group : "";
    let figure = "(" + grouped(SPACES + own) + "|[0-9]+)(?:[.,]([0-9]+))?";
    if (single && DECIMAL_MARKS.includes(group)) {
      const other = DECIMAL_MARKS.replace(group, "");
      figure += "|(" + grouped(SPACES + group) + ")\\" + other + "([0-9]+)";
    }
    return new RegExp("^(?:" + figure + ")$");
  }

  // A unit after the figure, as people copy it from a receipt or the office writes it
  // ("12,50 €", "12.50 EUR", "12,50 SOU": euros, or the node's unit, the page's `currency`).
  const EURO_UNITS = ["€", "EUR"];

  /** `text` without one unit at its end (€, EUR or the page's `currency`), any case. */
  function withoutUnit(text, currency) {
    for (const unit of EURO_UNITS.concat([currency ? String(currency) : ""])) {
      if (unit && text.slice(-unit.length).toUpperCase() === unit.toUpperCase()) {
        return text.slice(0, -unit.length).trim();
      }
    }
    return text;
  }

  /** What a person typed ("12,50", "12.50", "1 234,5", "12", "12,50 €") as integer cents, or
   *  an Error carrying the reader's message from `messages` (badAmount, decimals, zero,
   *  tooLarge with `{max}`, written with `decimal`, `group` and `currency`). No float is
   *  involved: the text is split on its separator and each part is read as a whole number
   *  (BigInt). */
  function parseCents(text, { maxAmount, messages, decimal, group, currency }) {
    const parts = typedFigure(group).exec(withoutUnit(String(text).trim(), currency));
    if (!parts) throw new Error(messages.badAmount);
    // the whole part and the fraction, from whichever form matched
    const [whole, fraction = ""] = parts[1] !== undefined ? parts.slice(1, 3) : parts.slice(3, 5);
    if (fraction.length > 2) throw new Error(messages.decimals);
    const digits = whole.replace(/[^0-9]/g, "");
    if (digits.length > 15) throw new Error(messages.badAmount);  // as the server: no amount
    const cents = BigInt(digits) * 100n + BigInt(fraction.padEnd(2, "0"));
    if (cents === 0n) throw new Error(messages.zero);
    if (cents > BigInt(maxAmount)) {
      const max = formatCents(maxAmount, { decimal, group, currency });
      throw new Error(fill(messages.tooLarge, { max }));
    }
    return Number(cents);  // exact: at most maxAmount, a safe integer
  }

  return {
    api, b64url, busy, canonical, createDeviceKey, deviceKey, fill, formatCents, hasLiveKey,
    keepDeviceKey, keyOffer, parseCents, payeeOption, sends, showPayee, signedOrder,
  };
})();

// The submit buttons of forms that only a page's script can send come disabled from the
// server (`data-script-sends`): a tap before any script has run would send the form as a
// plain page request, and the person would see the page come back, what they typed gone.
// `Sou.sends` enables them as the page's script takes the form over. Whatever else would
// submit such a form meanwhile (Enter in a field, another button), the browser never
// sends it itself: only that script does.
document.addEventListener("submit", (event) => {
  if (event.target.querySelector("button[data-script-sends]")) event.preventDefault();
}, true);
