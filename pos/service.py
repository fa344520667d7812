"""The counter's rules: a shop asks to be paid (an invoice, or its counter sticker), a
customer pays from their phone, the shop sees it at once, refunds, and counts its day.

An invoice's QR code is a link the node signed (merchant, amount, invoice, expiry: see
runtime/links.py). Paying it posts the customer's signed payment naming the invoice; the
ledger lets one transfer only use an invoice's one-time token, so an invoice is paid at most
once whatever retries or processes race. Each payment at the counter wakes the shop's
point of sale through the node's notices (runtime/notices.py). Codes customers show, and
paying where there is no network: pos/codes/.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool

from ledger.errors import LedgerError
from ledger.operations import invoice_once
from ledger.posting import Posted
from ledger.signing import SignedOrder
from members.access import Member
from members.errors import AMOUNT_TOO_LARGE, BAD_AMOUNT, BAD_KIND, NOT_YOUR_WALLET, WALLET_FROZEN
from members.shops import Shop, names_of, shop_of
from pos import repository as repo
from pos.errors import (
    BAD_DAY,
    BAD_LABEL,
    BAD_LINK,
    BAD_REFUND,
    BAD_TTL,
    FORGED_LINK,
    INVOICE_CANCELLED,
    INVOICE_EXPIRED,
    INVOICE_PAID,
    NOT_A_SALE,
    NOT_A_SHOP,
    OWN_SHOP,
    REFUND_TOO_LARGE,
    SHOP_NOT_OPEN,
    UNKNOWN_INVOICE,
    WRONG_AMOUNT,
    WRONG_INVOICE,
    WRONG_PAYEE,
)
from runtime.links import LinkRefused, check_link, sign_link
from runtime.signing import post, post_async
from web.refusals import Money

if TYPE_CHECKING:
    from runtime.node import Node

DEFAULT_TTL_S = 600  # a customer has ten minutes to pay the code on the screen
MAX_TTL_S = 3600
MAX_LABEL = 80
LIVE_BATCH = 50


def channel(merchant_id: str) -> str:
    """The notices channel a shop's points of sale listen on."""
    return f"pos:{merchant_id}"


# -- shops -------------------------------------------------------------------------------------


def open_shop(node: Node, merchant_id: str) -> Shop:
    """The shop, if it may take payments at the counter (approved by the association)."""
    with node.ledger.reading() as conn:
        return _open(shop_of(conn, merchant_id))


def _open(shop: Shop | None) -> Shop:
    if shop is None:
        raise NOT_A_SHOP()
    if not shop.approved:
        raise SHOP_NOT_OPEN()
    return shop


# -- invoices ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invoice:
    id: str
    merchant_id: str
    amount: int
    label: str | None
    created_ms: int
    expires_ms: int
    cancelled_ms: int | None
    paid_by: str | None = None  # the payer's member id, once paid
    transfer_id: int | None = None
    paid_ms: int | None = None
    # Read with the invoice, so that one request reads the database once: its shop as it
    # stands (None: the member sells nothing), and how the payer is named.
    shop: Shop | None = field(default=None, compare=False, repr=False)
    payer_name: str | None = field(default=None, compare=False)

    def state(self, now_ms: int) -> str:
        """paid, cancelled, expired or open. A payment stands even if the shop cancelled
        while the customer confirmed: the money moved, a refund undoes it."""
        if self.transfer_id is not None:
            return "paid"
        if self.cancelled_ms is not None:
            return "cancelled"
        return "expired" if now_ms >= self.expires_ms else "open"

    @property
    def expires_s(self) -> int:
        return self.expires_ms // 1000

    def link_fields(self) -> dict[str, str | int]:
        """What the invoice's QR code carries, signed by the node."""
        return {
            "invoice": self.id,
            "merchant": self.merchant_id,
            "amount": self.amount,
            "expires": self.expires_s,
        }


def now_ms() -> int:
    return int(time.time() * 1000)


