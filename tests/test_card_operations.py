"""Card payments taken back, at the ledger: holds into a top-up's escrow, releases back,
reversals out of circulation. Only the node signs them (its card rules), only against a
card top-up, only for that top-up's member and escrow, never more than the top-up; and the
reserve still covers every unit. What a card payment taken back left owed, the treasurer
writes off in one transfer: the association's euros in, the card's out, the wallet as it was.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import false, func, select

from audits.audit import audit
from ledger import repository as repo
from ledger.chart import RULES, kind_of
from ledger.errors import LedgerError
from ledger.models import transfers
from ledger.operations import NODE, TREASURER, card_escrow
from ledger.posting import Posted
from ledger.signing import SignedOrder
from tests.conftest import NODE_KEY
from tests.factories import Book, refused

RULE = "stripe.charge.dispute.created"


def _card(book: Book, member: str, cents: int) -> int:
    """A card top-up of `member` (as the webhook credits it); its transfer id."""
    return book.topup(member, cents).transfer_id


def _node_order(book: Book, kind: str, signer: str = NODE, **fields: Any) -> SignedOrder:
    fields.setdefault("currency", book.local)
    if signer == NODE:
        fields.setdefault("rule", RULE)
    return book.order(kind, signer, **fields)


def _hold(book: Book, member: str, topup: int, cents: int, **extra: Any) -> SignedOrder:
    return _node_order(
        book, "card_hold", from_=member, to=card_escrow(topup), amount=cents, ref=topup, **extra
    )


def _backing_holds(book: Book) -> None:
    """Euros in backing accounts cover the units outstanding (DESIGN.md, must 4)."""
    with book.ledger.reading() as conn:
        balances = repo.balances(conn)
    backing = sum(v for code, v in balances.items() if RULES[kind_of(code)].backing)
    outstanding = sum(v for code, v in balances.items() if RULES[kind_of(code)].outstanding)
    assert backing >= outstanding, (backing, outstanding)


def test_hold_release_and_reversal_move_units_as_the_dispute_goes(book: Book) -> None:
    camille = book.member("camille")
    topup = _card(book, camille, 3_000)
    escrow = card_escrow(topup)
    book.ledger.ensure_accounts([escrow])

    held = book.post(_hold(book, camille, topup, 2_000))
    assert isinstance(held, Posted), held
    assert (book.balance(camille), book.balance(escrow)) == (1_000, 2_000)

    released = book.post(
        _node_order(book, "card_release", from_=escrow, to=camille, amount=500, ref=topup)
    )
    assert isinstance(released, Posted), released
    assert (book.balance(camille), book.balance(escrow)) == (1_500, 1_500)

    clearing = book.balance("clearing:stripe")
    lost = book.post(_node_order(book, "card_reversal", from_=escrow, amount=1_500, ref=topup))
    assert isinstance(lost, Posted), lost
    assert lost.postings == {
        escrow: -1_500,
        "issuance:digital": 1_500,
        "clearing:stripe": -1_500,
        "external:eur": 1_500,
    }
    assert book.balance(escrow) == 0
    assert book.balance("clearing:stripe") == clearing - 1_500
    refund = book.post(_node_order(book, "card_reversal", from_=camille, amount=1_000, ref=topup))
    assert isinstance(refund, Posted), refund
    assert book.balance(camille) == 500
    _backing_holds(book)


def test_only_a_card_topup_can_be_taken_back(book: Book) -> None:
    camille = book.member("camille")
    bank = book.ledger.transfer(
        book.order("topup", TREASURER, to=camille, amount=2_000, currency=book.local, source="bank")
    )
    louis = book.member("louis", 1_000)
    payment = book.ledger.transfer(book.payment(louis, camille, 500))
    for ref in (bank.transfer_id, payment.transfer_id):  # a bank top-up, then a payment
        book.ledger.ensure_accounts([card_escrow(ref)])
        assert refused(book.post(_hold(book, camille, ref, 100))) == "invalid_reference"
        reversal = _node_order(book, "card_reversal", from_=camille, amount=100, ref=ref)
        assert refused(book.post(reversal)) == "invalid_reference"
    assert book.balance(camille) == 2_500


def test_a_hold_takes_only_from_the_topups_member_into_its_own_escrow(book: Book) -> None:
    camille, louis = book.member("camille"), book.member("louis")
    mine, theirs = _card(book, camille, 2_000), _card(book, louis, 2_000)
    book.ledger.ensure_accounts([card_escrow(mine), card_escrow(theirs)])

    assert refused(book.post(_hold(book, louis, mine, 500))) == "invalid_reference"
    wrong_escrow = _node_order(
        book, "card_hold", from_=camille, to=card_escrow(theirs), amount=500, ref=mine
    )
    assert refused(book.post(wrong_escrow)) == "invalid_reference"
    release_to_louis = _node_order(
        book, "card_release", from_=card_escrow(mine), to=louis, amount=1, ref=mine
    )
    assert refused(book.post(release_to_louis)) == "invalid_reference"
    reverse_louis = _node_order(book, "card_reversal", from_=louis, amount=500, ref=mine)
    assert refused(book.post(reverse_louis)) == "invalid_reference"
    assert (book.balance(camille), book.balance(louis)) == (2_000, 2_000)


def test_never_more_than_the_topup_nor_more_than_the_wallet_holds(book: Book) -> None:
    camille = book.member("camille")
    small, large = _card(book, camille, 1_000), _card(book, camille, 5_000)
    book.ledger.ensure_accounts([card_escrow(small), card_escrow(large)])
    assert refused(book.post(_hold(book, camille, small, 1_001))) == "invalid_order"
    over = _node_order(book, "card_reversal", from_=camille, amount=1_001, ref=small)
    assert refused(book.post(over)) == "invalid_order"
    assert book.balance(camille) == 6_000

    louis = book.member("louis")
    book.ledger.transfer(book.payment(camille, louis, 5_500))
    assert refused(book.post(_hold(book, camille, small, 600))) == "insufficient_funds"
    assert refused(book.post(_hold(book, camille, large, 600))) == "insufficient_funds"
    assert book.balance(camille) == 500
    _backing_holds(book)


@pytest.mark.parametrize("signer", [TREASURER, "member:camille"])
def test_only_the_node_signs_card_rules(book: Book, signer: str) -> None:
    camille = book.member("camille")
    topup = _card(book, camille, 2_000)
    book.ledger.ensure_accounts([card_escrow(topup)])
    escrow = card_escrow(topup)
    orders = [
        _node_order(book, "card_hold", signer, from_=camille, to=escrow, amount=500, ref=topup),
        _node_order(book, "card_release", signer, from_=escrow, to=camille, amount=1, ref=topup),
        _node_order(book, "card_reversal", signer, from_=camille, amount=500, ref=topup),
    ]
    for order in orders:
        assert refused(book.post(order)) == "wrong_signer"
    assert book.balance(camille) == 2_000


def test_the_node_names_the_rule_it_applies(book: Book) -> None:
    camille = book.member("camille")
    topup = _card(book, camille, 2_000)
    book.ledger.ensure_accounts([card_escrow(topup)])
    unnamed = book.order(
        "card_hold",
        NODE,
        from_=camille,
        to=card_escrow(topup),
        amount=500,
        ref=topup,
        currency=book.local,
    )
    assert refused(book.post(unnamed)) == "invalid_order"
    assert book.balance(camille) == 2_000


def test_reversals_of_one_topup_never_add_up_to_more_than_it(book: Book) -> None:
    camille = book.member("camille")
    topup = _card(book, camille, 1_000)
    _card(book, camille, 5_000)
    first = book.post(_node_order(book, "card_reversal", from_=camille, amount=800, ref=topup))
    assert isinstance(first, Posted)
    second = _node_order(book, "card_reversal", from_=camille, amount=800, ref=topup)
    assert refused(book.post(second)) in ("invalid_reference", "invalid_order")


# -- the treasurer writes off what a card payment left owed ------------------------------------


def _write_off(book: Book, topup: int, cents: int, signer: str = TREASURER) -> SignedOrder:
    return book.order(
        "card_write_off",
        signer,
        amount=cents,
        currency=book.local,
        ref=topup,
        ext=f"card-writeoff:{topup}",
        **({"rule": RULE} if signer == NODE else {}),
    )


def _ledger(book: Book) -> tuple[dict[str, int], int]:
    """Every account's balance and the number of transfers: what a refusal leaves as it was."""
    with book.ledger.reading() as conn:
        count = conn.scalar(select(func.count()).select_from(transfers))
        return repo.balances(conn), int(count or 0)


