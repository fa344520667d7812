"""The ledger's contract on both databases: what is accepted, what is refused and why."""

from __future__ import annotations

import pytest

from ledger import posting
from ledger.posting import Posted
from tests.factories import Book, refused


def test_payment_moves_money_and_keeps_zero_sum(book: Book) -> None:
    alice, bob = book.member("alice", 10_000), book.member("bob")
    posted = book.post(book.payment(alice, bob, 2_500))
    assert isinstance(posted, Posted)
    assert posted.postings == {alice: -2_500, bob: 2_500}
    assert (book.balance(alice), book.balance(bob)) == (7_500, 2_500)


def test_overdraft_is_refused_and_changes_nothing(book: Book) -> None:
    alice, bob = book.member("alice", 1_000), book.member("bob")
    assert refused(book.post(book.payment(alice, bob, 1_001))) == "insufficient_funds"
    assert (book.balance(alice), book.balance(bob)) == (1_000, 0)


def test_when_python_misses_a_rule_the_database_refuses_only_that_order(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the overdraft check switched off in Python (a bug), the schema's CHECK still
    refuses the overdraft; the other orders of the batch are posted."""
    alice, bob, carol = book.member("alice", 1_000), book.member("bob", 500), book.member("carol")
    monkeypatch.setattr(posting, "_overdraft", lambda *args: None)
    good, bad = book.payment(bob, carol, 200), book.payment(alice, carol, 5_000)
    outcomes = book.ledger.post([good, bad])
    assert isinstance(outcomes[0], Posted)
    assert refused(outcomes[1]) == "refused_by_database"
    assert (book.balance(alice), book.balance(bob), book.balance(carol)) == (1_000, 300, 200)


def test_an_order_alone_that_only_the_database_refuses_is_a_refusal(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posted on its own (not in a batch with others), the order gets the same named
    refusal, not the database's exception."""
    alice, carol = book.member("alice", 1_000), book.member("carol")
    monkeypatch.setattr(posting, "_overdraft", lambda *args: None)
    assert refused(book.post(book.payment(alice, carol, 5_000))) == "refused_by_database"
    assert (book.balance(alice), book.balance(carol)) == (1_000, 0)
