"""The named operations of the ledger: each turns an order into postings and says who signs.

An operation is a small table entry: the fields its order carries, who may sign it, which
earlier transfer it may reference, and a function that builds the postings. Every plan must
sum to zero per currency and keep the backing invariant; `posting.py` checks both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger import orders
from ledger.authorisations import Endorsement, check_collection, endorsement
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
    # A one-time token the transfer uses up (an invoice, a note): no two transfers of the
    # ledger use the same one (a unique key in the database).
    once: str | None = None


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
    # A second signature the order carries (a payer's authorisation: `authorisations.py`).
    endorsement: Callable[[Mapping[str, Any]], Endorsement] | None = None


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


COUNTER = "counter:"  # owners of a shop's counter keys: counter:<member account>


def counter_of(account: str) -> str:
    """Who holds the counter keys of a shop (`member:<id>` → `counter:member:<id>`): the
    devices at its till, which sign its refunds and collections and nothing else."""
    return COUNTER + account


def _shop_or_counter(shop: Callable[[Order], frozenset[str]]) -> Callable[[Order], frozenset[str]]:
    # A till shared with staff gives back and takes in for the shop, never pays out for it.
    def signers(order: Order) -> frozenset[str]:
        named = shop(order)
        return named | {counter_of(account) for account in named}

    return signers


INVOICE = re.compile(r"^[A-Za-z0-9_-]{8,40}$")


def invoice_once(payee: str, invoice: str) -> str:
    """The one-time token of a payment of an invoice: one payment per invoice of a payee."""
    return f"invoice:{payee}:{invoice}"


def _payment(order: Order, ctx: Context) -> Plan:
    payer, payee = _member(order, "from"), _member(order, "to")
    if payer == payee:
        raise InvalidOrder("to", "a member cannot pay their own account")
    cents = _local_amount(order, ctx)
    once = None
    if "invoice" in order.fields:
        once = invoice_once(
            payee, orders.matching(order.fields, "invoice", INVOICE, "an invoice id")
        )
    return Plan({payer: -cents, payee: cents}, once=once)


def _payee(order: Order) -> frozenset[str]:
    # A collection is signed by a key of the shop it pays (the payer's is its endorsement).
    value = order.get("to")
    return frozenset({value}) if isinstance(value, str) else frozenset()


def _collection(order: Order, ctx: Context) -> Plan:
    # From the payer's wallet, or from their offline allowance (collected by a shop that was
    # offline: see `allowance_escrow`); the authorisation names the payer either way.
    source, payee = orders.account(order.fields, "from"), _member(order, "to")
    payer = _allowance_owner(source) if kind_of(source) is Kind.ESCROW else _member(order, "from")
    if payer == payee:
        raise InvalidOrder("to", "a member cannot pay their own account")
    cents = _local_amount(order, ctx)
    return Plan(
        {source: -cents, payee: cents}, once=check_collection(order.fields, cents, payer, payee)
    )


# -- offline allowances: units a member sets aside for shops that cannot reach the node ------

ALLOWANCES = "offline"


def allowance_escrow(member_account: str) -> str:
    """Where a member's offline allowance waits: `escrow:offline:<member id>`."""
    return f"escrow:{ALLOWANCES}:{member_account.removeprefix('member:')}"


def _allowance_owner(code: str) -> str:
    parts = code.split(":")
    if kind_of(code) is not Kind.ESCROW or parts[1] != ALLOWANCES:
        raise InvalidOrder("from", "must be a member's account or offline allowance")
    return f"member:{parts[2]}"


def _allowance_hold(order: Order, ctx: Context) -> Plan:
    member, cents = _member(order, "from"), _local_amount(order, ctx)
    if order.get("to") != allowance_escrow(member):
        raise InvalidOrder("to", "must be the member's own offline allowance")
    return Plan({member: -cents, allowance_escrow(member): cents})


def _allowance_release(order: Order, ctx: Context) -> Plan:
    member, cents = _member(order, "to"), _local_amount(order, ctx)
    if order.get("from") != allowance_escrow(member):
        raise InvalidOrder("from", "must be the member's own offline allowance")
    return Plan({allowance_escrow(member): -cents, member: cents})


def _refund(order: Order, ctx: Context) -> Plan:
    plan = _payment(order, ctx)  # (a refund carries no invoice: its fields say so)
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
RESERVED_ESCROWS = frozenset({"card", ALLOWANCES})  # escrows of the node's own rules


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


