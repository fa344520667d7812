/* Sou wallet: the device key and signed orders, in the browser.
 *
 * The key is an Ed25519 key made by WebCrypto as non-extractable: the page can ask the
 * browser to sign with it, but nobody (not even this script) can read it out. It is kept
 * in IndexedDB, one per member on this device. Orders are signed over their RFC 8785
 * canonical JSON; our orders are flat objects of strings and integers, for which that is
 * the keys sorted by UTF-16 code units and JSON.stringify of each value.
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

  return { api, b64url, busy, canonical, createDeviceKey, deviceKey, signedOrder };
})();
