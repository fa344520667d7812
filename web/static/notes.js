/* Sou: a paper note's page — "Déposer ce billet": a note_deposit order signed by this
 * device's key (Sou.signedOrder, sou.js) and posted with the note's link to
 * /api/v1/notes/deposits. The node credits the shop's wallet once per note: a second
 * deposit, by this shop or another, is refused with the reason in plain words.
 *
 * The page gives its data and messages (in the reader's language) in a
 * <script type="application/json" id="page-data"> block. An order signed but left without
 * an answer (the network dropped) is sent again as it is, with the same id, so that the
 * node records it once.
 */
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const M = data.messages;
  const form = document.getElementById("deposit-form");
  const progress = document.getElementById("progress");
  const deposited = document.getElementById("deposited");
  const noKey = document.getElementById("no-key");
  let pending = null;  // a signed order whose sending got no answer

  const units = (cents) => Sou.formatCents(cents, {
    decimal: data.decimal, group: data.group, currency: data.currency,
  });

  /** Whether this device holds a key of the member that is still registered and live. */
  async function hasLiveKey() {
    const mine = await Sou.deviceKey(data.member);
    if (!mine) return false;
    const keys = await Sou.api("GET", "/api/v1/me/keys");
    return keys.some((k) => k.key_id === mine.keyId && k.revoked_ms === null);
  }

  async function offerKeyIfNone() {
    try {
      noKey.hidden = await hasLiveKey();
    } catch (error) {
      noKey.hidden = false;
    }
  }

  document.getElementById("make-key").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const outcome = document.getElementById("key-outcome");
    button.disabled = true;
    outcome.hidden = true;
    try {
      const where = navigator.platform ? " · " + navigator.platform : "";
      await Sou.createDeviceKey(data.member, (data.label + where).slice(0, 80));
      noKey.hidden = true;
      deposited.textContent = M.keyMade;
      deposited.hidden = false;
    } catch (error) {
      outcome.textContent = error.message;
      outcome.hidden = false;
    } finally {
      button.disabled = false;
    }
  });

  async function depositNote() {
    progress.hidden = false;
    try {
      if (!pending) {
        if (!(await hasLiveKey())) {
          noKey.hidden = false;
          throw new Error(M.noKey);
        }
        progress.textContent = M.signing;
        pending = await Sou.signedOrder(data.member, {
          kind: "note_deposit", series: data.series, serial: data.serial,
          denomination: data.denomination, currency: data.currency,
          to: "member:" + data.member, ref: data.ref,
        });
      }
      progress.textContent = M.sending;
      try {
        const done = await Sou.api("POST", "/api/v1/notes/deposits", { link: data.link, ...pending });
        pending = null;
        return done;
      } catch (error) {
        if (error.status) pending = null;  // a clear answer: the next try signs anew
        throw error;
      }
    } finally {
      progress.hidden = true;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    deposited.hidden = true;
    const done = await Sou.busy(form, depositNote);
    if (!done) return;
    form.hidden = true;
    deposited.textContent = Sou.fill(M.done, { amount: units(done.amount) });
    deposited.hidden = false;
  });

  offerKeyIfNone();
})();