# How a cash deposit's memo names the bank's paying-in slip and who recorded it: written by
# the exchange offices and the notes' desk, read back by the reconciliation.
_DEPOSIT_MEMO = re.compile(r"^bank slip (?P<slip>.+); recorded by operator (?P<operator>\S+)$")


def deposit_memo(slip: str, operator: str) -> str:
    return f"bank slip {slip}; recorded by operator {operator}"


def read_deposit_memo(memo: object) -> tuple[str, str] | None:
    """The slip and the operator a deposit's memo names, if it names them."""
    found = _DEPOSIT_MEMO.match(memo) if isinstance(memo, str) else None
    return (found["slip"], found["operator"]) if found else None


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


# -- paper notes: printed stock -> an office's stock -> in circulation -> deposited or void --
#
# Each note is a token of the ledger: a series is printed at once (its units leave
# `issuance:paper` for `notes:stock`), then each note moves on its own, by a transfer that
# refers to the one that brought it where it is, and uses up the one-time token of the state
# it leaves. So a note leaves each state once, whatever retries, processes or shops race:
# a note is dispatched or voided from stock once, sold or voided at its office once, and
# deposited or voided in circulation once (`note_once`).

SERIES = re.compile(r"^[A-Z][A-Z0-9]{0,7}$")
DENOMINATIONS = (100, 200, 500, 1000, 2000)  # cents: notes of 1, 2, 5, 10 and 20 units
MAX_SERIES_SIZE = 10_000
NOTE_STATES_LEFT = ("stock", "office", "circulation")


def note_series_once(series: str) -> str:
    """The one-time token of printing a series: each series is printed once."""
    return f"note-series:{series}"


def note_once(series: str, serial: int, leaving: str) -> str:
    """The one-time token of a note leaving `leaving` (stock, office or circulation)."""
    if leaving == "circulation":
        return f"note:{series}:{serial}"
    return f"note:{series}:{serial}:{leaving}"


def notes_office(office: str) -> str:
    return f"notes:office:{office}"


def _series(order: Order) -> str:
    return orders.matching(order.fields, "series", SERIES, "a series: A to Z then up to 7 A-Z/0-9")


def _denomination(order: Order, ctx: Context) -> int:
    if order.get("currency") != ctx.chart.local:
        raise InvalidOrder("currency", f"must be {ctx.chart.local}")
    cents = orders.integer(order.fields, "denomination", minimum=1, maximum=max(DENOMINATIONS))
    if cents not in DENOMINATIONS:
        raise InvalidOrder("denomination", "must be a note's value: 100, 200, 500, 1000 or 2000")
    return cents


def _note_office(order: Order) -> str:
    office = orders.text(order.fields, "office", max_length=48)
    if kind_of(notes_office(office)) is not Kind.NOTES_OFFICE:
        raise InvalidOrder("office", "is not an exchange office id")
    return office


def _same_note(order: Order, ctx: Context, *kinds: str) -> tuple[Original, int]:
    """The transfer the order refers to, which brought this very note (series, serial,
    denomination) where it is; and the note's denomination."""
    original, cents = _original(ctx), _denomination(order, ctx)
    series, serial = _series(order), orders.integer(order.fields, "serial", maximum=MAX_SERIES_SIZE)
    fields = original.fields
    if original.kind == "note_print":
        same = fields.get("series") == series and serial <= fields.get("count", 0)
    else:
        same = (fields.get("series"), fields.get("serial")) == (series, serial)
    if original.kind not in kinds or not same or fields.get("denomination") != cents:
        raise InvalidReference("it refers to a transfer of another note", ref=original.id)
    return original, cents


def _note_print(order: Order, ctx: Context) -> Plan:
    series, cents = _series(order), _denomination(order, ctx)
    count = orders.integer(order.fields, "count", maximum=MAX_SERIES_SIZE)
    if "valid_until" in order.fields:  # the last second its notes are good (none: no end)
        orders.integer(order.fields, "valid_until", minimum=0)
    return Plan(
        {"issuance:paper": -cents * count, "notes:stock": cents * count},
        once=note_series_once(series),
    )


def _note_dispatch(order: Order, ctx: Context) -> Plan:
    original, cents = _same_note(order, ctx, "note_print")
    office = notes_office(_note_office(order))
    return Plan(
        {"notes:stock": -cents, office: cents},
        ref=original.id,
        once=note_once(order["series"], order["serial"], "stock"),
    )


