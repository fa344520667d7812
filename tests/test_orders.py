"""Refusals: every malformed, unsigned, replayed or impossible order is refused with a named
error, on both databases, and changes nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical
from ledger.errors import InvalidOrder
from ledger.orders import read_common
from ledger.posting import Posted
from ledger.service import key_event
from ledger.signing import SignedOrder, SigningKey, new_order
from tests.factories import Book, refused


@pytest.fixture
def pair(book: Book) -> tuple[str, str]:
    return book.member("alice", 10_000), book.member("bob")


def _snapshot(book: Book) -> dict[str, int]:
    with book.ledger.reading() as conn:
        from ledger import repository as repo

        return repo.balances(conn)


BAD_AMOUNTS: list[tuple[Any, str]] = [
    (0, "invalid_order"),
    (-5, "invalid_order"),
    (12.5, "invalid_order"),
    (12.0, "invalid_order"),
    ("12", "invalid_order"),
    (True, "invalid_order"),
    (None, "invalid_order"),
    (10**20, "invalid_order"),
    (1_000_001, "invalid_order"),
]


@pytest.mark.parametrize(("amount", "code"), BAD_AMOUNTS)
def test_bad_amounts_are_refused(book: Book, pair: tuple[str, str], amount: Any, code: str) -> None:
    alice, bob = pair
    before = _snapshot(book)
    key = book.keys[alice]
    order = new_order("payment", key, book.ledger.origin, to=bob, currency="SOU", **{"from": alice})
    order["amount"] = amount
    assert refused(book.post(SignedOrder(order, _sign_loose(key, order)))) == code
    assert _snapshot(book) == before


def _sign_loose(key: SigningKey, order: dict[str, Any]) -> bytes:
    """Sign whatever the order holds; canonicalisation may refuse it (e.g. 10**20)."""
    try:
        return key.sign_bytes(canonical(order))
    except ValueError:
        return bytes(64)


def test_refusals_by_case(book: Book, pair: tuple[str, str]) -> None:
    alice, bob = pair
    carol = book.member("carol")
    key = book.keys[alice]

    def alice_pays_bob(node: str = book.ledger.origin, **settings: Any) -> SignedOrder:
        """A payment of 1.00 signed by alice, built with new_order's own settings."""
        return key.sign(
            new_order(
                "payment",
                key,
                node,
                to=bob,
                amount=100,
                currency="SOU",
                **settings,
                **{"from": alice},
            )
        )

    cases: list[tuple[SignedOrder, str]] = [
        (book.payment(alice, alice, 100), "invalid_order"),  # to oneself
        (book.payment(alice, "member:nobody", 100), "unknown_account"),
        (book.payment(alice, "reserve:digital", 100), "invalid_order"),  # not a member
        (
            book.order("payment", carol, from_=alice, to=bob, amount=100, currency="SOU"),
            "wrong_signer",
        ),
        (book.payment(alice, bob, 100, memo="x" * 281), "invalid_order"),
        (
            book.order("payment", alice, from_=alice, to=bob, amount=100, currency="EUR"),
            "invalid_order",
        ),
        (alice_pays_bob("other.node/x"), "wrong_node"),
        (alice_pays_bob(now=time.time() - 3_600), "order_expired"),
        (alice_pays_bob(ttl_s=10 * 86_400), "expiry_too_far"),
        (alice_pays_bob(surprise=1), "invalid_order"),
        (
            book.order("topup", alice, to=alice, amount=100, currency="SOU", source="card"),
            "wrong_signer",
        ),  # only the node's card rule credits card top-ups
        (
            book.order("topup", "node", to=alice, amount=100, currency="SOU", source="card"),
            "invalid_order",
        ),  # the node must name its rule
    ]
    before = _snapshot(book)
    for signed, code in cases:
        assert refused(book.post(signed)) == code, signed.order
    assert _snapshot(book) == before


