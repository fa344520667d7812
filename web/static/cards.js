/* Card top-up page: ask the node every second how the payment stands, until Stripe's
 * webhook has credited the wallet (or the payment ended otherwise). The messages for each
 * state come translated from the page itself. */
"use strict";

(() => {
  const box = document.getElementById("topup-status");
  if (!box) return;
  const messages = JSON.parse(document.getElementById("topup-messages").textContent);
  const text = document.getElementById("topup-message");
  const path = "/api/v1/topups/card/" + encodeURIComponent(box.dataset.paymentIntent);
  const pending = new Set(["created", "failed"]);  // a failed card may be retried
  const giveUp = Date.now() + 30 * 60 * 1000;

  function show(status) {
    box.dataset.status = status;
    text.textContent = messages[status] || status;
  }

  async function poll() {
    try {
      const response = await fetch(path, {
        headers: { Accept: "application/json", "Accept-Language": document.documentElement.lang },
        credentials: "same-origin",
      });
      if (response.ok) {
        const payment = await response.json();
        if (payment.status !== box.dataset.status) show(payment.status);
      }
    } catch (error) {
      // the village's link dropped for a moment: ask again
    }
    if (pending.has(box.dataset.status) && Date.now() < giveUp) setTimeout(poll, 1000);
  }

  if (pending.has(box.dataset.status)) setTimeout(poll, 1000);
})();