def _note_sale(order: Order, ctx: Context) -> Plan:
    original, cents = _same_note(order, ctx, "note_dispatch")
    office = _note_office(order)
    if original.fields.get("office") != office:
        raise InvalidReference("this note is at another office", ref=original.id)
    # The buyer's euros go to the office's till, where they are (a `cash_deposit` takes
    # them to the paper reserve): the units enter circulation as the euros arrive.
    return Plan(
        {
            notes_office(office): -cents,
            "notes:circulation": cents,
            "external:eur": -cents,
            office_cash(office): cents,
        },
        ref=original.id,
        once=note_once(order["series"], order["serial"], "office"),
    )


def _note_deposit(order: Order, ctx: Context) -> Plan:
    original, cents = _same_note(order, ctx, "note_sale")
    member = _member(order, "to")
    return Plan(
        {"notes:circulation": -cents, member: cents},
        ref=original.id,
        once=note_once(order["series"], order["serial"], "circulation"),
    )


def _note_void(order: Order, ctx: Context) -> Plan:
    original, cents = _same_note(order, ctx, "note_print", "note_dispatch", "note_sale")
    orders.text(order.fields, "memo", max_length=orders.MAX_MEMO)  # a void says why
    series, serial = order["series"], order["serial"]
    if original.kind == "note_print":
        legs, leaving = {"notes:stock": -cents}, "stock"
    elif original.kind == "note_dispatch":
        legs, leaving = {notes_office(original.fields["office"]): -cents}, "office"
    else:
        # A note sold and lost (destroyed, stolen): its units leave circulation, and the
        # euros that backed them leave the paper reserve, to the association's own funds.
        legs = {"notes:circulation": -cents, "reserve:paper": -cents, "external:eur": cents}
        leaving = "circulation"
    return Plan(
        {**legs, "issuance:paper": cents},
        ref=original.id,
        once=note_once(series, serial, leaving),
    )


def _note_office_role(order: Order) -> frozenset[str]:
    try:
        return frozenset({"role:office:" + _note_office(order)})
    except InvalidOrder:
        return frozenset()


def _creditor(order: Order) -> frozenset[str]:
    # A note is deposited into a wallet by its holder's own key only.
    value = order.get("to")
    return frozenset({value}) if isinstance(value, str) else frozenset()


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
        Operation(
            "payment",
            frozenset({"from", "to", "amount", "currency", "invoice"}),
            _debtor,
            _payment,
        ),
        Operation(
            "collection",
            frozenset({"from", "to", "amount", "currency", "auth", "auth_sig"}),
            _shop_or_counter(_payee),
            _collection,
            endorsement=endorsement,
        ),
        Operation(
            "allowance_hold",
            frozenset({"from", "to", "amount", "currency"}),
            _debtor,
            _allowance_hold,
        ),
        Operation(
            # Only when no offline certificate of the member is live: the node's rule.
            "allowance_release",
            frozenset({"from", "to", "amount", "currency"}),
            _node_rule,
            _allowance_release,
        ),
        Operation(
            "refund",
            frozenset({"from", "to", "amount", "currency", "ref"}),
            _shop_or_counter(_debtor),
            _refund,
            references=frozenset({"payment", "collection"}),
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
            "note_print",
            frozenset({"series", "denomination", "count", "valid_until", "currency"}),
            _treasurer,
            _note_print,
        ),
        Operation(
            "note_dispatch",
            frozenset({"series", "serial", "denomination", "currency", "office", "ref"}),
            _treasurer,
            _note_dispatch,
            references=frozenset({"note_print"}),
        ),
        Operation(
            "note_sale",
            frozenset({"series", "serial", "denomination", "currency", "office", "ref"}),
            _note_office_role,
            _note_sale,
            references=frozenset({"note_dispatch"}),
        ),
        Operation(
            "note_deposit",
            frozenset({"series", "serial", "denomination", "currency", "to", "ref"}),
            _creditor,
            _note_deposit,
            references=frozenset({"note_sale"}),
        ),
        Operation(
            "note_void",
            frozenset({"series", "serial", "denomination", "currency", "ref"}),
            _treasurer,
            _note_void,
            references=frozenset({"note_print", "note_dispatch", "note_sale"}),
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
    "COUNTER",
    "DENOMINATIONS",
    "EUR",
    "MAX_SERIES_SIZE",
    "NODE",
    "OPERATIONS",
    "PLUGIN",
    "SERIES",
    "TREASURER",
    "Context",
    "Operation",
    "Original",
    "Plan",
    "allowance_escrow",
    "counter_of",
    "currencies",
    "invoice_once",
    "note_once",
    "note_series_once",
    "notes_office",
    "operation",
    "plugin_escrow",
]