def _moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What changed, account by account (accounts that did not move left out)."""
    moved = {code: after[code] - before.get(code, 0) for code in after}
    return {code: cents for code, cents in moved.items() if cents}


def test_a_write_off_moves_every_account_as_a_bank_topup_and_a_reversal_did(book: Book) -> None:
    """The treasurer's write-off is one transfer; the two posts it replaces (a bank top-up
    of the member, the node's reversal of the same units) moved every account the same."""
    camille, louis, shop = book.member("camille"), book.member("louis"), book.member("shop")
    old, new = _card(book, camille, 2_000), _card(book, louis, 2_000)
    for member in (camille, louis):  # spent: Stripe then takes the card euros back
        book.ledger.transfer(book.payment(member, shop, 2_000))

    before, _ = _ledger(book)
    bank = book.order(
        "topup", TREASURER, to=camille, amount=1_500, currency=book.local, source="bank"
    )
    assert isinstance(book.post(bank), Posted)
    reversal = _node_order(book, "card_reversal", from_=camille, amount=1_500, ref=old)
    assert isinstance(book.post(reversal), Posted)
    middle, _ = _ledger(book)
    two_posts = _moved(before, middle)

    written = book.post(_write_off(book, new, 1_500))
    assert isinstance(written, Posted), written
    after, _ = _ledger(book)
    assert written.kind == "card_write_off"
    assert written.postings == two_posts == _moved(middle, after)
    # The association's euros into the reserve, the card euros Stripe kept out of clearing;
    # no unit created or destroyed, the member's wallet as it was.
    assert written.postings == {"reserve:digital": 1_500, "clearing:stripe": -1_500}
    assert (book.balance(louis), book.balance("issuance:digital")) == (
        0,
        middle["issuance:digital"],
    )
    _backing_holds(book)


