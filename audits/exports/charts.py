"""Where each ledger account goes in the accountant's books: a beancount account name and a
French chart (plan comptable général) account. docs/treasurer-exports.md explains why.

The ledger signs amounts as the holder sees them: + means more in the account. The books are
the association's, the issuer of the units: the units a member holds are what the association
owes them. So local-unit amounts change sign in the books (`issuer_view`); euro amounts keep
theirs (a euro in the reserve is the association's asset).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from ledger.chart import EUR, Kind, kind_of

# -- beancount -------------------------------------------------------------------------------

_FIXED = {
    "issuance:digital": "Equity:Issuance:Digital",
    "issuance:paper": "Equity:Issuance:Paper",
    "notes:stock": "Equity:Notes:Stock",
    "notes:circulation": "Liabilities:Notes:Circulation",
    "association:fees": "Income:Fees",
    "association:cause": "Liabilities:Cause",
    "reserve:digital": "Assets:Reserve:Digital",
    "reserve:paper": "Assets:Reserve:Paper",
    "payouts:pending": "Assets:Reserve:PayoutsPending",
    "clearing:stripe": "Assets:Clearing:Stripe",
    "external:eur": "Equity:External",
}
# Kinds with an id in their code: the root the ids go under, and the id's place in the code.
_BY_ID = {
    Kind.MEMBER: "Liabilities:Members",
    Kind.ESCROW: "Liabilities:Escrow",
    Kind.NOTES_OFFICE: "Equity:Notes:Office",
    Kind.OFFICE_CASH: "Assets:Offices",
    Kind.ASSOCIATION: "Equity:Association",
}


def issuer_view(amount: int, currency: str) -> int:
    """An amount as the association's books show it (debit +, credit -)."""
    return amount if currency == EUR else -amount


def _component(part: str) -> str:
    # Beancount names: each part starts with a capital or a digit, then letters, digits, -.
    cleaned = re.sub(r"[^a-z0-9-]", "-", part)
    return cleaned[:1].upper() + cleaned[1:]


def _readable(code: str) -> str:
    if code in _FIXED:
        return _FIXED[code]
    kind = kind_of(code)
    parts = code.split(":")[1:]
    if kind is Kind.NOTES_OFFICE:
        parts = parts[1:]  # notes:office:<id>
    names = [_component(p) for p in parts]
    if kind is Kind.OFFICE_CASH:
        names = [names[0], "Cash"]  # office:<id>:cash
    return ":".join([_BY_ID[kind], *names])


def beancount_names(codes: Iterable[str]) -> dict[str, str]:
    """A beancount account for each code. Ids differing only by `_` or `.` would share a
    name: those names get a short hash of their code, so that no two accounts merge."""
    readable = {code: _readable(code) for code in set(codes)}
    taken: dict[str, int] = {}
    for name in readable.values():
        taken[name] = taken.get(name, 0) + 1
    return {
        code: name if taken[name] == 1 else f"{name}-{_short_hash(code)}"
        for code, name in readable.items()
    }


def _short_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:8].upper()


# -- the French chart of accounts (for the FEC) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class PcgAccount:
    number: str  # CompteNum
    label: str  # CompteLib
    aux_number: str = ""  # CompAuxNum (an exchange office's till)
    aux_label: str = ""


RESERVE_DIGITAL = PcgAccount("5121", "Banque - réserve des unités numériques")
RESERVE_PAPER = PcgAccount("5122", "Banque - réserve des billets")
STRIPE = PcgAccount("5115", "Cartes bancaires à l'encaissement (Stripe)")
UNITS_OWED = PcgAccount("4671", "Unités numériques dues aux porteurs")
NOTES_OWED = PcgAccount("4672", "Billets en circulation dus aux porteurs")
CAUSE_OWED = PcgAccount("4673", "Part des commissions due à la cause")
OWN_UNITS = PcgAccount("4678", "Unités propres de l'association")
CONVERSIONS = PcgAccount("4676", "Conversions en cours - reconversions à payer")
FEES = PcgAccount("706", "Prestations de services - commissions de reconversion")

_PCG_FIXED = {
    "reserve:digital": RESERVE_DIGITAL,
    # Euros set aside for a reconversion stay in the reserve's bank account until paid out.
    "payouts:pending": RESERVE_DIGITAL,
    "reserve:paper": RESERVE_PAPER,
    "clearing:stripe": STRIPE,
    "notes:circulation": NOTES_OWED,
    "association:fees": FEES,
    "association:cause": CAUSE_OWED,
}
# The ledger's counterweights of a conversion (units made or destroyed, euros from or to the
# outside world, notes not yet sold) meet in one account: they cancel out within a top-up or
# a note sale, and what stays there is what reconversions owe until they are paid out.
_CONVERSION_KINDS = {Kind.ISSUANCE, Kind.NOTES_STOCK, Kind.NOTES_OFFICE, Kind.EXTERNAL}


@lru_cache(maxsize=65536)  # called for every posting of the period
def pcg_account(code: str) -> PcgAccount:
    """The plan comptable account of a ledger account."""
    if code in _PCG_FIXED:
        return _PCG_FIXED[code]
    kind = kind_of(code)
    if kind in _CONVERSION_KINDS:
        return CONVERSIONS
    if kind in (Kind.MEMBER, Kind.ESCROW):
        return UNITS_OWED
    if kind is Kind.OFFICE_CASH:
        office = code.split(":")[1]
        return PcgAccount("531", "Caisse", f"CAISSE-{office.upper()}", f"Comptoir {office}")
    return OWN_UNITS
