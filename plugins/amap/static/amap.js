/* Sou: the AMAP's pages — subscribe, pay (an escrow payment signed by this device's key),
 * order, declare an absence, leave; the producer's products; the coordinator's
 * distributions. Every action goes through /api/v1/amap and the page reloads on success.
 * Amounts are integer cents (Sou.parseCents), never a float.
 */
"use strict";

(() => {
  const dataBlock = document.getElementById("page-data");
  if (!dataBlock) return;
  const data = JSON.parse(dataBlock.textContent);
  const M = data.messages || {};
  const done = document.getElementById("done");
  const base = "/api/v1/amap";

  function cents(text) {
    return Sou.parseCents(text, {
      maxAmount: data.maxAmount, messages: M, decimal: data.decimal, group: data.group,
      currency: data.currency,
    });
  }

  function on(form, work) {
    Sou.sends(form, async () => {
      const answer = await Sou.busy(form, work);
      if (answer !== null) window.location.reload();
    });
  }

  const keyReady = document.getElementById("no-key")
    ? Sou.keyOffer({ member: data.member, label: data.label, said: done, madeText: M.keyMade })
    : null;

  async function payment(amount) {
    if (!keyReady || !(await keyReady())) throw new Error(M.noKey);
    return Sou.signedOrder(data.member, {
      kind: "escrow_payment", from: "member:" + data.member, to: data.escrow, amount,
      currency: data.currency,
    });
  }

  // -- a member on a contract's page ---------------------------------------------------------
  // A subscription contract starts with its first payment: the first call names the escrow
  // and the amounts (the subscription waits, on no sheet), the second carries the payment.
  const subscribe = document.getElementById("subscribe-form");
  if (subscribe) {
    on(subscribe, async () => {
      const path = `${base}/contracts/${data.contract}/subscriptions`;
      if (data.nature !== "subscription") return Sou.api("POST", path);
      if (!keyReady || !(await keyReady())) throw new Error(M.noKey);
      const waiting = await Sou.api("POST", path);
      const choice = subscribe.elements.first ? subscribe.elements.first.value : "season";
      const amount = choice === "instalment" ? waiting.next_instalment : waiting.due;
      const signed = await Sou.signedOrder(data.member, {
        kind: "escrow_payment", from: "member:" + data.member, to: waiting.escrow, amount,
        currency: data.currency,
      });
      return Sou.api("POST", path, { payment: signed });
    });
  }
  const pay = document.getElementById("pay-form");
  if (pay) {
    on(pay, async () => Sou.api("POST", `${base}/subscriptions/${data.subscription}/payments`,
      await payment(Number(pay.dataset.amount))));
  }
  const load = document.getElementById("load-form");
  if (load) {
    on(load, async () => Sou.api("POST", `${base}/subscriptions/${data.subscription}/payments`,
      await payment(cents(load.elements.amount.value))));
  }
  for (const form of document.querySelectorAll(".order-form")) {
    on(form, async () => {
      let change = 0;
      const lines = [];
      for (const input of form.querySelectorAll("input.quantity")) {
        const quantity = Number(input.value || "0");
        if (!Number.isSafeInteger(quantity) || quantity < 0) throw new Error(M.badAmount);
        change += (quantity - Number(input.dataset.had)) * Number(input.dataset.price);
        lines.push({ product: Number(input.dataset.product), quantity });
      }
      const body = { lines };
      if (data.nature === "free_choice" && change > 0) body.payment = await payment(change);
      return Sou.api("PUT",
        `${base}/subscriptions/${data.subscription}/orders/${form.dataset.distribution}`, body);
    });
  }
  for (const form of document.querySelectorAll(".absence-form")) {
    on(form, () => Sou.api("POST", `${base}/subscriptions/${data.subscription}/absences`,
      { distribution: Number(form.dataset.distribution) }));
  }
  const leave = document.getElementById("leave-form");
  if (leave) on(leave, () => Sou.api("POST", `${base}/subscriptions/${data.subscription}/leave`));

  // -- the producer --------------------------------------------------------------------------
  const product = document.getElementById("product-form");
  if (product) {
    on(product, () => Sou.api("POST", `${base}/products`, {
      name: product.elements.name.value, unit: product.elements.unit.value,
      price: cents(product.elements.price.value),
    }));
  }
  for (const form of document.querySelectorAll(".price-form")) {
    on(form, () => Sou.api("PATCH", `${base}/products/${form.dataset.product}`,
      { price: cents(form.elements.price.value) }));
  }

  // -- the admin -----------------------------------------------------------------------------
  const naming = document.getElementById("producer-form");
  if (naming) {
    on(naming, () => Sou.api("POST", `${base}/producers`, { member: naming.elements.member.value }));
  }
  const place = document.getElementById("place-form");
  if (place) {
    on(place, () => Sou.api("POST", `${base}/places`, {
      name: place.elements.name.value, address: place.elements.address.value,
    }));
  }
  const deal = document.getElementById("contract-form");
  if (deal) {
    on(deal, () => {
      const f = deal.elements;
      const basket = [...deal.querySelectorAll("input.basket")]
        .filter((input) => input.dataset.producer === f.producer.value && Number(input.value) > 0)
        .map((input) => ({ product: Number(input.dataset.product), quantity: Number(input.value) }));
      const coordinators = f.coordinators.value.split(",").map((c) => c.trim()).filter(Boolean);
      return Sou.api("POST", `${base}/contracts`, {
        producer: f.producer.value, title: f.title.value, season: f.season.value,
        nature: f.nature.value, jokers: Number(f.jokers.value), joker_rule: f.joker_rule.value,
        leave_rule: f.leave_rule.value, notice: Number(f.notice.value),
        instalments: Number(f.instalments.value),
        basket: f.nature.value === "subscription" ? basket : [], coordinators,
      });
    });
  }

  for (const form of document.querySelectorAll(".coordinators-form")) {
    on(form, () => Sou.api("PUT", `${base}/contracts/${form.dataset.contract}/coordinators`, {
      coordinators: form.elements.coordinators.value.split(",").map((c) => c.trim()).filter(Boolean),
    }));
  }

  // -- the coordinator -----------------------------------------------------------------------
  // Delivered or cancelled: a form of one button each, its refusal said at the page's top.
  for (const form of document.querySelectorAll(".close-form")) {
    Sou.sends(form, async () => {
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        await Sou.api("POST", `${base}/distributions/${form.dataset.distribution}/${form.dataset.action}`);
        window.location.reload();
      } catch (error) {
        done.textContent = error.message;
        done.className = "flash error";
        done.hidden = false;
        button.disabled = false;
      }
    });
  }
  for (const form of document.querySelectorAll(".stock-form")) {
    on(form, () => Sou.api("PUT", `${base}/distributions/${form.dataset.distribution}/stock`, {
      stock: [...form.querySelectorAll("input.stock")].map((input) => ({
        product: Number(input.dataset.product), remaining: Number(input.value || "0"),
      })),
    }));
  }
  for (const form of document.querySelectorAll(".plan-form")) {
    on(form, () => {
      const stock = [...form.querySelectorAll("input.stock")].map((input) => ({
        product: Number(input.dataset.product), remaining: Number(input.value || "0"),
      }));
      return Sou.api("POST", `${base}/contracts/${form.dataset.contract}/distributions`, {
        day: form.elements.day.value, place: Number(form.elements.place.value),
        cutoff_ms: new Date(form.elements.cutoff.value).getTime(), stock,
      });
    });
  }
})();