@pytest.mark.parametrize("signer", [NODE, "member:camille"])
def test_only_the_treasurer_writes_off(book: Book, signer: str) -> None:
    camille = book.member("camille")
    topup = _card(book, camille, 2_000)
    before = _ledger(book)
    assert refused(book.post(_write_off(book, topup, 500, signer))) == "wrong_signer"
    assert _ledger(book) == before


def test_a_write_off_refers_to_a_card_topup_and_never_gives_back_more_than_it(
    book: Book,
) -> None:
    camille = book.member("camille")
    bank = book.ledger.transfer(
        book.order("topup", TREASURER, to=camille, amount=2_000, currency=book.local, source="bank")
    )
    louis = book.member("louis", 1_000)
    payment = book.ledger.transfer(book.payment(louis, camille, 500))
    topup = _card(book, camille, 1_000)
    _card(book, camille, 5_000)  # euros enough in clearing: only the top-up's limit counts
    before = _ledger(book)
    for ref in (bank.transfer_id, payment.transfer_id):  # not card top-ups
        assert refused(book.post(_write_off(book, ref, 100))) == "invalid_reference"
    assert refused(book.post(_write_off(book, topup, 1_001))) == "invalid_order"
    assert _ledger(book) == before

    # Reversals and write-offs of one top-up add up to at most its amount, either first.
    taken = _node_order(book, "card_reversal", from_=camille, amount=700, ref=topup)
    assert isinstance(book.post(taken), Posted)
    over = book.post(_write_off(book, topup, 301))
    assert refused(over) == "invalid_reference"
    assert isinstance(over, LedgerError) and over.params["refundable"] == 300
    assert isinstance(book.post(_write_off(book, topup, 300)), Posted)
    after = _ledger(book)
    again = _node_order(book, "card_reversal", from_=camille, amount=1, ref=topup)
    assert refused(book.post(again)) == "invalid_reference"
    assert refused(book.post(_write_off(book, topup, 1))) == "invalid_reference"
    # Part of it given back, the top-up can no longer be corrected as if whole.
    correction = book.order("correction", TREASURER, ref=topup, memo="typed twice")
    assert refused(book.post(correction)) == "invalid_reference"
    assert _ledger(book) == after
    _backing_holds(book)


def test_the_audit_finds_reversals_and_write_offs_beyond_their_topup(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Had the ledger let them through (here it is made to forget what was given back),
    the audit still finds a top-up given back more than it issued."""
    camille = book.member("camille")
    topup = _card(book, camille, 1_000)
    _card(book, camille, 5_000)
    monkeypatch.setattr(repo, "_TAKEN_BACK", false())
    taken = _node_order(book, "card_reversal", from_=camille, amount=700, ref=topup)
    assert isinstance(book.post(taken), Posted)
    written = book.post(_write_off(book, topup, 700))
    assert isinstance(written, Posted)
    findings = audit(book.ledger.engine, node_public_key=NODE_KEY.public_key, workers=1).findings
    assert [f.message for f in findings] == [
        f"transfer {written.transfer_id}: card reversals and write-offs of top-up {topup} "
        "add up to 1400, more than its 1000"
    ]


def test_a_write_off_the_stripe_account_cannot_cover_changes_nothing(book: Book) -> None:
    camille = book.member("camille")
    topup = _card(book, camille, 2_000)
    # Stripe paid all but 5 euros out to the bank: the ledger's Stripe account holds 500.
    payout = book.order("settlement", TREASURER, amount=1_500, ext="po_1")
    assert isinstance(book.post(payout), Posted)
    before = _ledger(book)
    outcome = book.post(_write_off(book, topup, 600))
    assert refused(outcome) == "insufficient_funds"
    assert isinstance(outcome, LedgerError) and outcome.params["account"] == "clearing:stripe"
    assert _ledger(book) == before
    _backing_holds(book)


def test_a_write_off_carries_no_member_nor_source(book: Book) -> None:
    camille = book.member("camille")
    topup = _card(book, camille, 2_000)
    before = _ledger(book)
    for extra in ({"from": camille}, {"to": camille}, {"source": "bank"}):
        order = book.order(
            "card_write_off", TREASURER, amount=500, currency=book.local, ref=topup, **extra
        )
        assert refused(book.post(order)) == "invalid_order"
    euros = book.order("card_write_off", TREASURER, amount=500, currency="EUR", ref=topup)
    assert refused(book.post(euros)) == "invalid_order"
    assert _ledger(book) == before
