/* Sou: the reconversion page — a quote as the amount is typed, then a redemption order
 * signed by this device's key and posted to /api/v1/reconversions.
 *
 * The page gives its data and messages (in the reader's language) in a
 * <script type="application/json" id="page-data"> block. Amounts are integer cents, read
 * and written by Sou.parseCents and Sou.formatCents (sou.js), never through a float.
 * An order signed but left without an answer (the network dropped) is sent again as it
 * is, with the same id, so that the node records it once.
 */
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const M = data.messages;
  const form = document.getElementById("reconversion-form");
  const quoteOut = document.getElementById("quote");
  const progress = document.getElementById("progress");
  const done = document.getElementById("done");
  let pending = null;  // a signed order whose sending got no answer
  let typing = null;

  // Amounts: Sou.parseCents and Sou.formatCents (sou.js), with the page's separators.
  const separators = { decimal: data.decimal, group: data.group };
  const units = (cents) => Sou.formatCents(cents, { ...separators, currency: data.currency });
  const euros = (cents) => Sou.formatCents(cents, { ...separators, currency: "EUR" });
  const parseCents = (text) => Sou.parseCents(text, {
    maxAmount: data.maxAmount, messages: M, ...separators, currency: data.currency,
  });

  function quote(cents) {
    return Sou.api("GET", "/api/v1/reconversions/quote?amount=" + cents);
  }

  function describe(q) {
    const values = { fee: units(q.fee), cause_fee: units(q.cause_fee), net: euros(q.net) };
    return Sou.fill(q.cause_fee > 0 ? M.quote : M.quoteNoCause, values);
  }

  async function showQuote() {
    const text = form.elements.amount.value;
    if (!text.trim()) {
      quoteOut.textContent = "";
      return;
    }
    let said, kind = "muted";
    try {
      said = describe(await quote(parseCents(text)));
    } catch (error) {
      said = error.message;
      kind = "flash error";
    }
    // A slow answer about what was typed before must not replace the newer one.
    if (form.elements.amount.value !== text) return;
    quoteOut.textContent = said;
    quoteOut.className = kind;
  }

  // -- the device key ----------------------------------------------------------------------

  const keyReady = Sou.keyOffer({
    member: data.member, label: data.label, said: done, madeText: M.keyMade,
  });

  // -- asking ------------------------------------------------------------------------------

  async function ask() {
    const amount = parseCents(form.elements.amount.value);
    progress.hidden = false;
    try {
      if (!pending || pending.order.amount !== amount) {
        progress.textContent = M.quoting;
        const q = await quote(amount);
        if (!(await keyReady())) throw new Error(M.noKey);
        progress.textContent = M.signing;
        pending = await Sou.signedOrder(data.member, {
          kind: "redemption", from: "member:" + data.member, amount: q.amount, fee: q.fee,
          cause_fee: q.cause_fee, currency: data.currency,
        });
      }
      progress.textContent = M.sending;
      try {
        const request = await Sou.api("POST", "/api/v1/reconversions", pending);
        pending = null;
        return request;
      } catch (error) {
        if (error.status) pending = null;  // a clear answer: the next try signs anew
        throw error;
      }
    } finally {
      progress.hidden = true;
    }
  }

  function addRow(request) {
    const body = document.querySelector("#requests tbody");
    if (body.querySelector(`tr[data-id="${request.id}"]`)) return;
    const row = document.createElement("tr");
    row.dataset.id = request.id;
    row.dataset.status = request.status;
    const asked = new Date(request.created_ms).toLocaleString(document.documentElement.lang,
      { dateStyle: "short", timeStyle: "short" });
    for (const [text, amount] of [[asked, false], [units(request.amount), true],
                                  [euros(request.net), true], [M.pending, false]]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (amount) cell.className = "amount";
      row.appendChild(cell);
    }
    body.prepend(row);
    document.getElementById("no-requests").hidden = true;
  }

  form.elements.amount.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(showQuote, 300);
  });

  Sou.sends(form, async () => {
    done.hidden = true;
    const request = await Sou.busy(form, ask);
    if (!request) return;
    addRow(request);
    done.textContent = Sou.fill(M.done, { amount: units(request.amount), net: euros(request.net) });
    done.hidden = false;
    form.reset();
    quoteOut.textContent = "";
    try {
      const wallet = await Sou.api("GET", "/api/v1/wallet");
      document.getElementById("balance").textContent = units(wallet.balance);
    } catch (error) {
      /* the balance shown stays as it was; the request itself is recorded */
    }
  });

})();
