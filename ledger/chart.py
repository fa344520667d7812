"""The chart of accounts: which account codes exist, on which currency ledger, with which flags.

Account kinds are data, not code paths: each kind says on which ledger it lives (the local
unit or EUR), whether it may go below zero, and whether it counts in the backing invariant
(DESIGN.md, must 4): euros held in *backing* accounts must always cover the local units
*outstanding* (in members' wallets, escrows, the association's own accounts, sold notes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from ledger.errors import InvalidOrder

EUR = "EUR"
CURRENCY_CODE = re.compile(r"^[A-Z][A-Z0-9]{2,7}$")
ACCOUNT_CODE = re.compile(r"^[a-z][a-z0-9_]*(:[a-z0-9][a-z0-9_.-]{0,47}){1,3}$")
MAX_CODE_LENGTH = 96


class Kind(StrEnum):
    ISSUANCE = "issuance"
    NOTES_STOCK = "notes_stock"
    NOTES_OFFICE = "notes_office"
    NOTES_CIRCULATION = "notes_circulation"
    MEMBER = "member"
    ESCROW = "escrow"
    ASSOCIATION = "association"
    RESERVE = "reserve"
    CLEARING = "clearing"
    OFFICE_CASH = "office_cash"
    PAYOUTS = "payouts"
    EXTERNAL = "external"


@dataclass(frozen=True)
class KindRule:
    pattern: re.Pattern[str]
    local: bool  # on the local unit ledger (else EUR)
    may_go_negative: bool
    backing: bool = False  # euros held to back the units: bank, Stripe balance, office till
    outstanding: bool = False  # local units in circulation


_ID = r"[a-z0-9][a-z0-9_.-]{0,47}"

RULES: dict[Kind, KindRule] = {
    # Issuance accounts hold minus the units created: they are the only local source.
    Kind.ISSUANCE: KindRule(re.compile(r"^issuance:(digital|paper)$"), True, True),
    Kind.NOTES_STOCK: KindRule(re.compile(r"^notes:stock$"), True, False),
    Kind.NOTES_OFFICE: KindRule(re.compile(rf"^notes:office:{_ID}$"), True, False),
    Kind.NOTES_CIRCULATION: KindRule(
        re.compile(r"^notes:circulation$"), True, False, outstanding=True
    ),
    Kind.MEMBER: KindRule(re.compile(rf"^member:{_ID}$"), True, False, outstanding=True),
    Kind.ESCROW: KindRule(re.compile(rf"^escrow:{_ID}:{_ID}$"), True, False, outstanding=True),
    Kind.ASSOCIATION: KindRule(re.compile(rf"^association:{_ID}$"), True, False, outstanding=True),
    Kind.RESERVE: KindRule(re.compile(r"^reserve:(digital|paper)$"), False, False, backing=True),
    Kind.CLEARING: KindRule(re.compile(r"^clearing:stripe$"), False, False, backing=True),
    Kind.OFFICE_CASH: KindRule(re.compile(rf"^office:{_ID}:cash$"), False, False, backing=True),
    Kind.PAYOUTS: KindRule(re.compile(r"^payouts:pending$"), False, False),
    # The outside world: euros come from it and go back to it.
    Kind.EXTERNAL: KindRule(re.compile(r"^external:eur$"), False, True),
}

BACKING_KINDS = frozenset(k for k, r in RULES.items() if r.backing)
OUTSTANDING_KINDS = frozenset(k for k, r in RULES.items() if r.outstanding)

# The accounts every node opens at `sou init`.
SYSTEM_ACCOUNTS = (
    "issuance:digital",
    "issuance:paper",
    "notes:stock",
    "notes:circulation",
    "association:fees",
    "association:cause",
    "reserve:digital",
    "reserve:paper",
    "clearing:stripe",
    "payouts:pending",
    "external:eur",
)


@lru_cache(maxsize=65536)
def kind_of(code: str) -> Kind:
    """The kind of an account code, or InvalidOrder if the code is outside the chart."""
    if len(code) <= MAX_CODE_LENGTH and ACCOUNT_CODE.match(code):
        for kind, rule in RULES.items():
            if rule.pattern.match(code):
                return kind
    raise InvalidOrder("account", f"{code!r} is not an account code of this ledger")


@dataclass(frozen=True)
class Chart:
    """The chart bound to one node's local currency code (e.g. "SOU", "EUSKO")."""

    local: str

    def __post_init__(self) -> None:
        if not CURRENCY_CODE.match(self.local) or self.local == EUR:
            raise ValueError(f"{self.local!r} is not a valid local currency code")

    def currency_of(self, code: str) -> str:
        return self.local if RULES[kind_of(code)].local else EUR

    def may_go_negative(self, code: str) -> bool:
        return RULES[kind_of(code)].may_go_negative


def member_account(member_id: str) -> str:
    return f"member:{member_id}"


def office_cash(office_id: str) -> str:
    return f"office:{office_id}:cash"


def backing_delta(postings: dict[str, int]) -> int:
    """How much a set of postings changes (euros in backing) - (units outstanding).

    Every transfer must keep this >= 0, so that by induction from an empty ledger the
    euros in reserve always cover the units in circulation.
    """
    delta = 0
    for code, amount in postings.items():
        rule = RULES[kind_of(code)]
        if rule.backing:
            delta += amount
        elif rule.outstanding:
            delta -= amount
    return delta


@dataclass(frozen=True)
class Backing:
    """What the balances of the chart's accounts say of the backing: the euros in reserve,
    and the local units outstanding, digital and as notes in circulation."""

    reserve: int
    digital: int
    paper: int

    @property
    def outstanding(self) -> int:
        return self.digital + self.paper


def backing(balances: Mapping[str, int]) -> Backing:
    """The backing the `balances` (account code -> balance) give; an account outside the
    chart counts for nothing (the audit reports it)."""
    reserve = digital = paper = 0
    for code, balance in balances.items():
        try:
            kind = kind_of(code)
        except InvalidOrder:
            continue
        rule = RULES[kind]
        if rule.backing:
            reserve += balance
        elif kind is Kind.NOTES_CIRCULATION:
            paper += balance
        elif rule.outstanding:
            digital += balance
    return Backing(reserve, digital, paper)
