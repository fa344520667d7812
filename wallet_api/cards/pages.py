"""The top-up pages: by card (Stripe) and at an exchange office; and the treasurer's page
of card shortfalls.

`GET /topup` shows the card form and the exchange offices (the admin's `GET /admin/cards`
says how to set card top-ups up); `POST /topup/card` starts a card
payment and sends the browser to Stripe's Checkout page, or (without Checkout) to
`/topup/card/{payment_intent}`, which follows the payment until the wallet is credited
(`web/static/cards.js` asks the status API every second).

`/treasurer/cards` lists what card payments taken back left owed, with a form to take the
member's units back and one to write it off, the frozen wallets (unfrozen by hand only when
nothing is owed), and the latest settlements. Its forms post to the page's own address and
carry a request id made when the page was drawn: a resent form settles once.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from ledger.errors import LedgerError
from members.access import MaybeMember, Member, node_of, signed_in, wallet_holder
from members.errors import BAD_FORM
from wallet_api.cards import service, shortfalls
from wallet_api.cards.endpoints import IntentId, base_url
from web.i18n import gettext_for
from web.pages import DoneId, Text, done, page, page_money, say, typed_euros, when
from web.refusals import Refusal, refusal_of

router = APIRouter(include_in_schema=False)

# What each state of a card payment means to its payer (msgids, French in cards.po).
STATUS_MESSAGES = {
    "created": "Waiting for Stripe to confirm your payment…",
    "failed": "The payment did not go through. You can try again with another card.",
    "credited": "Paid: your wallet was credited with {units}.",
    "refunded": "This payment was refunded: its units were taken back.",
    "disputed": "This payment is disputed: its units are held until the dispute is decided.",
    "dispute_lost": "The dispute of this payment was lost: its units were taken back.",
}
# The same states in a word, for the list of the member's card top-ups.
STATUS_LABELS = {
    "created": "Waiting",
    "failed": "Failed",
    "credited": "Credited",
    "refunded": "Refunded",
    "disputed": "Disputed",
    "dispute_lost": "Dispute lost",
}


def _topup_page(request: Request, member: Member, status: int = 200, **extra: object) -> Response:
    node = node_of(request)
    settings = node.settings
    return page(
        request,
        "cards/topup.html",
        status=status,
        available=service.available(node),
        checkout=settings.stripe_checkout,
        minimum=settings.topup_min,
        maximum=settings.topup_max,
        offices=service.offices(node),
        payments=service.card_payments(node, member)[:5],
        wallet_id=member.id,
        status_labels=STATUS_LABELS,
        **extra,
    )


@router.get("/topup")
def topup(request: Request, p: MaybeMember, cancelled: bool = False) -> Response:
    """Ways to put euros in: a card, or cash at an exchange office."""
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    flash = None
    if cancelled:
        flash = gettext_for(request).gettext("The card payment was cancelled: nothing was paid.")
    return _topup_page(request, member, flash=flash, flash_kind="error")


@router.get("/admin/cards")
def card_setup(request: Request, p: MaybeMember) -> Response:
    """For the association's admin: whether card top-ups are on, and how to turn them on
    (the node's Stripe settings and the webhook to add). Residents see only that they are
    not available yet, on /topup."""
    admin = signed_in(request, p, "admin")
    if isinstance(admin, Response):
        return admin
    node = node_of(request)
    return page(
        request,
        "cards/setup.html",
        available=service.available(node),
        checkout=node.settings.stripe_checkout,
        webhook_url=str(request.url_for("stripe_webhook")),
    )


@router.post("/topup/card")
def topup_card(
    request: Request, p: MaybeMember, amount: Annotated[str, Form(max_length=40)] = ""
) -> Response:
    """Start a card payment of `amount` euros ("20" or "20,50"); a refusal shows the form
    again with what was typed."""
    member = wallet_holder(request, p, back="/topup")
    if isinstance(member, Response):
        return member
    node = node_of(request)
    try:
        cents = typed_euros(request, amount)
        started = service.start_topup(node, member, cents, base_url=base_url(request))
    except Refusal as refusal:
        return _topup_page(
            request, member, refusal.status, refusal=refusal.text(request), amount=amount
        )
    target = started.checkout_url or f"/topup/card/{started.payment_intent}"
    return RedirectResponse(target, status_code=303)


@router.get("/topup/card/checkout")
def back_from_checkout(
    request: Request,
    p: MaybeMember,
    session_id: Annotated[str, Query(pattern=r"^[A-Za-z0-9_]{1,255}$")],
) -> Response:
    """Stripe's Checkout page sends the payer back here: follow the payment it made."""
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    intent = service.checkout_returned(node_of(request), member, session_id)
    return RedirectResponse(f"/topup/card/{intent}", status_code=303)


@router.get("/topup/card/{payment_intent}")
def topup_status(request: Request, p: MaybeMember, payment_intent: IntentId) -> Response:
    """One card payment, followed until the wallet is credited."""
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    payment = service.card_payment(node_of(request), member, payment_intent)
    tr = gettext_for(request)
    units = page_money(request, payment["amount"])
    messages = {
        status: tr.gettext(message).format(units=units)
        for status, message in STATUS_MESSAGES.items()
    }
    return page(request, "cards/status.html", payment=payment, messages=messages)


# -- the treasurer: card shortfalls ----------------------------------------------------------

# What each settlement did, in a word (msgids, French in cards.po).
SETTLEMENT_LABELS = {
    "taken_back": "Taken back",
    "written_off": "Written off",
    "unfrozen": "Unfrozen",
}


@router.get("/treasurer/cards")
def card_shortfalls(request: Request, p: MaybeMember, settled: DoneId = None) -> Response:
    """What card payments taken back left owed, the frozen wallets, the latest settlements."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    found = shortfalls.find_settlement(node_of(request), settled) if settled else None
    return _shortfalls_page(request, flash=None if found is None else _said(request, found))


def _said(request: Request, done: shortfalls.Settlement) -> str:
    amount = page_money(request, done.amount)
    if done.action == "taken_back":
        return say(request, "Took back {amount} from {name}.", amount=amount, name=done.member_name)
    if done.action == "written_off":
        return say(
            request,
            "Wrote off {amount} for {name}: transfer {euros} from the association's account "
            "to the reserve account, reference {reference}.",
            amount=amount,
            name=done.member_name,
            euros=page_money(request, done.amount, "EUR"),
            reference=f"card-writeoff:{done.id}",
        )
    return say(request, "{name}'s wallet is unfrozen.", name=done.member_name)


def _shortfalls_page(
    request: Request,
    *,
    status: int = 200,
    flash: str | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    node = node_of(request)
    owed = shortfalls.shortfalls(node)
    frozen = shortfalls.frozen_wallets(node)
    return page(
        request,
        "treasurer/cards.html",
        status=status,
        shortfalls=owed,
        frozen=frozen,
        settlements=shortfalls.settlements(node),
        labels=SETTLEMENT_LABELS,
        request_ids={key: str(uuid.uuid4()) for key in _form_keys(owed, frozen)},
        when=lambda ms: when(request, ms),
        typed=typed or {},
        flash=flash,
    )


def _form_keys(
    owed: list[shortfalls.Shortfall], frozen: list[shortfalls.FrozenWallet]
) -> list[str]:
    """One request id per form of the page."""
    keys = [f"{action}-{s.payment_intent}" for s in owed for action in ("take-back", "write-off")]
    return keys + [f"unfreeze-{f.member_id}" for f in frozen]


@router.post("/treasurer/cards")
def settle(
    request: Request,
    p: MaybeMember,
    action: Text = "",
    id: Text = "",
    payment_intent: Text = "",
    member: Text = "",
    reason: Text = "",
) -> Response:
    """One of the page's forms: `action` "take-back" or "write-off" (a payment intent; a
    reason to write off) or "unfreeze" (a member, a reason)."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    node = node_of(request)
    try:
        if action == "take-back":
            made = shortfalls.take_back(node, treasurer, id, payment_intent)
        elif action == "write-off":
            made = shortfalls.write_off(node, treasurer, id, payment_intent, reason)
        elif action == "unfreeze":
            made = shortfalls.unfreeze(node, treasurer, id, member, reason)
        else:
            raise BAD_FORM()
    except (Refusal, LedgerError) as exc:
        refusal = exc if isinstance(exc, Refusal) else refusal_of(exc)
        typed = {"form": f"{action}-{payment_intent or member}", "reason": reason}
        return _shortfalls_page(
            request, status=refusal.status, flash=refusal.text(request), typed=typed
        )
    return done("/treasurer/cards", settled=made.id)
