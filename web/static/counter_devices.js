/* Sou: pairing a device with a shop's counter (/pos/pair).
 *
 * The device makes its own Ed25519 key (WebCrypto, non-extractable: nobody can read it
 * out), sends the public half with the pairing code, and keeps the private half where the
 * point of sale looks for the shop's key on this device (Sou.deviceKey). The node answers
 * with the shop and sets this device's session; then the point of sale opens.
 */
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const M = data.messages || {};
  const form = document.getElementById("pair-form");
  const progress = document.getElementById("pair-progress");

  async function newKey() {
    try {
      return await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    } catch (unsupported) {  // no WebCrypto Ed25519, or not a secure page
      throw new Error(M.noCrypto);
    }
  }

  Sou.sends(form, async () => {
    const paired = await Sou.busy(form, async () => {
      const code = form.elements.code.value.trim();
      if (!code) throw new Error(M.noCode);
      if (!window.crypto || !crypto.subtle) throw new Error(M.noCrypto);
      progress.hidden = false;
      progress.textContent = M.making;
      try {
        const pair = await newKey();
        const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
        progress.textContent = M.pairing;
        const done = await Sou.api("POST", "/api/v1/pos/pair", { code, public_key: Sou.b64url(raw) });
        await Sou.keepDeviceKey(done.merchant, done.key_id, pair.privateKey);
        return done;
      } finally {
        progress.hidden = true;
      }
    });
    if (!paired) return;
    progress.textContent = Sou.fill(M.paired, { shop: paired.shop, label: paired.label });
    progress.hidden = false;
    location.assign("/pos");
  });
})();
