"""The ledger's contract on both databases: what is accepted, what is refused and why."""

from __future__ import annotations

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
