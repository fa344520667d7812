"""The residents' pages: home, wallet, receipts, send money (to a shop found by its name,
or a member). (Joining, logging in and out, and the keys page: `members/pages.py`.)

Server-rendered with `web.pages.page`; the little JavaScript they need (signing, checking a
receipt) is `web/static/wallet.js`, over `sou.js`. Rules stay in `service.py`: these
handlers read forms, call the service, and choose what to show.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from members import service as members
from members.access import MaybeMember, Member, node_of, wallet_holder
from wallet_api import service
from wallet_api.errors import NOT_SEALED_YET
from web.i18n import language_of
from web.pages import PathId, number_format, page, say, when
from web.refusals import Refusal

router = APIRouter(include_in_schema=False)

HISTORY_PAGE = 20
# How people read each kind of movement of their wallet: every operation of the ledger that
# posts to a member's account (msgids, French in wallet.po; "Taken back" in cards.po).
KIND_LABELS = {
    "payment": "Payment",
    "collection": "Payment at the counter",  # a shop's till took it, by the customer's code
    "refund": "Refund",
    "topup": "Top-up",
    "redemption": "Reconversion",
    "correction": "Correction",
    "allowance_hold": "Put aside",
    "allowance_release": "Taken back",
    "escrow_payment": "Put aside",
    "escrow_release": "Paid out of money set aside",
    "escrow_refund": "Money set aside given back",
    "note_deposit": "Paper note deposited",
    "card_hold": "Held after a card dispute",
    "card_release": "Released after a card dispute",
    "card_reversal": "Card payment taken back",
}
# A kind the ledger gains later is still named in words, never by its code.
SOME_KIND = "Movement"


def kind_label(kind: object) -> str:
    return KIND_LABELS.get(kind, SOME_KIND) if isinstance(kind, str) else SOME_KIND


@router.get("/")
def home(request: Request, p: MaybeMember) -> Response:
    """What the currency is, and the ways in."""
    return page(request, "home.html")


@router.get("/wallet")
def wallet(
    request: Request,
    p: MaybeMember,
    before: Annotated[int | None, Query(ge=1, le=2**53)] = None,
) -> Response:
    """Balance, the id to give others, and the latest movements (older ones by page)."""
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    node = node_of(request)
    lang = language_of(request)
    movements = service.history(node, member, before=before, limit=HISTORY_PAGE, lang=lang)
    rows = [
        {
            "id": m.transfer_id,
            "what": kind_label(m.kind),
            "who": m.counterparty_name,
            "memo": m.memo,
            "when": when(request, m.created_ms),
            "amount": m.amount,
        }
        for m in movements
    ]
    older = movements[-1].transfer_id if len(movements) == HISTORY_PAGE else None
    frozen = None
    if member.frozen_reason:  # a card dispute: say why sending is refused
        frozen = say(request, "Your wallet is frozen: {reason}", reason=member.frozen_reason)
    return page(
        request,
        "wallet/wallet.html",
        balance=service.balance(node, member),
        rows=rows,
        older=older,
        first_page=before is None,
        shop=_shop_state(request, member),
        flash=frozen,
        flash_kind="error",
    )


# What a merchant is told of their shop until the association approves it (msgids).
SHOP_STATE_LABELS = {
    "pending": "Your shop {name} waits for the association's approval: until then it is "
    "not listed, and customers find it only by your wallet id or email.",
    "suspended": "Your shop {name} is suspended by the association: it is not listed, "
    "nor paid at the counter. Ask the association why.",
}


def _shop_state(request: Request, member: Member) -> dict[str, str | None] | None:
    """A merchant's shop: its page, and what its state means unless it is approved."""
    shop = members.shop_of(node_of(request), member.id) if member.role == "merchant" else None
    if shop is None:
        return None
    said = None
    if not shop.approved:
        said = say(request, SHOP_STATE_LABELS[shop.status], name=shop.trade_name)
    return {"status": shop.status, "said": said, "slug": shop.slug, "name": shop.trade_name}


@router.get("/wallet/receipts/{transfer_id}")
def receipt(transfer_id: PathId, request: Request, p: MaybeMember) -> Response:
    """A transfer's receipt and, in plain words, what it proves; the page's script checks
    the proof. Until the sealer has logged the transfer, the page says so and reloads."""
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    node = node_of(request)
    try:
        found = service.receipt(node, member, transfer_id)
    except Refusal as refusal:
        if refusal.code != NOT_SEALED_YET.code:
            raise
        return page(
            request, "wallet/receipt.html", status=200, pending=True, transfer_id=transfer_id
        )
    leaf = json.loads(found["leaf"])
    order = leaf["order"]
    mine = next((leg[2] for leg in leaf["postings"] if leg[0] == member.account), 0)
    keys = service.node_keys(node)["keys"]
    node_key = next((k["public_key"] for k in keys if k["owner"] == "node"), "")
    return page(
        request,
        "wallet/receipt.html",
        pending=False,
        transfer_id=transfer_id,
        receipt=found,
        what=kind_label(order.get("kind")),
        amount=mine,
        order=order,
        parties=_parties(request, member, order),
        created=when(request, leaf["created"]),
        node_key=node_key,
    )


def _parties(request: Request, member: Member, order: dict[str, Any]) -> dict[str, str]:
    """Who paid and who was paid, as the wallet names them (`service.account_names`): a
    member by their name, an escrow by what it is for; a side it cannot name is left out."""
    codes = {side: order[side] for side in ("from", "to") if isinstance(order.get(side), str)}
    names = service.account_names(node_of(request), member, codes.values(), language_of(request))
    return {side: names[code] for side, code in codes.items() if code in names}


@router.get("/send")
def send(request: Request, p: MaybeMember, to: str = "") -> Response:
    """The form to pay a shop or a member: the recipient is found as one types (a shop by
    its name or place, a person by their exact wallet id or email) and shown before the
    page's script signs and posts the order. `to` (a shop's slug or a member id, as a
    shop's page links here) chooses the recipient beforehand."""
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    node = node_of(request)
    chosen = members.payee(node, to[:80]) if to.strip() and to.isprintable() else None
    return page(
        request,
        "wallet/send.html",
        to=chosen.name if chosen else to.removeprefix("member:")[:80],
        payee=vars(chosen) if chosen else None,
        balance=service.balance(node, member),
        max_amount=node.settings.max_amount,
        number=number_format(request),
    )
