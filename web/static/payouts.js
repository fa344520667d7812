/* Sou: a merchant's bank details — the IBAN, BIC and holder signed by this device's key
 * (a `bank_details` statement naming the version it replaces) and posted to
 * /api/v1/me/bank-details. The node checks the signature against the member's live keys;
 * each change is a new version, none overwritten.
 *
 * The page gives its data and messages in <script type="application/json" id="page-data">.
 */
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const M = data.messages;
  const form = document.getElementById("details-form");
  const progress = document.getElementById("progress");
  const done = document.getElementById("done");

  const keyReady = Sou.keyOffer({
    member: data.member, label: data.label, said: done, madeText: M.keyMade,
  });

  // What people type: spaces and lower case are fine; the node reads the compact form.
  const compact = (text) => text.replace(/\s+/g, "").toUpperCase();

  async function record() {
    progress.hidden = false;
    try {
      if (!(await keyReady())) throw new Error(M.noKey);
      progress.textContent = M.signing;
      const signed = await Sou.signedOrder(data.member, {
        kind: "bank_details",
        member: data.member,
        iban: compact(form.elements.iban.value),
        bic: compact(form.elements.bic.value),
        holder: form.elements.holder.value.trim().replace(/\s+/g, " "),
        previous: data.version,
      });
      progress.textContent = M.sending;
      return await Sou.api("POST", "/api/v1/me/bank-details", signed);
    } finally {
      progress.hidden = true;
    }
  }

  Sou.sends(form, async () => {
    done.hidden = true;
    const recorded = await Sou.busy(form, record);
    if (!recorded) return;
    // The page shows the new version and the history as the node now holds them.
    window.location.assign("/bank-details?saved=" + recorded.version);
  });
})();
