"""The named operations of the ledger: each turns an order into postings and says who signs.

An operation is a small table entry: the fields its order carries, who may sign it, which
earlier transfer it may reference, and a function that builds the postings. Every plan must
sum to zero per currency and keep the backing invariant; `posting.py` checks both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger import orders
from ledger.chart import EUR, Chart, Kind, kind_of, office_cash
from ledger.errors import InvalidOrder, InvalidReference
from ledger.orders import Order

TREASURER = "role:treasurer"
NODE = "node"
CAUSE = "association:cause"


@dataclass(frozen=True)
class Original:
    """A transfer referenced by a new order (refunded, paid out, corrected): its fixed facts."""

    id: int
    kind: str
    initiator: str
    fields: Mapping[str, Any]
    postings: Mapping[str, int]


@dataclass(frozen=True)
class Plan:
    """What an order does: its postings, and what it claims on a referenced transfer."""

    postings: dict[str, int]
    ref: int | None = None
    refund: int = 0  # cents given back against `ref` (partial refunds add up)...
    refund_limit: int = 0  # ...to at most this: the amount of the original payment
    settles: bool = False  # at most one payout or correction per referenced transfer
    # A correction of a refund gives back what the refund took from its payment's refundable
    # amount: (payment id, cents).
    unrefund: tuple[int, int] | None = None


@dataclass(frozen=True)
class Context:
    chart: Chart
    max_amount: int
    original: Original | None = None


@dataclass(frozen=True)
class Operation:
    kind: str
    fields: frozenset[str]
    signers: Callable[[Order], frozenset[str]]
    plan: Callable[[Order, Context], Plan]
    references: frozenset[str] = frozenset()  # kinds of transfer it may reference


def _member(order: Order, name: str) -> str:
    code = orders.account(order.fields, name)
    if kind_of(code) is not Kind.MEMBER:
        raise InvalidOrder(name, "must be a member's account")
    return code


def _local_amount(order: Order, ctx: Context) -> int:
    if order.get("currency") != ctx.chart.local:
        raise InvalidOrder("currency", f"must be {ctx.chart.local}")
    return orders.amount(order.fields, maximum=ctx.max_amount)


def _legs(pairs: Mapping[str, int]) -> dict[str, int]:
    """Postings without zero legs (a zero fee posts nothing)."""
    return {code: amount for code, amount in pairs.items() if amount != 0}


def _debtor(order: Order) -> frozenset[str]:
    # A member's account is debited only with a key registered to that member.
    value = order.get("from")
    return frozenset({value}) if isinstance(value, str) else frozenset()


def _payment(order: Order, ctx: Context) -> Plan:
    payer, payee = _member(order, "from"), _member(order, "to")
    if payer == payee:
        raise InvalidOrder("to", "a member cannot pay their own account")
    cents = _local_amount(order, ctx)
    return Plan({payer: -cents, payee: cents})


def _refund(order: Order, ctx: Context) -> Plan:
    plan = _payment(order, ctx)
    original = _original(ctx)
    if original.fields.get("to") != order["from"] or original.fields.get("from") != order["to"]:
        raise InvalidReference(
            "a refund goes from the payee of the original payment back to its payer",
            ref=original.id,
        )
    return Plan(
        plan.postings,
        ref=original.id,
        refund=plan.postings[order["to"]],
        refund_limit=original.postings[order["from"]],
    )


_TOPUP_SOURCES = {"card": "clearing:stripe", "bank": "reserve:digital"}


def _topup_source(order: Order) -> str:
    source = orders.text(order.fields, "source", max_length=60)
    if source in _TOPUP_SOURCES:
        return _TOPUP_SOURCES[source]
    office = source.removeprefix("office:")
    if source.startswith("office:") and kind_of(office_cash(office)) is Kind.OFFICE_CASH:
        return office_cash(office)
    raise InvalidOrder("source", "must be card, bank or office:<id>")


def _topup_signers(order: Order) -> frozenset[str]:
    try:
        source = _topup_source(order)
    except InvalidOrder:
        return frozenset()
    if source == "clearing:stripe":
        return frozenset({NODE})  # only the verified card-payment rule credits card top-ups
    if source == "reserve:digital":
        return frozenset({TREASURER})
    return frozenset({"role:" + source.removesuffix(":cash")})


def _topup(order: Order, ctx: Context) -> Plan:
    member = _member(order, "to")
    cents = _local_amount(order, ctx)
    orders.text(order.fields, "ext", max_length=128, required=False)
    # Units are created only as euros arrive in a backing account, cent for cent.
    return Plan(
        {
            "issuance:digital": -cents,
            member: cents,
            "external:eur": -cents,
            _topup_source(order): cents,
        }
    )


def _redemption(order: Order, ctx: Context) -> Plan:
    member = _member(order, "from")
    cents = _local_amount(order, ctx)
    fee = orders.integer(order.fields, "fee", minimum=0, maximum=cents - 1)
    # The part of the fee the association gives to a cause it chose (0 if none).
    cause_fee = 0
    if "cause_fee" in order.fields:
        cause_fee = orders.integer(order.fields, "cause_fee", minimum=0, maximum=fee)
    net = cents - fee
    return Plan(
        _legs(
            {
                member: -cents,
                "association:fees": fee - cause_fee,
                CAUSE: cause_fee,
                "issuance:digital": net,
                "reserve:digital": -net,
                "payouts:pending": net,
            }
        )
    )


# -- card payments taken back: refunds and disputes (automatic rules, signed by the node) --


def card_escrow(topup_id: int) -> str:
    """Where a disputed card top-up's units wait for the dispute's outcome."""
    return f"escrow:card:{topup_id}"


def _card_topup(ctx: Context) -> Original:
    original = _original(ctx)
    if original.fields.get("source") != "card":
        raise InvalidReference("only a card top-up can be taken back this way", ref=original.id)
    return original


def _card_hold(order: Order, ctx: Context) -> Plan:
    original = _card_topup(ctx)
    member, cents = _member(order, "from"), _local_amount(order, ctx)
    if member != original.fields["to"] or order.get("to") != card_escrow(original.id):
        raise InvalidReference(
            "a hold moves units of the top-up's member to that top-up's escrow", ref=original.id
        )
    _within_topup(cents, original)
    return Plan({member: -cents, card_escrow(original.id): cents}, ref=original.id)


def _card_release(order: Order, ctx: Context) -> Plan:
    original = _card_topup(ctx)
    member, cents = _member(order, "to"), _local_amount(order, ctx)
    if member != original.fields["to"] or order.get("from") != card_escrow(original.id):
        raise InvalidReference(
            "a release gives held units back to the top-up's member", ref=original.id
        )
    _within_topup(cents, original)
    return Plan({card_escrow(original.id): -cents, member: cents}, ref=original.id)


def _card_reversal(order: Order, ctx: Context) -> Plan:
    original = _card_topup(ctx)
    source, cents = order.get("from"), _local_amount(order, ctx)
    if source not in (original.fields["to"], card_escrow(original.id)):
        raise InvalidReference(
            "a reversal takes units from the top-up's member or its escrow", ref=original.id
        )
    _within_topup(cents, original)
    # The euros go back to the card holder: units leave circulation as the reserve shrinks.
    # Reversals of one top-up add up to at most its amount (counted like refunds).
    return Plan(
        {
            source: -cents,
            "issuance:digital": cents,
            "clearing:stripe": -cents,
            "external:eur": cents,
        },
        ref=original.id,
        refund=cents,
        refund_limit=original.postings[original.fields["to"]],
    )


def _within_topup(cents: int, original: Original) -> None:
    if cents > original.postings[original.fields["to"]]:
        raise InvalidOrder("amount", "must not exceed the card top-up")


# -- what a card payment taken back left owed, written off (signed by the treasurer) --


def _card_write_off(order: Order, ctx: Context) -> Plan:
    original = _card_topup(ctx)
    cents = _local_amount(order, ctx)
    orders.text(order.fields, "ext", max_length=128, required=False)  # the bank's reference
    _within_topup(cents, original)
    # The association bears what a card payment taken back left owed: a bank top-up of the
    # member (its euros into the reserve) and a card reversal of the same units (out with
    # the euros Stripe kept), in one transfer. Their issuance, wallet and external:eur legs
    # cancel out: no unit moves. Counted against the top-up like a reversal.
    return Plan(
        {"reserve:digital": cents, "clearing:stripe": -cents},
        ref=original.id,
        refund=cents,
        refund_limit=original.postings[original.fields["to"]],
    )


# -- escrows of plugins: a member pays in, the plugin's rules release or refund -------------

PLUGIN = "plugin:"  # owners of plugins' keys: plugin:<name>
RESERVED_ESCROWS = frozenset({"card"})  # escrows of the node's own rules


def plugin_escrow(plugin: str, ref: str) -> str:
    """The escrow account of a plugin for one purpose (a contract, a campaign...)."""
    return f"escrow:{plugin}:{ref}"


def _escrow(order: Order, name: str) -> str:
    code = orders.account(order.fields, name)
    if kind_of(code) is not Kind.ESCROW or code.split(":")[1] in RESERVED_ESCROWS:
        raise InvalidOrder(name, "must be a plugin's escrow account")
    return code


def _escrow_payment(order: Order, ctx: Context) -> Plan:
    payer, escrow = _member(order, "from"), _escrow(order, "to")
    cents = _local_amount(order, ctx)
    return Plan({payer: -cents, escrow: cents})


def _escrow_out(order: Order, ctx: Context, *, back_to_payer: bool) -> Plan:
    """A release (to whoever the plugin's rule pays) or a refund (to the payer) of units an
    escrow payment brought: together at most what that payment brought."""
    original = _original(ctx)
    escrow, member = _escrow(order, "from"), _member(order, "to")
    if escrow != original.fields.get("to"):
        raise InvalidReference(
            "units leave the escrow account that the payment went into", ref=original.id
        )
    if back_to_payer and member != original.fields.get("from"):
        raise InvalidReference("a refund goes back to the one who paid", ref=original.id)
    cents = _local_amount(order, ctx)
    return Plan(
        {escrow: -cents, member: cents},
        ref=original.id,
        refund=cents,
        refund_limit=original.postings[escrow],
    )


def _escrow_release(order: Order, ctx: Context) -> Plan:
    return _escrow_out(order, ctx, back_to_payer=False)


def _escrow_refund(order: Order, ctx: Context) -> Plan:
    return _escrow_out(order, ctx, back_to_payer=True)


def _escrow_plugin(order: Order) -> frozenset[str]:
    # Only the key of the plugin whose escrow it is moves units out of it.
    try:
        escrow = _escrow(order, "from")
    except InvalidOrder:
        return frozenset()
    return frozenset({PLUGIN + escrow.split(":")[1]})


def _payout(order: Order, ctx: Context) -> Plan:
    original = _original(ctx)
    net = original.postings["payouts:pending"]
    if orders.amount(order.fields, maximum=ctx.max_amount) != net:
        raise InvalidOrder("amount", f"must be the redemption's net amount, {net}")
    orders.text(order.fields, "bank_ref", max_length=128)
    return Plan({"payouts:pending": -net, "external:eur": net}, ref=original.id, settles=True)


def _deposit_office(order: Order) -> str:
    office = orders.text(order.fields, "office", max_length=48)
    code = office_cash(office)
    if kind_of(code) is not Kind.OFFICE_CASH:
        raise InvalidOrder("office", "is not an exchange office id")
    return code


def _cash_deposit(order: Order, ctx: Context) -> Plan:
    till = _deposit_office(order)
    bank = order.get("to")
    if bank not in ("reserve:digital", "reserve:paper"):
        raise InvalidOrder("to", "must be reserve:digital or reserve:paper")
    cents = orders.amount(order.fields, maximum=ctx.max_amount)
    return Plan({till: -cents, bank: cents})


def _cash_deposit_signers(order: Order) -> frozenset[str]:
    try:
        till = _deposit_office(order)
    except InvalidOrder:
        return frozenset({TREASURER})
    return frozenset({TREASURER, "role:" + till.removesuffix(":cash")})


def _settlement(order: Order, ctx: Context) -> Plan:
    cents = orders.amount(order.fields, maximum=ctx.max_amount)
    orders.text(order.fields, "ext", max_length=128, required=False)
    # Stripe pays card top-ups out to the association's bank account.
    return Plan({"clearing:stripe": -cents, "reserve:digital": cents})


def _correction(order: Order, ctx: Context) -> Plan:
    original = _original(ctx)
    orders.text(order.fields, "memo", max_length=orders.MAX_MEMO)  # a correction says why
    unrefund = None
    if original.kind == "refund":
        unrefund = (original.fields["ref"], original.postings[original.fields["to"]])
    return Plan(
        {code: -amount for code, amount in original.postings.items()},
        ref=original.id,
        settles=True,
        unrefund=unrefund,
    )


def _original(ctx: Context) -> Original:
    if ctx.original is None:  # posting.py loads it for every operation with references
        raise InvalidOrder("ref", "is missing")
    return ctx.original


def _node_rule(order: Order) -> frozenset[str]:
    return frozenset({NODE})


def _treasurer(order: Order) -> frozenset[str]:
    return frozenset({TREASURER})


OPERATIONS: dict[str, Operation] = {
    op.kind: op
    for op in (
        Operation("payment", frozenset({"from", "to", "amount", "currency"}), _debtor, _payment),
        Operation(
            "refund",
            frozenset({"from", "to", "amount", "currency", "ref"}),
            _debtor,
            _refund,
            references=frozenset({"payment"}),
        ),
        Operation(
            "topup",
            frozenset({"to", "amount", "currency", "source", "ext"}),
            _topup_signers,
            _topup,
        ),
        Operation(
            "redemption",
            frozenset({"from", "amount", "fee", "cause_fee", "currency"}),
            _debtor,
            _redemption,
        ),
        *(
            Operation(
                kind,
                frozenset({"from", "to", "amount", "currency", "ref"}),
                _node_rule,
                plan,
                references=frozenset({"topup"}),
            )
            for kind, plan in (
                ("card_hold", _card_hold),
                ("card_release", _card_release),
                ("card_reversal", _card_reversal),
            )
        ),
        Operation(
            "card_write_off",
            frozenset({"amount", "currency", "ref", "ext"}),
            _treasurer,  # the association's euros: the treasurer's word, as a bank top-up
            _card_write_off,
            references=frozenset({"topup"}),
        ),
        Operation(
            "escrow_payment",
            frozenset({"from", "to", "amount", "currency"}),
            _debtor,
            _escrow_payment,
        ),
        *(
            Operation(
                kind,
                frozenset({"from", "to", "amount", "currency", "ref"}),
                _escrow_plugin,
                plan,
                references=frozenset({"escrow_payment"}),
            )
            for kind, plan in (
                ("escrow_release", _escrow_release),
                ("escrow_refund", _escrow_refund),
            )
        ),
        Operation(
            "payout",
            frozenset({"ref", "amount", "bank_ref"}),
            _treasurer,
            _payout,
            references=frozenset({"redemption"}),
        ),
        Operation(
            "cash_deposit",
            frozenset({"office", "amount", "to"}),
            _cash_deposit_signers,
            _cash_deposit,
        ),
        Operation(
            "settlement",
            frozenset({"amount", "ext"}),
            lambda order: frozenset({TREASURER, NODE}),
            _settlement,
        ),
        Operation(
            "correction",
            frozenset({"ref"}),
            _treasurer,
            _correction,
            # A payout records euros gone from the bank: it is not undone by a
            # correction (which would leave the redemption neither paid nor payable).
            references=frozenset(
                {"payment", "refund", "topup", "redemption", "cash_deposit", "settlement"}
            ),
        ),
    )
}


def operation(order: Order) -> Operation:
    """The operation an order names, after checking it carries only that operation's fields."""
    op = OPERATIONS.get(order.kind)
    if op is None:
        raise InvalidOrder("kind", f"must be one of {', '.join(sorted(OPERATIONS))}")
    orders.only_fields(order, op.fields)
    if op.references:
        orders.transfer_ref(order.fields)
    return op


def currencies(chart: Chart, postings: Mapping[str, int]) -> dict[str, int]:
    """Sum of postings per currency: every plan must give zero for each."""
    sums: dict[str, int] = {}
    for code, amount in postings.items():
        currency = chart.currency_of(code)
        sums[currency] = sums.get(currency, 0) + amount
    return sums


__all__ = [
    "CAUSE",
    "EUR",
    "NODE",
    "OPERATIONS",
    "PLUGIN",
    "TREASURER",
    "Context",
    "Operation",
    "Original",
    "Plan",
    "currencies",
    "operation",
    "plugin_escrow",
]
