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
  let pending = null;  // a signed order whose sending got no answer

  const units = (cents) => Sou.formatCents(cents, {
    decimal: data.decimal, group: data.group, currency: data.currency,
  });

  const keyReady = Sou.keyOffer({
    member: data.member, label: data.label, said: deposited, madeText: M.keyMade,
  });

  async function depositNote() {
    progress.hidden = false;
    try {
      if (!pending) {
        if (!(await keyReady())) throw new Error(M.noKey);
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

  Sou.sends(form, async () => {
    deposited.hidden = true;
    const done = await Sou.busy(form, depositNote);
    if (!done) return;
    form.hidden = true;
    deposited.textContent = Sou.fill(M.done, { amount: units(done.amount) });
    deposited.hidden = false;
  });

})();