def test_tampered_order_and_unknown_key(book: Book, pair: tuple[str, str]) -> None:
    alice, bob = pair
    signed = book.payment(alice, bob, 100)
    tampered = SignedOrder({**signed.order, "amount": 9_000}, signed.signature)
    assert refused(book.post(tampered)) == "bad_signature"
    stranger = SigningKey.generate()
    order = new_order(
        "payment",
        stranger,
        book.ledger.origin,
        to=bob,
        amount=100,
        currency="SOU",
        **{"from": alice},
    )
    assert refused(book.post(stranger.sign(order))) == "unknown_key"
    assert book.balance(alice) == 10_000


def test_replay_is_idempotent_and_reuse_conflicts(book: Book, pair: tuple[str, str]) -> None:
    alice, bob = pair
    signed = book.payment(alice, bob, 300)
    first, again = book.post(signed), book.post(signed)
    assert isinstance(first, Posted) and isinstance(again, Posted)
    assert (again.transfer_id, again.replayed, first.replayed) == (first.transfer_id, True, False)
    other = book.payment(alice, bob, 400, client_id=signed.order["id"])
    assert refused(book.post(other)) == "idempotency_conflict"
    same_nonce = dict(book.payment(alice, bob, 500).order, nonce=signed.order["nonce"])
    key = book.keys[alice]
    assert refused(book.post(key.sign(same_nonce))) == "replayed_nonce"
    assert (book.balance(alice), book.balance(bob)) == (9_700, 300)


def test_revoked_key_is_refused(book: Book, pair: tuple[str, str]) -> None:
    alice, bob = pair
    key = book.keys[alice]
    assert isinstance(book.post(book.payment(alice, bob, 100)), Posted)
    event = key_event(
        "revoke", origin=book.ledger.origin, owner=alice, public_key=key.public_key, signer=key
    )  # the owner revokes a lost phone
    book.ledger.revoke_key(event, key.sign_bytes(canonical(event)))
    assert refused(book.post(book.payment(alice, bob, 100))) == "revoked_key"
    assert book.balance(alice) == 9_900


def test_refund_rules(book: Book, pair: tuple[str, str]) -> None:
    alice, shop = pair
    paid = book.post(book.payment(alice, shop, 1_000))
    assert isinstance(paid, Posted)

    def refund(amount: int, to: str = alice) -> object:
        return book.post(
            book.order(
                "refund",
                shop,
                from_=shop,
                to=to,
                amount=amount,
                currency="SOU",
                ref=paid.transfer_id,
            )
        )

    assert isinstance(refund(600), Posted)
    assert refused(refund(500)) == "invalid_reference"  # 600 + 500 > 1000
    assert refused(refund(100, to=book.member("carol"))) == "invalid_reference"
    assert isinstance(refund(400), Posted)
    assert (book.balance(alice), book.balance(shop)) == (10_000, 0)


def test_redemption_payout_and_correction(book: Book, pair: tuple[str, str]) -> None:
    alice, _shop = pair
    treasurer = "role:treasurer"
    assert isinstance(
        book.ledger.transfer(book.order("settlement", treasurer, amount=10_000)), Posted
    )
    redeemed = book.post(
        book.order("redemption", alice, from_=alice, amount=5_000, fee=150, currency="SOU")
    )
    assert isinstance(redeemed, Posted)
    assert book.balance("association:fees") == 150
    assert book.balance("payouts:pending") == 4_850
    bad = book.post(
        book.order("payout", treasurer, ref=redeemed.transfer_id, amount=5_000, bank_ref="VIR-1")
    )
    assert refused(bad) == "invalid_order"  # must be the net amount
    payout = book.order(
        "payout", treasurer, ref=redeemed.transfer_id, amount=4_850, bank_ref="VIR-1"
    )
    paid = book.post(payout)
    assert isinstance(paid, Posted)
    # Euros that left the bank are not undone by a correction.
    assert (
        refused(book.post(book.order("correction", treasurer, ref=paid.transfer_id, memo="wrong")))
        == "invalid_reference"
    )
    assert (
        refused(
            book.post(
                book.order("correction", treasurer, ref=redeemed.transfer_id, memo="rejected")
            )
        )
        == "invalid_reference"
    )
    assert book.balance("external:eur") == -10_000 + 4_850