def _label(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    line = " ".join(text.split())
    if len(line) > MAX_LABEL or not line.isprintable():
        raise BAD_LABEL()
    return line


def new_invoice(
    node: Node,
    merchant: Member,
    amount: int,
    *,
    label: str | None = None,
    ttl_s: int = DEFAULT_TTL_S,
    made_by: str,
) -> Invoice:
    """An invoice of `amount` cents for the merchant's shop, valid `ttl_s` seconds."""
    shop = open_shop(node, merchant.id)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise BAD_AMOUNT()
    if amount > node.settings.max_amount:
        raise AMOUNT_TOO_LARGE(maximum=Money(node.settings.max_amount, node.ledger.chart.local))
    if not 60 <= ttl_s <= MAX_TTL_S:
        raise BAD_TTL()
    now = now_ms()
    # Whole seconds: the signed link carries its expiry in seconds.
    made = Invoice(
        secrets.token_urlsafe(12),  # 16 characters, 96 bits: never guessed
        merchant.id,
        amount,
        _label(label),
        now,
        (now // 1000 + ttl_s) * 1000,
        None,
        shop=shop,
    )
    with node.engine.begin() as conn:
        repo.insert_invoice(
            conn,
            {
                "id": made.id,
                "merchant_id": made.merchant_id,
                "amount": made.amount,
                "label": made.label,
                "created_by": made_by,
                "created_ms": made.created_ms,
                "expires_ms": made.expires_ms,
            },
        )
    return made  # what a read would find: a new invoice is open and unpaid


def find_invoice(node: Node, invoice_id: str) -> Invoice:
    """The invoice, whether it was paid and by whom, and its shop: one read."""
    with node.ledger.reading() as conn:
        row = repo.invoice(conn, invoice_id) if len(invoice_id) <= 24 else None
        if row is None:
            raise UNKNOWN_INVOICE()
        paid = repo.transfer_using(conn, invoice_once(f"member:{row['merchant_id']}", row["id"]))
        found = Invoice(
            row["id"],
            row["merchant_id"],
            row["amount"],
            row["label"],
            row["created_ms"],
            row["expires_ms"],
            row["cancelled_ms"],
            shop=shop_of(conn, row["merchant_id"]),
        )
        if paid is None:
            return found
        payer = str(json.loads(paid["order_json"])["from"]).removeprefix("member:")
        return replace(
            found,
            paid_by=payer,
            transfer_id=paid["id"],
            paid_ms=paid["created_ms"],
            payer_name=names_of(conn, [payer]).get(payer, payer),
        )


def shop_open(invoice: Invoice) -> Shop:
    """The invoice's shop, read with it, if it still takes payments at the counter."""
    return _open(invoice.shop)


def own_invoice(node: Node, merchant: Member, invoice_id: str) -> Invoice:
    """An invoice of the merchant's shop (another shop's is as good as unknown)."""
    found = find_invoice(node, invoice_id)
    if found.merchant_id != merchant.id:
        raise UNKNOWN_INVOICE()
    return found


def customer_name(node: Node, member_id: str) -> str:
    with node.ledger.reading() as conn:
        return names_of(conn, [member_id]).get(member_id, member_id)


def cancel_invoice(node: Node, merchant: Member, invoice_id: str) -> Invoice:
    """Cancel an open invoice of the merchant's shop (a paid one stays paid)."""
    found = own_invoice(node, merchant, invoice_id)
    if found.transfer_id is not None:
        raise INVOICE_PAID()
    with node.engine.begin() as conn:
        repo.cancel(conn, invoice_id, merchant.id, now_ms())
    node.notices.publish(channel(merchant.id), f"cancelled {invoice_id}")
    return find_invoice(node, invoice_id)


def invoice_link(node: Node, origin: str, invoice: Invoice) -> str:
    fields = invoice.link_fields()
    query = {
        "i": invoice.id,
        "m": invoice.merchant_id,
        "a": invoice.amount,
        "e": invoice.expires_s,
        "s": sign_link(node, "invoice", fields),
    }
    return f"{origin}/pay?{urlencode(query)}"


def sticker_link(node: Node, origin: str, merchant_id: str) -> str:
    signature = sign_link(node, "sticker", {"merchant": merchant_id})
    return f"{origin}/pay?{urlencode({'m': merchant_id, 's': signature})}"


@dataclass(frozen=True)
class PayRequest:
    """What a scanned link asks: pay this shop, this invoice (or an amount one types)."""

    shop: Shop
    invoice: Invoice | None


def read_link(node: Node, query: dict[str, str]) -> PayRequest:
    """The request a link's query names, once the node's signature over it is checked."""
    merchant, signature = query.get("m"), query.get("s")
    if not merchant or not signature or len(merchant) > 48 or len(signature) > 100:
        raise BAD_LINK()
    if "i" in query:
        try:
            fields: dict[str, str | int] = {
                "invoice": query["i"],
                "merchant": merchant,
                "amount": int(query["a"]),
                "expires": int(query["e"]),
            }
        except (KeyError, ValueError):
            raise BAD_LINK() from None
        kind = "invoice"
    else:
        fields, kind = {"merchant": merchant}, "sticker"
    try:
        # The invoice's own row says whether it expired (and is shown so): not the link.
        check_link(node, kind, fields, signature, now_s=0)
    except LinkRefused as exc:
        raise (BAD_LINK if exc.reason == "malformed" else FORGED_LINK)() from None
    if kind == "sticker":
        return PayRequest(open_shop(node, merchant), None)
    invoice = find_invoice(node, str(fields["invoice"]))
    shop = shop_open(invoice)
    if invoice.link_fields() != fields:
        raise FORGED_LINK()
    return PayRequest(shop, invoice)


# -- paying at the counter ---------------------------------------------------------------------


def _payer_checks(payer: Member, envelope: SignedOrder, shop: Shop) -> dict[str, Any]:
    order = envelope.order
    if order.get("kind") != "payment":
        raise BAD_KIND()
    if order.get("from") != payer.account:
        raise NOT_YOUR_WALLET()
    if payer.frozen_reason:
        raise WALLET_FROZEN(reason=payer.frozen_reason)
    if payer.id == shop.member_id:
        raise OWN_SHOP()
    if order.get("to") != shop.account:
        raise WRONG_PAYEE()
    return order


def _payable(node: Node, payer: Member, invoice_id: str, envelope: SignedOrder) -> Shop:
    """The shop a payment of the invoice goes to, once every check of the counter passed:
    to its shop, of its amount, naming it, and the invoice still open."""
    invoice = find_invoice(node, invoice_id)
    shop = shop_open(invoice)
    order = _payer_checks(payer, envelope, shop)
    if order.get("invoice") != invoice.id:
        raise WRONG_INVOICE()
    if order.get("amount") != invoice.amount:
        raise WRONG_AMOUNT(amount=Money(invoice.amount, node.ledger.chart.local))
    if invoice.transfer_id is None:  # a replay of its payment gets its answer, whatever else
        state = invoice.state(now_ms())
        if state == "cancelled":
            raise INVOICE_CANCELLED()
        if state == "expired":
            raise INVOICE_EXPIRED()
    return shop


async def pay_invoice(node: Node, payer: Member, invoice_id: str, envelope: SignedOrder) -> Posted:
    """Post the customer's payment of an invoice: to its shop, of its amount, naming it.
    The checks read in a worker thread; the request then waits for its batch to commit
    holding no thread, as the wallet's payments do."""
    shop = await run_in_threadpool(_payable, node, payer, invoice_id, envelope)
    try:
        posted = await post_async(node, envelope)
    except LedgerError as exc:
        if exc.code == "already_used":  # another payment used the invoice first
            raise INVOICE_PAID() from None
        raise
    node.notices.publish(channel(shop.member_id), str(posted.transfer_id))
    return posted


def pay_shop(node: Node, payer: Member, merchant_id: str, envelope: SignedOrder) -> Posted:
    """Post a payment of an amount the customer typed, from the shop's counter sticker."""
    shop = open_shop(node, merchant_id)
    order = _payer_checks(payer, envelope, shop)
    if "invoice" in order:
        raise WRONG_INVOICE()
    posted = post(node, envelope)
    node.notices.publish(channel(shop.member_id), str(posted.transfer_id))
    return posted


# -- the shop's payments and refunds -----------------------------------------------------------


@dataclass(frozen=True)
class Sale:
    """A payment the shop received, or a refund it made (amount < 0)."""

    transfer_id: int
    kind: str
    amount: int
    customer: str  # member id of the payer (or of whom a refund went to)
    customer_name: str
    invoice: str | None
    memo: str | None
    created_ms: int
    refunded: int = 0  # of a payment: cents refunded so far
    refund_of: int | None = None  # of a refund: the payment


def _sales(rows: Any, conn: Any) -> list[Sale]:
    orders = [(row, json.loads(row["order_json"])) for row in rows]
    customers = {
        str(o["to"] if row["kind"] == "refund" else o["from"]).removeprefix("member:")
        for row, o in orders
    }
    names = names_of(conn, customers)
    sales = []
    for row, order in orders:
        side = order["to"] if row["kind"] == "refund" else order["from"]
        customer = str(side).removeprefix("member:")
        sales.append(
            Sale(
                row["id"],
                row["kind"],
                row["amount"],
                customer,
                names.get(customer, customer),
                order.get("invoice"),
                order.get("memo"),
                row["created_ms"],
                int(row["refunded"]) if row["kind"] in repo.SALES else 0,
                order.get("ref") if row["kind"] == "refund" else None,
            )
        )
    return sales


def sales_after(node: Node, merchant_id: str, after: int) -> list[Sale]:
    """Payments the shop received after transfer `after`, oldest first (the live feed)."""
    with node.ledger.reading() as conn:
        rows = repo.received_after(conn, f"member:{merchant_id}", after, LIVE_BATCH)
        return _sales(rows, conn)


def last_sale(node: Node, merchant_id: str) -> int:
    with node.ledger.reading() as conn:
        return repo.last_received(conn, f"member:{merchant_id}")


def refund(node: Node, merchant: Member, envelope: SignedOrder) -> Posted:
    """Post the shop's signed refund of one of its payments, full or partial."""
    order = envelope.order
    if order.get("kind") != "refund":
        raise BAD_KIND()
    if order.get("from") != merchant.account:
        raise NOT_YOUR_WALLET()
    ref = order.get("ref")
    with node.ledger.reading() as conn:
        sale = repo.payment(conn, ref) if isinstance(ref, int) and 0 < ref < 2**53 else None
    fields = json.loads(sale["order_json"]) if sale is not None else {}
    if sale is None or sale["kind"] not in repo.SALES or fields.get("to") != merchant.account:
        raise NOT_A_SALE()
    if order.get("to") != fields.get("from"):
        raise BAD_REFUND()
    try:
        posted = post(node, envelope)
    except LedgerError as exc:
        if exc.code == "invalid_reference" and "refundable" in exc.params:
            raise REFUND_TOO_LARGE(
                refundable=Money(exc.params["refundable"], node.ledger.chart.local)
            ) from None
        raise
    node.notices.publish(channel(merchant.id), f"refund {posted.transfer_id}")
    return posted


# -- the day -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Day:
    day: date
    sales: list[Sale]

    @property
    def takings(self) -> int:
        """What the day brought: payments less refunds."""
        return sum(s.amount for s in self.sales)

    @property
    def count(self) -> int:
        return sum(1 for s in self.sales if s.kind != "refund")


def parse_day(text: str | None, zone: str) -> date:
    today = datetime.now(ZoneInfo(zone)).date()
    if not text:
        return today
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BAD_DAY() from None
    if not today - timedelta(days=731) <= day <= today:
        raise BAD_DAY()
    return day


def day_of(node: Node, merchant: Member, day: date) -> Day:
    """The shop's payments and refunds of one day of the node's time zone."""
    zone = ZoneInfo(node.settings.timezone)
    start = datetime.combine(day, datetime.min.time(), zone)
    end = start + timedelta(days=1)
    with node.ledger.reading() as conn:
        rows = repo.movements_between(
            conn, merchant.account, int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        )
        return Day(day, _sales(rows, conn))


CSV_COLUMNS = (
    "time",
    "transfer",
    "kind",
    "amount",
    "currency",
    "customer",
    "invoice",
    "memo",
    "refund_of",
)


def day_csv(node: Node, day: Day) -> str:
    """The day as CSV (UTF-8, comma, amounts in units with a point: what spreadsheets and
    accounting tools import), a total row last."""
    zone = ZoneInfo(node.settings.timezone)
    currency = node.ledger.chart.local
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for s in day.sales:
        moment = datetime.fromtimestamp(s.created_ms / 1000, zone).isoformat(timespec="seconds")
        writer.writerow(
            [
                moment,
                s.transfer_id,
                s.kind,
                _units(s.amount),
                currency,
                _safe(s.customer_name),
                s.invoice or "",
                _safe(s.memo or ""),
                s.refund_of or "",
            ]
        )
    writer.writerow(["total", "", "", _units(day.takings), currency, "", "", "", ""])
    return out.getvalue()


def _units(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
