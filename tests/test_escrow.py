"""Escrows of plugins (civic modules): a member pays into a plugin's escrow account, and only
that plugin's key releases the units (to a producer, a project) or refunds them to the
payer, naming the rule; never more than the payment brought, on both databases."""

from __future__ import annotations

from typing import Any

import pytest

from audits.audit import audit
from ledger import posting
from ledger.operations import NODE, plugin_escrow
from ledger.posting import Posted
from ledger.sealer import Sealer
from tests.conftest import NODE_KEY, ORIGIN
from tests.factories import Book, refused, register

BASKETS = plugin_escrow("amap", "contract-7")


@pytest.fixture
def amap(book: Book) -> Book:
    """The AMAP plugin's key and escrow, a member and a producer."""
    book.keys["plugin:amap"] = register(book.ledger, NODE_KEY, "plugin:amap")
    book.keys["plugin:crowdfunding"] = register(book.ledger, NODE_KEY, "plugin:crowdfunding")
    book.ledger.open_account(BASKETS)
    book.member("camille", 10_000)
    book.member("farm")
    return book


CAMILLE, FARM = "member:camille", "member:farm"


def pay_in(book: Book, cents: int, escrow: str = BASKETS, **extra: Any) -> Posted:
    outcome = book.post(
        book.order(
            "escrow_payment",
            CAMILLE,
            from_=CAMILLE,
            to=escrow,
            amount=cents,
            currency=book.local,
            **extra,
        )
    )
    assert isinstance(outcome, Posted), outcome
    return outcome


def out(
    book: Book, kind: str, ref: int, to: str, cents: int, signer: str = "plugin:amap", **extra: Any
) -> Any:
    fields: dict[str, Any] = {"rule": "distribution_delivered", **extra}
    return book.post(
        book.order(
            kind,
            signer,
            from_=BASKETS,
            to=to,
            amount=cents,
            currency=book.local,
            ref=ref,
            **fields,
        )
    )


def test_a_member_pays_in_and_the_plugin_releases_to_the_producer(amap: Book) -> None:
    paid = pay_in(amap, 3_000)
    assert paid.postings == {CAMILLE: -3_000, BASKETS: 3_000}
    released = out(amap, "escrow_release", paid.transfer_id, FARM, 1_000)
    assert isinstance(released, Posted), released
    assert released.postings == {BASKETS: -1_000, FARM: 1_000}
    refund = out(
        amap, "escrow_refund", paid.transfer_id, CAMILLE, 500, rule="distribution_cancelled"
    )
    assert isinstance(refund, Posted), refund
    assert (amap.balance(CAMILLE), amap.balance(BASKETS), amap.balance(FARM)) == (
        7_500,
        1_500,
        1_000,
    )
    Sealer(amap.ledger.engine, NODE_KEY, ORIGIN).seal_all()
    report = audit(amap.ledger.engine, node_public_key=NODE_KEY.public_key, workers=1)
    assert report.ok, report.findings


def test_releases_and_refunds_never_exceed_the_payment(amap: Book) -> None:
    first, second = pay_in(amap, 2_000), pay_in(amap, 2_000)
    assert isinstance(out(amap, "escrow_release", first.transfer_id, FARM, 1_500), Posted)
    # The escrow holds 2,500 but only 500 of them came with the first payment.
    assert refused(out(amap, "escrow_release", first.transfer_id, FARM, 600)) == "invalid_reference"
    assert (
        refused(out(amap, "escrow_refund", first.transfer_id, CAMILLE, 501)) == "invalid_reference"
    )
    assert isinstance(out(amap, "escrow_refund", first.transfer_id, CAMILLE, 500), Posted)
    assert isinstance(out(amap, "escrow_release", second.transfer_id, FARM, 2_000), Posted)
    assert amap.balance(BASKETS) == 0


@pytest.mark.parametrize("signer", ["plugin:crowdfunding", NODE, CAMILLE, "role:treasurer"])
def test_only_the_plugins_own_key_moves_units_out(amap: Book, signer: str) -> None:
    paid = pay_in(amap, 1_000)
    outcome = out(amap, "escrow_release", paid.transfer_id, FARM, 1_000, signer=signer)
    assert refused(outcome) == "wrong_signer"
    assert amap.balance(BASKETS) == 1_000


def test_a_release_names_its_rule(amap: Book) -> None:
    paid = pay_in(amap, 1_000)
    order = amap.order(
        "escrow_release",
        "plugin:amap",
        from_=BASKETS,
        to=FARM,
        amount=1_000,
        currency=amap.local,
        ref=paid.transfer_id,
    )
    outcome = amap.post(order)
    assert refused(outcome) == "invalid_order"
    assert outcome.params["field"] == "rule"


def test_a_refund_goes_back_to_the_payer_only(amap: Book) -> None:
    paid = pay_in(amap, 1_000)
    assert refused(out(amap, "escrow_refund", paid.transfer_id, FARM, 1_000)) == "invalid_reference"


def test_units_leave_the_escrow_the_payment_went_into(amap: Book) -> None:
    other = plugin_escrow("amap", "contract-8")
    amap.ledger.open_account(other)
    pay_in(amap, 1_000, escrow=other)
    paid = pay_in(amap, 1_000)
    order = amap.order(
        "escrow_release",
        "plugin:amap",
        from_=other,
        to=FARM,
        amount=500,
        currency=amap.local,
        ref=paid.transfer_id,
        rule="distribution_delivered",
    )
    assert refused(amap.post(order)) == "invalid_reference"


@pytest.mark.parametrize("escrow", ["escrow:card:12", "member:farm", "association:fees"])
def test_escrow_payments_go_only_to_a_plugins_escrow(amap: Book, escrow: str) -> None:
    order = amap.order(
        "escrow_payment", CAMILLE, from_=CAMILLE, to=escrow, amount=100, currency=amap.local
    )
    assert refused(amap.post(order)) == "invalid_order"
    assert amap.balance(CAMILLE) == 10_000


def test_the_audit_finds_an_escrow_released_beyond_its_payment(
    amap: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Had the ledger let it through (here made to forget what was released), the audit
    still finds more given out than the payment brought."""
    paid, other = pay_in(amap, 1_000), pay_in(amap, 1_000)
    assert isinstance(out(amap, "escrow_release", paid.transfer_id, FARM, 800), Posted)
    monkeypatch.setattr(posting, "_claim_refusal", lambda *args: None)
    assert isinstance(out(amap, "escrow_release", paid.transfer_id, FARM, 700), Posted)
    assert other.transfer_id
    Sealer(amap.ledger.engine, NODE_KEY, ORIGIN).seal_all()
    report = audit(amap.ledger.engine, node_public_key=NODE_KEY.public_key, workers=1)
    assert [f.message for f in report.findings] == [
        f"transfer {report.findings[0].transfer_id}: what was given back of transfer "
        f"{paid.transfer_id} (refunds, escrow releases) adds up to 1500, more than its 1000"
    ]