FUZZ_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=80),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(
        [
            "payment",
            "refund",
            "topup",
            "redemption",
            "payout",
            "cash_deposit",
            "settlement",
            "correction",
            "nope",
        ]
    ),
    overrides=st.dictionaries(
        st.sampled_from(
            [
                "v",
                "node",
                "kind",
                "id",
                "key",
                "nonce",
                "expires",
                "amount",
                "from",
                "to",
                "currency",
                "memo",
                "ref",
                "rule",
                "fee",
                "source",
                "office",
                "bank_ref",
                "ext",
                "extra",
            ]
        ),
        FUZZ_VALUES,
        max_size=6,
    ),
)
def test_fuzzed_orders_are_refused_cleanly(
    book: Book, pair: tuple[str, str], kind: str, overrides: dict[str, Any]
) -> None:
    """Whatever a member's device signs, the ledger answers with a named refusal or a
    valid posting: never an exception, never money from nowhere."""
    alice, bob = pair
    key = book.keys[alice]
    order = new_order(
        kind, key, book.ledger.origin, to=bob, amount=100, currency="SOU", **{"from": alice}
    )
    order.update(overrides)
    before = _snapshot(book)
    outcome = book.post(SignedOrder(order, _sign_loose(key, order)))
    after = _snapshot(book)
    if isinstance(outcome, Posted):  # only a genuine payment by alice can pass
        assert outcome.postings == {alice: -order["amount"], bob: order["amount"]}
        assert sum(after.values()) == sum(before.values())
    else:
        assert after == before


@settings(max_examples=60, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(["v", "node", "kind", "id", "key", "nonce", "expires", "memo", "rule"]),
        FUZZ_VALUES,
        max_size=9,
    )
)
def test_reading_any_object_gives_an_order_or_invalid_order(fields: dict[str, Any]) -> None:
    try:
        order = read_common(fields, bytes(64))
    except InvalidOrder as refusal:
        assert refusal.code == "invalid_order" and refusal.params["field"]
    else:
        assert type(order.expires) is int and order.canonical.startswith(b"{")


def test_a_resent_order_gets_its_result_even_after_it_expired(book: Book) -> None:
    """The phone lost the answer and comes back online after the order's expiry."""
    clock = [time.time()]
    book.ledger.clock = lambda: clock[0]
    alice, bob = book.member("alice", 1_000), book.member("bob")
    key = book.keys[alice]
    signed = key.sign(
        new_order(
            "payment",
            key,
            book.ledger.origin,
            to=bob,
            amount=100,
            currency="SOU",
            ttl_s=60,
            now=clock[0],
            **{"from": alice},
        )
    )
    first = book.post(signed)
    assert isinstance(first, Posted)
    clock[0] += 3_600
    again = book.post(signed)
    assert isinstance(again, Posted) and (again.transfer_id, again.replayed) == (
        first.transfer_id,
        True,
    )
    # Also when the batch is re-run carefully because another order in it reused a nonce.
    fresh = new_order(
        "payment",
        key,
        book.ledger.origin,
        to=bob,
        amount=5,
        currency="SOU",
        now=clock[0],
        **{"from": alice},
    )
    reused = dict(fresh, nonce=signed.order["nonce"])
    both = book.ledger.post([signed, key.sign(reused)])
    assert isinstance(both[0], Posted) and both[0].transfer_id == first.transfer_id
    assert refused(both[1]) == "replayed_nonce"
    assert (book.balance(alice), book.balance(bob)) == (900, 100)
