"""The AMAP's own tables, on the node's shared metadata; made only by its own migration."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text

from ledger.models import Id, metadata

NATURES = ("subscription", "free_choice", "prepaid")
JOKER_RULES = ("carry", "refund")
LEAVE_RULES = ("all", "notice")

producers = Table(
    "amap_producers",
    metadata,
    Column("member", String(64), primary_key=True),  # a merchant member
    Column("named_ms", BigInteger, nullable=False),
)

products = Table(
    "amap_products",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("producer", String(64), nullable=False, index=True),
    Column("name", String(80), nullable=False),
    Column("unit", String(20), nullable=False),
    Column("price", BigInteger, nullable=False),  # cents of the local unit, today's price
)

places = Table(
    "amap_places",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(80), nullable=False),
    Column("address", String(200), nullable=False),
)

contracts = Table(
    "amap_contracts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("producer", String(64), nullable=False, index=True),
    Column("title", String(120), nullable=False),
    Column("nature", String(20), nullable=False),
    Column("season", String(40), nullable=False),
    Column("jokers", Integer, nullable=False),  # absences a member may declare
    Column("joker_rule", String(10), nullable=False),  # carry | refund
    Column("leave_rule", String(10), nullable=False),  # all | notice
    Column("notice", Integer, nullable=False),  # distributions still delivered after leaving
    Column("instalments", Integer, nullable=False),
)

# The fixed basket of a subscription contract.
contract_lines = Table(
    "amap_contract_lines",
    metadata,
    Column("contract", BigInteger, primary_key=True),
    Column("product", BigInteger, primary_key=True),
    Column("quantity", Integer, nullable=False),
)

coordinators = Table(
    "amap_coordinators",
    metadata,
    Column("contract", BigInteger, primary_key=True),
    Column("member", String(64), primary_key=True),
)

distributions = Table(
    "amap_distributions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contract", BigInteger, nullable=False, index=True),
    Column("place", BigInteger, nullable=False),
    Column("day", String(10), nullable=False),  # ISO date
    Column("cutoff_ms", BigInteger, nullable=False),
    Column("state", String(12), nullable=False),  # planned | delivered | cancelled
)

# Units left to order, per product and distribution (free choice and prepaid contracts).
stock = Table(
    "amap_stock",
    metadata,
    Column("distribution", BigInteger, primary_key=True),
    Column("product", BigInteger, primary_key=True),
    Column("remaining", Integer, nullable=False),
)

subscriptions = Table(
    "amap_subscriptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contract", BigInteger, nullable=False, index=True),
    Column("member", String(64), nullable=False, index=True),
    Column("state", String(10), nullable=False),  # active | left
    Column("total", BigInteger, nullable=False),  # what the season's baskets cost
    Column("credit", BigInteger, nullable=False),  # prepaid: units held, not yet ordered
    Column("created_ms", BigInteger, nullable=False),
    # When its first payment was recorded: until then (NULL) it waits for it, on no sheet.
    Column("effective_ms", BigInteger),
    Column("instalment_size", Integer),  # distributions each instalment covers
)

# What a member takes at a distribution, at the price of the day it was ordered.
lines = Table(
    "amap_lines",
    metadata,
    Column("subscription", BigInteger, primary_key=True),
    Column("distribution", BigInteger, primary_key=True),
    Column("product", BigInteger, primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", BigInteger, nullable=False),
)

jokers = Table(
    "amap_jokers",
    metadata,
    Column("subscription", BigInteger, primary_key=True),
    Column("distribution", BigInteger, primary_key=True),
)

# The members' escrow payments, and what each has left to release or refund.
payments = Table(
    "amap_payments",
    metadata,
    Column("transfer_id", BigInteger, primary_key=True),
    Column("subscription", BigInteger, nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("unspent", BigInteger, nullable=False),
    Column("order_id", String(64)),  # the signed order's id: sent again, answered again
    Column("paid_ms", BigInteger),  # when it was recorded: a basket is paid by its cut-off
)

# Each release or refund, decided (with its client id) before it is posted.
moves = Table(
    "amap_moves",
    metadata,
    Column("client_id", String(80), primary_key=True),
    Column("subscription", BigInteger, nullable=False, index=True),
    Column("payment", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),  # escrow_release | escrow_refund
    Column("rule", String(40), nullable=False),  # amap.delivered, amap.cancelled...
    Column("to_account", String(80), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("transfer_id", BigInteger),  # once posted
)

# A free-choice order whose lines and stock are taken while its payment is on its way. The
# request clears it once the payment is recorded or refused; if the node stops in between,
# the job gives the order back after the signed payment has expired (it can no longer land).
holds = Table(
    "amap_holds",
    metadata,
    Column("order_id", String(64), primary_key=True),  # the signed payment's id
    Column("subscription", BigInteger, nullable=False),
    Column("distribution", BigInteger, nullable=False),
    Column("lines_before", Text, nullable=False),  # JSON {product: [quantity, unit_price]}
    Column("expires_ms", BigInteger, nullable=False),
)

# One settlement per distribution and subscription: delivered, cancelled, absent, or unpaid
# (its instalment not paid by the cut-off: not delivered, nothing released).
settlements = Table(
    "amap_settlements",
    metadata,
    Column("distribution", BigInteger, primary_key=True),
    Column("subscription", BigInteger, primary_key=True),
    Column("outcome", String(12), nullable=False),
    Column("amount", BigInteger, nullable=False),
)

TABLES = (
    producers,
    products,
    places,
    contracts,
    contract_lines,
    coordinators,
    distributions,
    stock,
    subscriptions,
    lines,
    jokers,
    payments,
    moves,
    holds,
    settlements,
)
