"""Counter keys: a device at a shop's till signs the shop's refunds and collections, and
nothing else (no payment out of the shop's wallet, no allowance, no key of its own). The
ledger refuses anything else before posting, and `sou audit` judges stored orders by the
same rule."""

from __future__ import annotations

import time

from audits.audit import audit
from ledger.canonical import b64, canonical
from ledger.errors import WrongSigner
from ledger.operations import allowance_escrow, counter_of
from ledger.posting import Checked, Posted
from ledger.sealer import Sealer
from ledger.service import key_event
from ledger.signing import SignedOrder, SigningKey
from tests.conftest import NODE_KEY, ORIGIN
from tests.factories import Book, refused, register


def _shop_with_till(book: Book, name: str = "zoe") -> tuple[str, str]:
    """A shop's account, and the owner of its counter keys with one key registered."""
    shop = book.member(name)
    till = counter_of(shop)
    book.keys[till] = register(book.ledger, book.node_key, till)
    return shop, till


def _sale(book: Book, payer: str, shop: str, cents: int) -> int:
    posted = book.post(book.payment(payer, shop, cents))
    assert isinstance(posted, Posted), posted
    return posted.transfer_id


def _refund(book: Book, signer: str, shop: str, payer: str, cents: int, ref: int) -> SignedOrder:
    return book.order(
        "refund", signer, from_=shop, to=payer, amount=cents, currency=book.local, ref=ref
    )


def _collection(book: Book, signer: str, payer: str, shop: str, cents: int) -> SignedOrder:
    """A collection of `cents` under an authorisation the payer's key signed."""
    payer_key = book.keys[payer]
    auth = {
        "v": 1,
        "node": book.ledger.origin,
        "kind": "authorisation",
        "id": f"auth-{time.monotonic_ns()}",
        "key": payer_key.key_id,
        "from": payer,
        "cap": cents,
        "currency": book.local,
        "expires": int(time.time()) + 120,
    }
    message = canonical(auth)
    return book.order(
        "collection",
        signer,
        from_=payer,
        to=shop,
        amount=cents,
        currency=book.local,
        auth=b64(message),
        auth_sig=b64(payer_key.sign_bytes(message)),
        expires=auth["expires"],
    )


def test_a_counter_key_signs_its_shops_refunds_and_collections(book: Book) -> None:
    shop, till = _shop_with_till(book)
    camille = book.member("camille", 5_000)
    paid = _sale(book, camille, shop, 1_200)

    back = book.post(_refund(book, till, shop, camille, 200, paid))
    assert isinstance(back, Posted), back
    taken = book.post(_collection(book, till, camille, shop, 700))
    assert isinstance(taken, Posted), taken
    assert (book.balance(camille), book.balance(shop)) == (5_000 - 1_200 + 200 - 700, 1_000 + 700)

    # The audit re-checks each stored order's signer by the same rule: all is well.
    Sealer(book.ledger.engine, NODE_KEY, ORIGIN).seal_all()
    report = audit(book.ledger.engine, node_public_key=NODE_KEY.public_key, workers=1)
    assert report.ok, report.findings


def test_a_counter_key_cannot_pay_out_or_set_aside_the_shops_units(book: Book) -> None:
    shop, till = _shop_with_till(book)
    camille = book.member("camille", 5_000)
    _sale(book, camille, shop, 3_000)

    payment = book.order("payment", till, from_=shop, to=camille, amount=1_000, currency=book.local)
    hold = book.order(
        "allowance_hold",
        till,
        from_=shop,
        to=allowance_escrow(shop),
        amount=1_000,
        currency=book.local,
    )
    for order in (payment, hold):
        assert refused(book.post(order)) == "wrong_signer"
    assert (book.balance(shop), book.balance(camille)) == (3_000, 2_000)


def test_a_counter_key_cannot_refund_for_another_shop(book: Book) -> None:
    zoe, zoe_till = _shop_with_till(book, "zoe")
    lea, _ = _shop_with_till(book, "lea")
    camille = book.member("camille", 5_000)
    paid_to_lea = _sale(book, camille, lea, 1_000)

    assert refused(book.post(_refund(book, zoe_till, lea, camille, 1_000, paid_to_lea))) == (
        "wrong_signer"
    )
    assert refused(book.post(_collection(book, zoe_till, camille, lea, 500))) == "wrong_signer"
    assert (book.balance(lea), book.balance(camille), book.balance(zoe)) == (1_000, 4_000, 0)


def test_a_revoked_counter_key_signs_nothing(book: Book) -> None:
    shop, till = _shop_with_till(book)
    camille = book.member("camille", 5_000)
    paid = _sale(book, camille, shop, 1_000)
    key = book.keys[till]
    event = key_event(
        "revoke",
        origin=book.ledger.origin,
        owner=till,
        public_key=key.public_key,
        signer=book.node_key,
    )
    book.ledger.revoke_key(event, book.node_key.sign_bytes(canonical(event)))

    assert refused(book.post(_refund(book, till, shop, camille, 1_000, paid))) == "revoked_key"
    assert refused(book.post(_collection(book, till, camille, shop, 500))) == "revoked_key"
    assert (book.balance(shop), book.balance(camille)) == (1_000, 4_000)


def test_only_the_node_registers_counter_keys(book: Book) -> None:
    shop, till = _shop_with_till(book)
    treasurer = "role:treasurer"
    for signer in (shop, till, treasurer):  # the merchant's phone, the till, a key officer
        new = SigningKey.generate()
        event = key_event(
            "register",
            origin=book.ledger.origin,
            owner=till,
            public_key=new.public_key,
            signer=book.keys[signer],
        )
        try:
            book.ledger.register_key(event, book.keys[signer].sign_bytes(canonical(event)))
        except WrongSigner:
            continue
        raise AssertionError(f"a key of {signer} registered a counter key")


def test_the_audit_refuses_a_payment_signed_by_a_counter_key(book: Book) -> None:
    """Were one posted behind the ledger's back, the audit would name it: it judges the
    signer by the same operations table as the ledger."""
    shop, till = _shop_with_till(book)
    camille = book.member("camille", 5_000)
    _sale(book, camille, shop, 2_000)
    signed = book.order("payment", till, from_=shop, to=camille, amount=500, currency=book.local)
    try:
        book.ledger.check(signed)
    except WrongSigner:
        pass
    else:
        raise AssertionError("the ledger let a counter key sign a payment")
    from ledger.operations import operation
    from ledger.orders import read_common

    order = read_common(signed.order, signed.signature)
    (posted,) = book.ledger.post_checked([Checked(order, operation(order), till)])
    assert isinstance(posted, Posted), posted

    Sealer(book.ledger.engine, NODE_KEY, ORIGIN).seal_all()
    report = audit(book.ledger.engine, node_public_key=NODE_KEY.public_key, workers=1)
    assert [(f.transfer_id, f.check) for f in report.findings] == [
        (posted.transfer_id, "signature")
    ], report.findings
    assert "counter:" in report.findings[0].message
