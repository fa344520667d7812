"""The top-up pages: by card (Stripe) and at an exchange office.

`GET /topup` shows the card form and the exchange offices; `POST /topup/card` starts a card
payment and sends the browser to Stripe's Checkout page, or (without Checkout) to
`/topup/card/{payment_intent}`, which follows the payment until the wallet is credited
(`node/static/cards.js` asks the status API every second).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from node.i18n import gettext_for, language_of, money
from node.web import Refusal, page, parse_euros
from wallet_api.auth import MaybeMember, Member, node_of
from wallet_api.cards import service
from wallet_api.cards.endpoints import IntentId, base_url

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


def _holder(request: Request, p: MaybeMember, back: str | None = None) -> Member | Response:
    """The logged-in member with a wallet; the login page for a visitor, who comes back to
    `back` (this page by default)."""
    if p is None:
        here = quote(back or request.url.path, safe="")
        return RedirectResponse(f"/login?next={here}", status_code=303)
    if not p.member.has_wallet:
        raise Refusal(403, "no_wallet", "Operators have no wallet.")
    return p.member


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
        webhook_url=str(request.url_for("stripe_webhook")),
        wallet_id=member.id,
        status_labels=STATUS_LABELS,
        **extra,
    )


@router.get("/topup")
def topup(request: Request, p: MaybeMember, cancelled: bool = False) -> Response:
    """Ways to put euros in: a card, or cash at an exchange office."""
    member = _holder(request, p)
    if isinstance(member, Response):
        return member
    flash = None
    if cancelled:
        flash = gettext_for(request).gettext("The card payment was cancelled: nothing was paid.")
    return _topup_page(request, member, flash=flash, flash_kind="error")


@router.post("/topup/card")
def topup_card(
    request: Request, p: MaybeMember, amount: Annotated[str, Form(max_length=40)] = ""
) -> Response:
    """Start a card payment of `amount` euros ("20" or "20,50"); a refusal shows the form
    again with what was typed."""
    member = _holder(request, p, back="/topup")
    if isinstance(member, Response):
        return member
    node = node_of(request)
    try:
        cents = parse_euros(amount)
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
    member = _holder(request, p)
    if isinstance(member, Response):
        return member
    intent = service.checkout_returned(node_of(request), member, session_id)
    return RedirectResponse(f"/topup/card/{intent}", status_code=303)


@router.get("/topup/card/{payment_intent}")
def topup_status(request: Request, p: MaybeMember, payment_intent: IntentId) -> Response:
    """One card payment, followed until the wallet is credited."""
    member = _holder(request, p)
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


def page_money(request: Request, cents: int) -> str:
    """Units as the page's reader writes them: "20,50 SOU" in French."""
    return money(cents, language_of(request), node_of(request).ledger.chart.local)
