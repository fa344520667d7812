/* Sou crowdfunding: the campaign page's live progress (polled every few seconds), pledges
 * signed on this device (Sou.signedOrder, sou.js) and posted to the API, lowering or
 * cancelling a pledge, the owner's news, proposing a project, moderation and the matching
 * fund. Amounts are integer cents (Sou.parseCents, Sou.formatCents), never a float.
 */
"use strict";

(() => {
  const dataBlock = document.getElementById("page-data");
  if (!dataBlock) return;
  const data = JSON.parse(dataBlock.textContent);
  const M = data.messages || {};
  const done = document.getElementById("done");
  const separators = { decimal: data.decimal, group: data.group };
  const units = (cents) => Sou.formatCents(cents, { ...separators, currency: data.currency });
  const parseCents = (text) => Sou.parseCents(text, {
    maxAmount: data.maxAmount, messages: M, ...separators, currency: data.currency,
  });
  const byId = (id) => document.getElementById(id);

  function tell(text) {
    if (!done) return;
    done.textContent = text;
    done.hidden = false;
  }

  // -- the campaign page: progress without reloading ----------------------------------------

  async function refresh() {
    const p = await Sou.api("GET", "/api/v1/campaigns/" + data.campaign + "/progress");
    byId("pledged").textContent = units(p.pledged);
    byId("percent").textContent = String(p.percent);
    byId("backers").textContent = String(p.backers);
    byId("days-left").textContent = String(p.days_left);
    byId("bar").value = Math.min(p.pledged, p.goal);
    if (byId("mine") && p.mine !== null) byId("mine").textContent = units(p.mine);
    if (byId("lower-form") && p.mine !== null) byId("lower-form").hidden = p.mine === 0;
    if (p.state !== data.state) window.location.reload();  // closed: show the outcome
  }

  if (data.campaign && byId("progress")) {
    setInterval(() => { refresh().catch(() => {}); }, 3000);
  }

  const keyReady = byId("no-key") && data.member
    ? Sou.keyOffer({ member: data.member, label: data.label, said: done, madeText: M.keyMade })
    : null;

  async function signedPayment(amount) {
    if (!keyReady || !(await keyReady())) throw new Error(M.noKey);
    return Sou.signedOrder(data.member, {
      kind: "escrow_payment", from: "member:" + data.member, to: data.escrow,
      amount, currency: data.currency,
    });
  }

  const pledgeForm = byId("pledge-form");
  if (pledgeForm) {
    Sou.sends(pledgeForm, async () => {
      const answer = await Sou.busy(pledgeForm, async () => {
        const amount = parseCents(pledgeForm.elements.amount.value);
        const signed = await signedPayment(amount);
        await Sou.api("POST", "/api/v1/campaigns/" + data.campaign + "/pledges", signed);
        return amount;
      });
      if (answer !== null) {
        pledgeForm.reset();
        tell(Sou.fill(M.pledged, { amount: units(answer) }));
        await refresh();
      }
    });
  }

  const lowerForm = byId("lower-form");
  if (lowerForm) {
    Sou.sends(lowerForm, async () => {
      const answer = await Sou.busy(lowerForm, async () => {
        const text = lowerForm.elements.amount.value.trim();
        const amount = text === "0" ? 0 : parseCents(text);
        await Sou.api("POST", "/api/v1/campaigns/" + data.campaign + "/pledge/lower", { amount });
        return amount;
      });
      if (answer !== null) {
        tell(Sou.fill(M.lowered, { amount: units(answer) }));
        await refresh();
      }
    });
  }

  const updateForm = byId("update-form");
  if (updateForm) {
    Sou.sends(updateForm, async () => {
      const answer = await Sou.busy(updateForm, () => Sou.api(
        "POST", "/api/v1/campaigns/" + data.campaign + "/updates",
        { text: updateForm.elements.text.value }));
      if (answer !== null) window.location.reload();
    });
  }

  // -- proposing a project ------------------------------------------------------------------

  const proposeForm = byId("propose-form");
  if (proposeForm) {
    Sou.sends(proposeForm, async () => {
      const f = proposeForm.elements;
      const made = await Sou.busy(proposeForm, async () => {
        const campaign = await Sou.api("POST", "/api/v1/campaigns", {
          title: f.title.value, description: f.description.value,
          goal: parseCents(f.goal.value), days: Number.parseInt(f.days.value, 10) || 0,
          for_commune: Boolean(f.for_commune && f.for_commune.checked),
          tiers: f.tier_title.value.trim() ? [{
            minimum: parseCents(f.tier_minimum.value), title: f.tier_title.value.trim(),
            most_backers: f.tier_limit.value ? Number.parseInt(f.tier_limit.value, 10) : null,
          }] : [],
        });
        const file = f.picture.files[0];
        if (file) {
          const response = await fetch("/api/v1/campaigns/" + campaign.id + "/picture", {
            method: "PUT", body: file, credentials: "same-origin",
            headers: { "Content-Type": file.type || "application/octet-stream",
                       "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content,
                       "Accept-Language": document.documentElement.lang },
          });
          if (!response.ok) throw new Error((await response.json()).message);
        }
        return campaign;
      });
      if (made !== null) {
        tell(M.proposed);
        window.location.assign("/campaigns/" + made.id);
      }
    });
  }

  // -- moderation -----------------------------------------------------------------------------

  /** The commune's matching typed on the moderation form: a whole percentage (100 % is one
   *  unit per unit pledged, 10 000 basis points) and a cap, both or neither. */
  function matching(form) {
    const percent = form.elements.percent.value.trim() || "0";
    if (!/^[0-9]{1,4}$/.test(percent) || Number(percent) > 1000) throw new Error(M.badPercent);
    if (Number(percent) === 0) return { match_per_unit_bp: 0, match_cap: 0 };
    if (!form.elements.cap.value.trim()) throw new Error(M.noCap);
    return { match_per_unit_bp: Number(percent) * 100, match_cap: parseCents(form.elements.cap.value) };
  }

  for (const section of document.querySelectorAll("section.moderation")) {
    const id = section.dataset.campaign;
    const publishing = section.querySelector("form.publish-form");
    Sou.sends(publishing, async () => {
      const answer = await Sou.busy(publishing, () => Sou.api(
        "POST", "/api/v1/campaigns/" + id + "/publish", matching(publishing)));
      if (answer !== null) section.replaceChildren(document.createTextNode(M.published));
    });
    const form = section.querySelector("form.reject-form");
    Sou.sends(form, async () => {
      const answer = await Sou.busy(form, () => Sou.api(
        "POST", "/api/v1/campaigns/" + id + "/reject", { reason: form.elements.reason.value }));
      if (answer !== null) section.replaceChildren(document.createTextNode(M.rejected));
    });
  }

  // -- the matching fund ------------------------------------------------------------------------

  const matchingForm = byId("matching-form");
  if (matchingForm) {
    Sou.sends(matchingForm, async () => {
      const answer = await Sou.busy(matchingForm, async () => {
        const signed = await signedPayment(parseCents(matchingForm.elements.amount.value));
        return Sou.api("POST", "/api/v1/campaigns/matching/payments", signed);
      });
      if (answer !== null) window.location.reload();
    });
  }
})();
