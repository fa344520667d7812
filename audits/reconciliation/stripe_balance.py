"""Stripe's balance transactions: read through the API (the `stripe` library's
`StripeClient`) or from the CSV export of the dashboard's balance history (the fallback).

A line is the transaction's gross amount (what the ledger records for a card top-up, a
refund, a payout); Stripe's fee is kept in the label. Its key is Stripe's own id (txn_...).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

import stripe

from audits.reconciliation import errors
from audits.reconciliation.parsed import ParsedLine, Statement, cents, clip

# The dashboard's export ("Balance history", all columns) and the itemised report's names.
COLUMNS = {
    "id": ("id", "balance_transaction_id"),
    "type": ("type", "reporting_category"),
    "source": ("source", "source_id"),
    "amount": ("amount", "gross"),
    "fee": ("fee",),
    "currency": ("currency",),
    "created": ("created (utc)", "created_utc", "created"),
    "description": ("description",),
    "intent": ("payment_intent_id", "payment intent id", "payment_intent"),
}
EXPECTED = "id, Type, Source, Amount, Fee, Currency, Created (UTC)"


def parse_csv(data: bytes, name: str = "") -> Statement:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise errors.BAD_CSV(line=1, reason="the file is not UTF-8 text") from exc
    rows = csv.reader(io.StringIO(text), delimiter=",")
    header = next(rows, None)
    plain = [c.strip().lower() for c in header or []]
    cols = {k: plain.index(a) for k, aliases in COLUMNS.items() for a in aliases if a in plain}
    if not {"id", "amount", "currency", "created"} <= cols.keys():
        raise errors.CSV_HEADER(expected=EXPECTED)
    lines = []
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        lines.append(_csv_line(dict(_cells(row, cols)), number))
    return Statement(lines, name=name or "stripe.csv")


def _cells(row: list[str], cols: Mapping[str, int]) -> Iterator[tuple[str, str]]:
    for key, index in cols.items():
        yield key, row[index].strip() if index < len(row) else ""


def _csv_line(cell: Mapping[str, str], number: int) -> ParsedLine:
    if cell["currency"].lower() != "eur":
        raise errors.NOT_EUROS(entry=number, currency=cell["currency"] or "?")
    try:
        amount = cents(cell["amount"], decimal_comma=False)
        fee = cents(cell.get("fee") or "0", decimal_comma=False)
        booked = date.fromisoformat(cell["created"][:10])
    except ValueError as exc:
        raise errors.BAD_CSV(line=number, reason=str(exc)) from exc
    if amount == 0:
        raise errors.BAD_CSV(line=number, reason="the amount is zero")
    return ParsedLine(
        booked=booked,
        amount=amount,
        reference=clip(cell["id"]),
        end_to_end=clip(cell.get("source")),
        extra_ref=clip(cell.get("intent")),
        label=_label(cell.get("type", ""), cell.get("description", ""), fee),
    )


def _label(kind: str, description: str, fee: int) -> str:
    parts = [kind, description, f"fee {fee / 100:.2f}" if fee else ""]
    return clip(" · ".join(p for p in parts if p)) or ""


def read_api(
    client: stripe.StripeClient, progress: Callable[[int], None] | None = None
) -> Statement:
    """Every balance transaction Stripe has for the account, newest first, all pages."""
    lines = []
    try:
        found = client.v1.balance_transactions.list(params={"limit": 100})
        for txn in found.auto_paging_iter():
            line = _api_line(client, txn)
            if line is not None:
                lines.append(line)
            if progress is not None:
                progress(len(lines))
    except stripe.StripeError as exc:
        raise errors.STRIPE_UNREACHABLE() from exc
    return Statement(lines, name="stripe-api")


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if isinstance(obj, stripe.StripeObject) else dict(obj)


def _api_line(client: stripe.StripeClient, txn: Any) -> ParsedLine | None:
    data = _plain(txn)
    if str(data.get("currency") or "").lower() != "eur" or not data.get("amount"):
        return None
    source = data.get("source")
    source = source.get("id") if isinstance(source, dict) else source
    return ParsedLine(
        booked=datetime.fromtimestamp(int(data["created"]), UTC).date(),
        amount=int(data["amount"]),
        reference=clip(str(data["id"])),
        end_to_end=clip(source),
        extra_ref=clip(_intent_of(client, source)),
        label=_label(
            str(data.get("type") or ""),
            str(data.get("description") or ""),
            int(data.get("fee") or 0),
        ),
    )


def _intent_of(client: stripe.StripeClient, source: str | None) -> str | None:
    """The PaymentIntent a charge belongs to: the reference the ledger's top-up keeps."""
    if not source or not source.startswith("ch_"):
        return None
    intent = _plain(client.v1.charges.retrieve(source)).get("payment_intent")
    return intent.get("id") if isinstance(intent, dict) else intent
