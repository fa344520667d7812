"""The ledger's redemption with a cause's share of the fee (`cause_fee`): its postings,
its limits, and the backing invariant through payouts and corrections."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from audits.audit import audit
from ledger import repository
from ledger.chart import backing_delta
from ledger.posting import Posted
from ledger.sealer import Sealer
from tests.conftest import NODE_KEY, ORIGIN
from tests.factories import Book, refused

TREASURER = "role:treasurer"


@pytest.fixture
def shop(book: Book) -> str:
    """A merchant holding 100.00 units; the card payments behind them reached the bank."""
    code = book.member("shop", 10_000)
    book.ledger.transfer(book.order("settlement", TREASURER, amount=10_000))
    return code


def redeem(book: Book, member: str, amount: int, fee: Any, **extra: Any) -> Any:
    return book.post(
        book.order(
            "redemption", member, from_=member, amount=amount, fee=fee, currency=book.local, **extra
        )
    )


def balances(book: Book) -> dict[str, int]:
    with book.ledger.reading() as conn:
        return repository.balances(conn)


def test_the_fee_is_split_between_the_association_and_the_cause(book: Book, shop: str) -> None:
    done = redeem(book, shop, 10_000, 300, cause_fee=100)
    assert isinstance(done, Posted)
    assert done.postings == {
        shop: -10_000,
        "association:fees": 200,
        "association:cause": 100,
        "issuance:digital": 9_700,
        "reserve:digital": -9_700,
        "payouts:pending": 9_700,
    }
    assert backing_delta(done.postings) == 0  # units out exactly as euros set aside
    assert (book.balance("association:fees"), book.balance("association:cause")) == (200, 100)
    assert book.balance("payouts:pending") == 9_700


def test_a_whole_fee_for_the_cause_posts_no_association_leg(book: Book, shop: str) -> None:
    done = redeem(book, shop, 1_000, 30, cause_fee=30)
    assert isinstance(done, Posted)
    assert "association:fees" not in done.postings
    assert done.postings["association:cause"] == 30


@pytest.mark.parametrize("extra", [{}, {"cause_fee": 0}])
def test_no_cause_fee_keeps_the_whole_fee(book: Book, shop: str, extra: dict[str, int]) -> None:
    done = redeem(book, shop, 1_000, 30, **extra)
    assert isinstance(done, Posted)
    assert "association:cause" not in done.postings
    assert done.postings["association:fees"] == 30


@pytest.mark.parametrize(
    ("fee", "cause_fee"),
    [
        (30, 31),  # more than the fee
        (0, 1),
        (30, -1),
        (30, 10.0),
        (30, "10"),
        (30, True),
        (30, None),
        (1_000, 0),  # a fee must leave something to pay out
        (-1, 0),
    ],
)
def test_impossible_cause_fees_are_refused(book: Book, shop: str, fee: Any, cause_fee: Any) -> None:
    before = balances(book)
    order = book.order("redemption", shop, from_=shop, amount=1_000, fee=fee, currency=book.local)
    order.order["cause_fee"] = cause_fee  # even null: a present field is judged
    signed = book.keys[shop].sign(order.order)
    assert refused(book.post(signed)) == "invalid_order"
    assert balances(book) == before


def test_backing_holds_through_payout_and_correction(book: Book, engine: Engine, shop: str) -> None:
    paid = redeem(book, shop, 4_000, 120, cause_fee=40)
    kept = redeem(book, shop, 3_000, 90, cause_fee=30)
    assert isinstance(paid, Posted) and isinstance(kept, Posted)
    payout = book.order("payout", TREASURER, ref=paid.transfer_id, amount=3_880, bank_ref="VIR-1")
    assert isinstance(book.post(payout), Posted)
    back = book.order("correction", TREASURER, ref=kept.transfer_id, memo="rejected")
    corrected = book.post(back)
    assert isinstance(corrected, Posted)
    assert corrected.postings == {code: -amount for code, amount in kept.postings.items()}
    assert book.balance(shop) == 10_000 - 4_000
    assert (book.balance("association:fees"), book.balance("association:cause")) == (80, 40)
    assert book.balance("payouts:pending") == 0
    final = balances(book)
    units = sum(v for k, v in final.items() if k.startswith(("member:", "association:")))
    euros = sum(v for k, v in final.items() if k.startswith(("reserve:", "clearing:")))
    assert euros >= units
    Sealer(engine, NODE_KEY, ORIGIN).seal_all()
    report = audit(engine, node_public_key=NODE_KEY.public_key, workers=1)
    assert report.ok, report.findings
