"""A statement line as the parsers read it, before it is stored: plain facts, in cents."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

MAX_BYTES = 5_000_000  # a year of a village association's bank lines is far less
MAX_TEXT = 140  # ISO 20022's Max140Text


@dataclass(frozen=True)
class ParsedLine:
    booked: date
    amount: int  # cents; + into the account, - out of it
    value_date: date | None = None
    reference: str | None = None  # the bank's own reference of the line (AcctSvcrRef)
    end_to_end: str | None = None
    extra_ref: str | None = None
    label: str = ""

    def fingerprint(self) -> str:
        """What identifies the line when the bank gives no reference of its own."""
        fields = (
            self.booked.isoformat(),
            self.value_date.isoformat() if self.value_date else "",
            str(self.amount),
            self.end_to_end or "",
            self.label,
        )
        return "h:" + hashlib.sha256("\x1f".join(fields).encode()).hexdigest()[:40]

    def base_key(self) -> str:
        return f"r:{self.reference}" if self.reference else self.fingerprint()


@dataclass(frozen=True)
class Statement:
    """What one file (or one read of Stripe) holds."""

    lines: list[ParsedLine]
    account_id: str | None = None  # the IBAN the statement names, if any
    name: str = ""


def clip(text: str | None) -> str | None:
    """A reference as stored: trimmed, at most 140 characters, None when empty."""
    if text is None:
        return None
    cleaned = " ".join(text.split())[:MAX_TEXT]
    return cleaned or None


_FIGURE = re.compile(r"^[+-]?\d+(\.\d{1,2})?$")


def cents(figure: str, *, decimal_comma: bool) -> int:
    """Cents of a written amount ("1 234,56", "-12.30"); ValueError when it is not one."""
    text = figure.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    if decimal_comma:
        text = text.replace(".", "").replace(",", ".")
    if not _FIGURE.match(text):
        raise ValueError(f"{figure.strip()!r} is not an amount")
    try:
        return int(Decimal(text) * 100)
    except InvalidOperation as exc:  # pragma: no cover - the pattern rules it out
        raise ValueError(f"{figure!r} is not an amount") from exc
