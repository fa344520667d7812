"""Small factories for ledger tests: members with keys, signed orders, postings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger.canonical import canonical
from ledger.chart import member_account
from ledger.errors import LedgerError
from ledger.operations import NODE
from ledger.posting import Outcome, Posted
from ledger.service import Ledger, key_event
from ledger.signing import SignedOrder, SigningKey, new_order


def register(
    ledger: Ledger, node_key: SigningKey, owner: str, key: SigningKey | None = None
) -> SigningKey:
    """Register a key for `owner`, signed by the node key (as sign-up does)."""
    key = key or SigningKey.generate()
    event = key_event(
        "register", origin=ledger.origin, owner=owner, public_key=key.public_key, signer=node_key
    )
    ledger.register_key(event, node_key.sign_bytes(canonical(event)))
    return key


@dataclass
class Book:
    ledger: Ledger
    node_key: SigningKey
    keys: dict[str, SigningKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys.setdefault(NODE, self.node_key)

    @property
    def local(self) -> str:
        return self.ledger.chart.local

    def member(self, name: str, balance: int = 0) -> str:
        """Open a member account with a registered key, topped up by card with `balance`."""
        code = member_account(name)
        self.ledger.open_account(code)
        self.keys[code] = register(self.ledger, self.node_key, code)
        if balance:
            self.topup(code, balance)
        return code

    def order(self, kind: str, signer: str, **fields: Any) -> SignedOrder:
        key = self.keys[signer]
        fields = {("from" if k == "from_" else k): v for k, v in fields.items()}
        return key.sign(new_order(kind, key, self.ledger.origin, **fields))

    def payment(self, payer: str, payee: str, amount: int, **extra: Any) -> SignedOrder:
        return self.order(
            "payment", payer, from_=payer, to=payee, amount=amount, currency=self.local, **extra
        )

    def topup(self, member: str, amount: int) -> Posted:
        return self.ledger.transfer(
            self.order(
                "topup",
                NODE,
                to=member,
                amount=amount,
                currency=self.local,
                source="card",
                rule="stripe",
            )
        )

    def post(self, signed: SignedOrder) -> Outcome:
        return self.ledger.post([signed])[0]

    def balance(self, code: str) -> int:
        return self.ledger.balance(code)


def refused(outcome: Outcome) -> str:
    """The error code of a refused outcome (fails the test if it was accepted)."""
    assert isinstance(outcome, LedgerError), f"expected a refusal, got {outcome}"
    return outcome.code
