"""The Python wallet client (`wallet_api/client.py`) against the real app: in-process for most
tests, over a real socket (uvicorn) for the concurrent payers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ledger.signing import SigningKey
from runtime.signing import post, sign_as
from tests.conftest import PASSWORD, Clock
from tests.people import new_client
from tests.test_wallet_api import wait_sealed
from wallet_api.client import ApiError, Receipt, WalletClient
from web.i18n import translations

_serial = iter(range(1, 10**6))


def fund(node: Any, account: str, cents: int) -> None:
    """Cash received at the exchange office, credited to the wallet (office's role key)."""
    signed = sign_as(
        node,
        "role:office:mairie",
        "topup",
        f"fund-{next(_serial)}",
        to=account,
        amount=cents,
        currency=node.ledger.chart.local,
        source="office:mairie",
    )
    post(node, signed)


def member(http: httpx.Client, name: str, role: str = "resident", **kw: Any) -> WalletClient:
    """A new member who joined, logged in and registered a device key, through the client."""
    wallet = WalletClient(http=http, **kw)
    email = f"{name.lower()}.{next(_serial)}@village.test"
    trade = {"trade_name": name, "category": "food", "address": "1 place"}
    wallet.join(name, email, PASSWORD, role=role, merchant=trade if role == "merchant" else None)
    wallet.log_in(email, PASSWORD)
    wallet.register_key("phone")
    return wallet


@pytest.fixture
def wallets(site: TestClient) -> Iterator[tuple[WalletClient, WalletClient]]:
    camille = member(new_client(site), "Camille")
    louis = member(new_client(site), "Louis", language="en")
    fund(site.app.state.node, camille.account(), 10_000)  # type: ignore[attr-defined]
    yield camille, louis


def test_pay_read_balance_and_history(wallets: tuple[WalletClient, WalletClient]) -> None:
    camille, louis = wallets
    paid = camille.pay(louis.account(), 1_250, memo="Covoiturage")
    assert paid.kind == "payment" and not paid.replayed
    assert paid.postings == {camille.account(): -1_250, louis.account(): 1_250}
    assert camille.balance() == 8_750 and louis.balance() == 1_250
    assert louis.me()["id"] in louis.account()
    last = louis.history(limit=1).items[0]
    assert (last.transfer_id, last.amount, last.memo) == (paid.transfer_id, 1_250, "Covoiturage")
    # A bare member id works as well as an account code.
    assert camille.pay(louis.me()["id"], 50).postings[louis.account()] == 50


def test_a_retried_payment_is_the_same_signed_order(
    wallets: tuple[WalletClient, WalletClient],
) -> None:
    camille, louis = wallets
    order = camille.payment_order(louis.account(), 700)
    first = camille.send(order)
    again = camille.send(order)
    assert again.replayed and again.transfer_id == first.transfer_id
    assert camille.balance() == 9_300
    with pytest.raises(TypeError):
        camille.payment_order(louis.account(), 7.5)  # type: ignore[arg-type]


def test_retries_after_a_lost_answer_pay_once(
    site: TestClient, wallets: tuple[WalletClient, WalletClient]
) -> None:
    """The connection drops after the node took the order: the retry gets the same
    transfer, marked replayed, and the wallet is debited once."""
    camille, louis = wallets
    real = camille.http
    dropped: list[str] = []

    class DropFirstAnswer(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            answer = real._transport.handle_request(request)
            if request.url.path == "/api/v1/transfers" and not dropped:
                dropped.append(request.content.decode())
                raise httpx.ReadError("connection reset after the node answered")
            return answer

    flaky = httpx.Client(transport=DropFirstAnswer(), base_url=str(site.base_url))
    flaky.cookies = real.cookies
    camille.http = flaky
    paid = camille.pay(louis.account(), 900, attempts=3)
    assert paid.replayed and len(dropped) == 1
    assert camille.balance() == 9_100 and louis.balance() == 900
    camille.http = real


def test_refusals_carry_code_message_and_language(
    wallets: tuple[WalletClient, WalletClient],
) -> None:
    camille, louis = wallets
    with pytest.raises(ApiError) as refused:
        louis.pay(camille.account(), 100)  # Louis has nothing
    assert (refused.value.status, refused.value.error) == (409, "insufficient_funds")
    assert refused.value.message == "The balance is too low for this amount."
    assert refused.value.details["needed"] == 100
    with pytest.raises(ApiError) as in_french:
        camille.pay("nobody-0000", 100)
    assert (in_french.value.status, in_french.value.error) == (404, "unknown_member")
    french = translations("fr").gettext("There is no member with this id.")
    assert in_french.value.message == french != "There is no member with this id."
    unregistered = WalletClient(http=camille.http)
    with pytest.raises(ApiError) as no_key:
        unregistered.sign("payment")
    assert (no_key.value.status, no_key.value.error) == (None, "no_device_key")


def test_login_failures_and_rate_limit_through_the_client(site: TestClient, clock: Clock) -> None:
    wallet = WalletClient(http=new_client(site), language="en")
    attempts = site.app.state.node.settings.login_free_tries  # type: ignore[attr-defined]
    for _ in range(attempts):
        with pytest.raises(ApiError) as wrong:
            wallet.log_in("admin@village.test", "not the password")
        assert (wrong.value.status, wrong.value.error) == (401, "bad_login")
    with pytest.raises(ApiError) as limited:
        wallet.log_in("admin@village.test", PASSWORD)
    assert limited.value.status == 429 and limited.value.retry_after == 2


def test_history_pages_through_every_movement(
    wallets: tuple[WalletClient, WalletClient],
) -> None:
    camille, louis = wallets
    for n in range(12):
        camille.pay(louis.account(), n + 1)
        if n % 4 == 3:
            louis.pay(camille.account(), 1)
    every = list(camille.movements(page_size=4))
    ids = [m.transfer_id for m in every]
    assert len(ids) == len(set(ids)) == 1 + 12 + 3
    assert ids == sorted(ids, reverse=True)
    assert sum(m.amount for m in every) == camille.balance()
    assert list(camille.movements(page_size=100)) == every


def test_receipts_verify_against_the_node_key(
    site: TestClient, wallets: tuple[WalletClient, WalletClient]
) -> None:
    camille, louis = wallets
    order = camille.payment_order(louis.account(), 321, memo="Miel")
    paid = camille.send(order)
    receipt = camille.verified_receipt(paid.transfer_id, order)
    assert receipt.entry["order"]["memo"] == "Miel"
    louis.verified_receipt(paid.transfer_id)  # the payee can check it too
    node_key = camille.node_info().node_key
    # The node's latest checkpoint now (the wallet's cached answer may predate the first).
    assert len(node_key) == 32 and camille.node_info(refresh=True).checkpoint is not None

    def refused(bad: Receipt, order: Any = None) -> str:
        with pytest.raises(ApiError) as caught:
            camille.verify_receipt(bad, order)
        assert caught.value.status is None
        return caught.value.error

    tampered_leaf = receipt.leaf.replace(b"Miel", b"Mial")
    assert refused(Receipt(**{**vars(receipt), "leaf": tampered_leaf})) == "bad_receipt"
    other_index = (receipt.index + 1) % receipt.tree_size
    assert refused(Receipt(**{**vars(receipt), "index": other_index})) == "bad_receipt"
    forged_note = receipt.checkpoint.replace(f"\n{receipt.tree_size}\n", "\n999\n")
    assert refused(Receipt(**{**vars(receipt), "checkpoint": forged_note})) == "bad_receipt"
    assert refused(receipt, camille.payment_order(louis.account(), 321)) == "bad_receipt"


def test_a_node_key_other_than_the_pinned_one_is_refused(
    site: TestClient, wallets: tuple[WalletClient, WalletClient]
) -> None:
    camille, louis = wallets
    paid = camille.pay(louis.account(), 10)
    wait_sealed(site)
    stranger = WalletClient(http=camille.http, node_public_key=SigningKey.generate().public_key)
    with pytest.raises(ApiError) as changed:
        stranger.node_info()
    assert changed.value.error == "node_key_changed"
    receipt = camille.receipt(paid.transfer_id)
    stranger._node = camille.node_info()  # even given the node's answer, the pin holds
    with pytest.raises(ApiError) as untrusted:
        stranger.verify_receipt(receipt)
    assert untrusted.value.error == "bad_receipt"


def test_tokens_keys_and_log_out(
    site: TestClient, wallets: tuple[WalletClient, WalletClient]
) -> None:
    camille, louis = wallets
    token = camille.create_token("script")
    script = WalletClient(http=new_client(site), token=token.secret, key=camille.key)
    assert script.balance() == camille.balance()
    assert script.pay(louis.account(), 25).postings[louis.account()] == 25
    second = camille.register_key("tablet", SigningKey.generate())
    assert [k.key_id for k in camille.device_keys()][-1] == second.key_id
    camille.revoke_key(second.key_id)
    assert (
        next(k for k in camille.device_keys() if k.key_id == second.key_id).revoked_ms is not None
    )
    camille.revoke_token(token.id)
    with pytest.raises(ApiError) as revoked:
        script.balance()
    assert (revoked.value.status, revoked.value.error) == (401, "bad_token")
    camille.log_out()
    with pytest.raises(ApiError) as gone:
        camille.balance()
    assert gone.value.status == 401


# -- a checkpoint kept, checked against the log as it is later -------------------------------


def test_a_checkpoint_kept_early_is_proven_extended_by_todays_log(
    site: TestClient, wallets: tuple[WalletClient, WalletClient]
) -> None:
    camille, louis = wallets
    first = camille.pay(louis.account(), 100)
    camille.verified_receipt(first.transfer_id)  # waits until it is sealed
    kept = camille.checkpoint()  # printed and put in a drawer
    kept_size = camille.trusted_checkpoint(kept).size
    for n in range(6):
        camille.pay(louis.account(), n + 1)
        if n % 2:
            wait_sealed(site)  # a few sealing rounds, a few checkpoints
    # Months later, a script with no account on the node, the node's key held since then.
    resident = WalletClient(http=new_client(site), node_public_key=camille.node_info().node_key)
    today = resident.prove_extends(kept)
    assert today.size > kept_size
    assert today == resident.trusted_checkpoint(resident.checkpoint())
    assert resident.checkpoint(kept_size) == kept  # the node still serves the kept one
    assert resident.prove_extends(resident.checkpoint()) == today  # a log extends itself
    # The first payment's receipt, against the kept checkpoint rather than the node's latest.
    old = camille.verified_receipt(first.transfer_id, kept=kept)
    assert (old.tree_size, old.checkpoint) == (kept_size, kept)
    latest = camille.verified_receipt(first.transfer_id)
    assert latest.tree_size == today.size
    with pytest.raises(ApiError) as other_size:
        camille.verify_receipt(latest, kept=kept)  # the proof leads to today's root only
    assert other_size.value.error == "bad_receipt"


def test_forged_checkpoints_and_altered_proofs_are_refused_by_the_client(
    site: TestClient, wallets: tuple[WalletClient, WalletClient]
) -> None:
    from ledger.checkpoint import sign_checkpoint

    camille, louis = wallets
    camille.verified_receipt(camille.pay(louis.account(), 100).transfer_id)
    kept = camille.checkpoint()
    head = camille.trusted_checkpoint(kept)
    for n in range(3):
        camille.pay(louis.account(), n + 1)
    wait_sealed(site)

    def refused(note: str, client: WalletClient = camille) -> str:
        with pytest.raises(ApiError) as caught:
            client.prove_extends(note)
        assert caught.value.status is None
        return caught.value.error

    # Notes the node's key did not sign: altered, or signed by another key.
    assert refused(kept.replace(f"\n{head.size}\n", f"\n{head.size + 1}\n")) == "bad_checkpoint"
    stranger = SigningKey.generate().nacl_key
    other_key = sign_checkpoint(head.origin, head.size, head.root, head.origin, stranger)
    assert refused(other_key) == "bad_checkpoint"
    # Notes the node's key did sign, of a history today's log does not extend: a node that
    # rewrote its log, or one that shrank it, is caught.
    node_key = site.app.state.node.node_key.nacl_key  # type: ignore[attr-defined]
    rewritten = sign_checkpoint(head.origin, head.size, bytes(32), head.origin, node_key)
    assert refused(rewritten) == "log_not_extended"
    ahead = sign_checkpoint(head.origin, 10**9, head.root, head.origin, node_key)
    assert refused(ahead) == "log_not_extended"

    # A proof altered on its way (one bit of one hash), or dropped.
    def altering(change: Any) -> WalletClient:
        real = camille.http

        class Altering(httpx.BaseTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                answer = real._transport.handle_request(request)
                if request.url.path != "/api/v1/log/consistency":
                    return answer
                answer.read()
                body = answer.json()
                body["proof"] = change(body["proof"])
                return httpx.Response(answer.status_code, json=body)

        flaky = httpx.Client(transport=Altering(), base_url=str(site.base_url))
        return WalletClient(http=flaky, node_public_key=camille.node_info().node_key)

    assert altering(lambda p: p).prove_extends(kept).size > head.size  # unaltered: fine
    flipped = altering(lambda p: [("B" if p[0][0] == "A" else "A") + p[0][1:], *p[1:]])
    assert refused(kept, flipped) == "log_not_extended"
    assert refused(kept, altering(lambda p: [])) == "log_not_extended"
    assert refused(kept, altering(lambda p: ["not base64!"])) == "log_not_extended"


def test_a_device_that_lost_an_answer_finds_its_order_by_client_id(
    wallets: tuple[WalletClient, WalletClient],
) -> None:
    camille, louis = wallets
    order = camille.payment_order(louis.account(), 450, client_id="panier-amap-12")
    assert camille.find_order("panier-amap-12") is None  # not sent yet: send it
    paid = camille.send(order)  # ...and the answer is lost
    found = camille.find_order("panier-amap-12")
    assert found is not None and found.transfer_id == paid.transfer_id
    assert (found.kind, found.postings) == ("payment", paid.postings)
    assert louis.find_order("panier-amap-12") is None  # only one's own orders
    camille.verified_receipt(found.transfer_id)
    again = camille.find_order("panier-amap-12")
    assert again is not None and again.sealed


# -- many payers at once, over a real socket -----------------------------------------------------


def test_concurrent_payments_from_one_wallet_never_overdraw(node: Any, live_site: str) -> None:
    """32 devices of one member pay at once; the wallet holds enough for 11 of them."""
    payers, price, affordable = 32, 700, 11
    owner = member(httpx.Client(base_url=live_site), "Camille")
    shop = member(httpx.Client(base_url=live_site), "Epicerie", "merchant")
    fund(node, owner.account(), price * affordable + price // 2)
    token = owner.create_token("payers")
    devices = [WalletClient(live_site, token=token.secret, key=owner.key) for _ in range(payers)]
    orders = [d.payment_order(shop.account(), price) for d in devices]
    barrier = threading.Barrier(payers + 1)
    outcomes: list[Any] = [None] * payers
    balances: list[int] = []
    done = threading.Event()

    def pay(n: int) -> None:
        barrier.wait()
        try:
            outcomes[n] = devices[n].send(orders[n])
        except ApiError as exc:
            outcomes[n] = exc

    def watch() -> None:  # the balance as others see it while the payments go through
        while not done.is_set():
            balances.append(node.ledger.balance(owner.account()))

    threads = [threading.Thread(target=pay, args=(n,)) for n in range(payers)]
    watcher = threading.Thread(target=watch)
    for thread in [*threads, watcher]:
        thread.start()
    barrier.wait()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()
    accepted = [o for o in outcomes if not isinstance(o, ApiError)]
    refused = [o for o in outcomes if isinstance(o, ApiError)]
    assert len(accepted) == affordable, refused[:3]
    assert {(r.status, r.error) for r in refused} == {(409, "insufficient_funds")}
    assert owner.balance() == price // 2 and shop.balance() == price * affordable
    assert balances and min(balances) >= 0
    for wallet in [*devices, owner, shop]:
        wallet.http.close()
