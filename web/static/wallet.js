/* Sou: the residents' pages — the device key, sending money, checking a receipt, keys.
 *
 * Each page gives its data and its messages (already in the reader's language) in a
 * <script type="application/json" id="page-data"> block; this script never holds text of
 * its own. Amounts are integer cents, read and written by Sou.parseCents and
 * Sou.formatCents (sou.js), never through a float. The join and receipt pages load this
 * script without sou.js: `Sou` is used only by the code of the other pages.
 */
"use strict";

(() => {
  const dataNode = document.getElementById("page-data");
  const data = dataNode ? JSON.parse(dataNode.textContent) : {};
  const M = data.messages || {};

  // -- the device key ----------------------------------------------------------------------

  /** Make sure this device holds a live key for the member: "kept" or "made". A key that
   *  was revoked (from another device, or by an office) is replaced by a new one. */
  async function ensureDeviceKey(memberId, label) {
    const mine = await Sou.deviceKey(memberId);
    if (mine) {
      const keys = await Sou.api("GET", "/api/v1/me/keys");
      if (keys.some((k) => k.key_id === mine.keyId && k.revoked_ms === null)) return "kept";
    }
    await Sou.createDeviceKey(memberId, label);
    return "made";
  }

  function deviceLabel() {
    const where = navigator.userAgentData && navigator.userAgentData.platform
      ? navigator.userAgentData.platform : navigator.platform;
    return (data.label + (where ? " · " + where : "")).slice(0, 80);
  }

  async function walletPage() {
    const status = document.getElementById("device-key");
    try {
      const outcome = await ensureDeviceKey(data.member, deviceLabel());
      status.textContent = M[outcome];
      status.dataset.status = outcome;
    } catch (error) {
      status.textContent = M.failed + " " + error.message;
      status.dataset.status = "failed";
      status.className = "flash error";
    }
  }

  // -- amounts (Sou.parseCents and Sou.formatCents, in sou.js) ---------------------------

  const money = { decimal: data.decimal, group: data.group, currency: data.currency };
  const parseCents = (text) =>
    Sou.parseCents(text, { maxAmount: data.maxAmount, messages: M, ...money });
  const formatCents = (cents) => Sou.formatCents(cents, money);

  // -- sending money -----------------------------------------------------------------------
  // The recipient is found as one types (GET /api/v1/payees): shops by words of their name
  // or town, a person by their exact wallet id or email. The payee chosen is shown (name,
  // town or wallet id) above the button that signs: while a search is on its way the
  // button waits, so nobody signs a payment to someone the page has not named.

  const SEARCH_DELAY_MS = 250;

  function recipientOf(text) {
    return text.trim().toLowerCase().replace(/^member:/, "");
  }

  /** The one payee an exact wallet id, email or shop slug names; null for a search. */
  function exactPayee(text, payees) {
    const typed = recipientOf(text);
    if (payees.length !== 1) return null;
    const [payee] = payees;
    const exact = payee.kind === "resident" || payee.member_id === typed ||
      payee.slug === typed || typed.includes("@");
    return exact ? payee : null;
  }

  function payeeChooser(form, onChange) {
    const input = form.elements.to;
    const button = form.querySelector("button[type=submit]");
    const list = document.getElementById("payees");
    const none = document.getElementById("payees-none");
    const state = { chosen: null, found: [], searching: false };
    let timer = null, asked = 0;

    const describe = (payee) => (payee.kind === "shop"
      ? Sou.fill(M.shop, { place: payee.place }) : Sou.fill(M.resident, { id: payee.member_id }));

    function choose(payee) {
      state.chosen = payee;
      list.hidden = true;
      none.hidden = true;
      Sou.showPayee(payee, describe);
    }

    function option(payee) {
      return Sou.payeeOption(payee, describe, () => {
        input.value = payee.name;
        choose(payee);
        form.elements.amount.focus();
      });
    }

    function settle(payees) {
      state.found = payees;
      state.searching = false;
      button.disabled = false;
      const only = exactPayee(input.value, payees);
      if (only) {
        choose(only);
      } else {
        list.replaceChildren(...payees.map(option));
        list.hidden = payees.length === 0;
        none.hidden = payees.length > 0;
      }
      onChange();
    }

    async function search() {
      const mine = ++asked;
      let payees = [];
      try {
        payees = await Sou.api("GET", "/api/v1/payees?q=" + encodeURIComponent(input.value.trim()));
      } catch (error) {
        payees = [];  // the search failed: nobody is shown, so nobody can be paid
      }
      if (mine === asked) settle(payees);  // else a later search is on its way
    }

    function typed() {
      choose(null);
      clearTimeout(timer);
      asked++;  // what searches sent before find is no longer what is typed
      state.found = [];
      onChange();
      if (input.value.trim().length < 2) {
        state.searching = false;
        button.disabled = false;
        list.hidden = true;
        none.hidden = true;
        return;
      }
      state.searching = true;
      button.disabled = true;
      timer = setTimeout(search, SEARCH_DELAY_MS);
    }

    input.addEventListener("input", typed);
    input.addEventListener("keydown", (event) => {
      const first = list.querySelector("button");
      if (event.key === "ArrowDown" && first && !list.hidden) { event.preventDefault(); first.focus(); }
    });
    if (data.payee) {
      choose(data.payee);
    } else if (input.value.trim()) {
      typed();
    }
    return {
      state,
      clear() { input.value = ""; typed(); },
    };
  }

  function sendPage() {
    const form = document.getElementById("send-form");
    const progress = document.getElementById("send-progress");
    const sent = document.getElementById("sent");
    // Taken over first: Sou.sends enables the button, and the payee search below may
    // disable it at once (a payee typed before this script came), as it must stay.
    Sou.sends(form, send);
    const payees = payeeChooser(form, () => { sent.hidden = true; });

    /** The payee to sign for: the one shown, never a text typed and not found. */
    function recipient() {
      const { chosen, found } = payees.state;
      const typed = recipientOf(form.elements.to.value);
      if (!typed && !chosen) throw new Error(M.noRecipient);
      if ((chosen ? chosen.member_id : typed) === data.member) throw new Error(M.self);
      if (!chosen) throw new Error(found.length ? M.choose : M.unknown);
      return chosen;
    }

    /** Sign and send the payment typed, to the payee shown. */
    async function send() {
      if (payees.state.searching) return;  // the payee is not shown yet
      sent.hidden = true;
      const done = await Sou.busy(form, async () => {
        try {
          const payee = recipient();
          const amount = parseCents(form.elements.amount.value);
          const memo = form.elements.memo.value.trim();
          progress.hidden = false;
          progress.textContent = M.signing;
          await ensureDeviceKey(data.member, deviceLabel());
          const fields = { kind: "payment", from: "member:" + data.member, to: payee.account,
                           amount, currency: data.currency };
          if (memo) fields.memo = memo;
          const signed = await Sou.signedOrder(data.member, fields);
          progress.textContent = M.sending;
          const transfer = await Sou.api("POST", "/api/v1/transfers", signed);
          const wallet = await Sou.api("GET", "/api/v1/wallet");
          return { transfer, to: payee.name, amount, balance: wallet.balance };
        } finally {
          progress.hidden = true;
        }
      });
      if (!done) return;
      document.getElementById("sent-text").textContent = Sou.fill(M.sent, {
        amount: formatCents(done.amount), to: done.to, balance: formatCents(done.balance),
      });
      document.getElementById("sent-receipt").href = "/wallet/receipts/" + done.transfer.transfer_id;
      document.getElementById("balance").textContent = formatCents(done.balance);
      form.reset();
      payees.clear();
      sent.hidden = false;
    }
  }

  // -- receipts: RFC 6962 hashing, RFC 9162 inclusion proof, C2SP signed note -------------

  const bytesOf = (text) => new TextEncoder().encode(text);

  function unbase64(text, urlSafe) {
    const plain = urlSafe ? text.replace(/-/g, "+").replace(/_/g, "/") : text;
    const padded = plain + "===".slice((plain.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) { out.set(part, at); at += part.length; }
    return out;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  const leafHash = (leaf) => sha256(concat([0], leaf));
  const nodeHash = (left, right) => sha256(concat([1], left, right));
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  /** The root an inclusion proof leads to (RFC 9162 2.1.3.2), or null if malformed. */
  async function rootFrom(leaf, index, size, proof) {
    if (!(index >= 0 && index < size)) return null;
    let fn = index, sn = size - 1, r = await leafHash(leaf);
    for (const p of proof) {
      if (sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  /** The checkpoint's (origin, size, root) if the node's key signed it, else null. */
  async function openCheckpoint(note, publicKey) {
    const cut = note.lastIndexOf("\n\n");
    if (cut < 0 || !note.endsWith("\n")) return null;
    const text = note.slice(0, cut + 1);
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    let signed = false;
    for (const line of note.slice(cut + 2, -1).split("\n")) {
      const [dash, name, stamp] = line.split(" ");
      if (dash !== "\u2014" || !name || !stamp) continue;
      const sig = unbase64(stamp, false);
      const id = (await sha256(concat(bytesOf(name + "\n"), [1], publicKey))).slice(0, 4);
      if (sig.length !== 68 || !same(sig.slice(0, 4), id)) continue;  // another key's
      if (!(await crypto.subtle.verify({ name: "Ed25519" }, key, sig.slice(4), bytesOf(text)))) return null;
      signed = true;
    }
    if (!signed) return null;
    const [origin, size, root] = text.split("\n");
    return { origin, size: Number(size), root: unbase64(root, false) };
  }

  async function receiptVerified() {
    const head = await openCheckpoint(data.checkpoint, unbase64(data.nodeKey, true));
    if (!head || head.origin !== data.origin || head.size !== data.size) return false;
    const proof = data.proof.map((h) => unbase64(h, true));
    const root = await rootFrom(bytesOf(data.leaf), data.index, data.size, proof);
    return root !== null && same(root, head.root);
  }

  async function receiptPage() {
    const status = document.getElementById("proof-status");
    let outcome;
    try {
      outcome = (await receiptVerified()) ? "verified" : "failed";
    } catch (error) {
      outcome = "unsupported";  // no WebCrypto Ed25519 here (an old browser, plain http)
    }
    status.textContent = M[outcome];
    status.dataset.status = outcome;
    if (outcome === "failed") status.className = "flash error";
  }

  // -- devices and tokens ------------------------------------------------------------------

  function keysPage() {
    const outcome = document.getElementById("keys-outcome");
    const refused = (error) => {
      outcome.textContent = error.message; outcome.className = "flash error"; outcome.hidden = false;
    };
    Sou.deviceKey(data.member).then((mine) => {
      const row = mine && document.querySelector(`tr[data-key-id="${CSS.escape(mine.keyId)}"]`);
      if (row) row.querySelector(".this-device").hidden = false;
    }).catch(() => {});
    document.querySelectorAll("[data-revoke-key]").forEach((button) => {
      button.addEventListener("click", async () => {
        if (!confirm(M.confirmKey)) return;
        try {
          await Sou.api("DELETE", "/api/v1/me/keys/" + encodeURIComponent(button.dataset.revokeKey));
          location.reload();
        } catch (error) { refused(error); }
      });
    });
    document.querySelectorAll("[data-revoke-token]").forEach((button) => {
      button.addEventListener("click", async () => {
        if (!confirm(M.confirmToken)) return;
        try {
          await Sou.api("DELETE", "/api/v1/me/tokens/" + encodeURIComponent(button.dataset.revokeToken));
          location.reload();
        } catch (error) { refused(error); }
      });
    });
    const form = document.getElementById("token-form");
    Sou.sends(form, async () => {
      const made = await Sou.busy(form, () => Sou.api("POST", "/api/v1/me/tokens", {
        label: form.elements.label.value.trim(), scope: form.elements.scope.value,
      }));
      if (!made) return;
      document.getElementById("new-token-value").textContent = made.token;
      document.getElementById("new-token").hidden = false;
      form.reset();
    });
  }

  // -- joining: the trade details matter to merchants only -------------------------------

  function joinPage(form) {
    const trade = document.getElementById("trade");
    const show = () => {
      const merchant = form.elements.role.value === "merchant";
      trade.hidden = !merchant;
      ["trade_name", "category", "address"].forEach((n) => { form.elements[n].required = merchant; });
    };
    form.querySelectorAll("input[name=role]").forEach((radio) => radio.addEventListener("change", show));
    show();
  }

  const pages = {
    wallet: walletPage,
    send: sendPage,
    receipt: receiptPage,
    keys: keysPage,
    "receipt-pending": () => setTimeout(() => location.reload(), 1000),
  };
  if (pages[data.page]) pages[data.page]();
  const joinForm = document.getElementById("join-form");
  if (joinForm) joinPage(joinForm);
})();
