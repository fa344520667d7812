"""The residents' pages: home, join, log in and out, wallet, receipts, send money, keys.

Server-rendered with `web.pages.page`; the little JavaScript they need (device key, signing,
checking a receipt) is `web/static/wallet.js`, over `sou.js`. Rules stay in `service.py`:
these handlers read forms, call the service, and choose what to show.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from wallet_api import repository as repo
from wallet_api import service
from wallet_api.auth import (
    SESSION_COOKIE,
    MaybeMember,
    node_of,
    open_session,
    token_hash,
    wallet_holder,
)
from wallet_api.endpoints import set_session_cookie
from wallet_api.schemas import TradeDetails
from web.i18n import language_of
from web.pages import Text, number_format, page, say, when
from web.refusals import Refusal

router = APIRouter(include_in_schema=False)

HISTORY_PAGE = 20
# How people read each kind of movement of their wallet (msgids, French in wallet.po).
KIND_LABELS = {
    "payment": "Payment",
    "refund": "Refund",
    "topup": "Top-up",
    "redemption": "Reconversion",
    "correction": "Correction",
    "card_hold": "Held after a card dispute",
    "card_release": "Released after a card dispute",
    "card_reversal": "Card payment taken back",
}
# Where each role lands after logging in.
LANDING = {"office": "/office", "treasurer": "/treasurer"}


# -- helpers -------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str | None:
    """Only paths of this site: never `//elsewhere` nor `https://elsewhere`."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    # Browsers read a backslash as a slash and drop tabs and newlines: "/\\x" or "/\t/x"
    # would lead elsewhere.
    if "\\" in target or not target.isprintable():
        return None
    return target


def _names(request: Request, ids: set[str]) -> dict[str, str]:
    """Display names of the members among these counterparties."""
    names: dict[str, str] = {}
    with node_of(request).ledger.reading() as conn:
        for member_id in ids:
            row = repo.member(conn, member_id)
            if row is not None:
                names[member_id] = row["display_name"]
    return names


# -- home, joining, logging in and out -----------------------------------------------------


@router.get("/")
def home(request: Request, p: MaybeMember) -> Response:
    """What the currency is, and the ways in."""
    return page(request, "home.html")


@router.get("/join")
def join_form(request: Request, p: MaybeMember) -> Response:
    if p is not None:
        return RedirectResponse("/wallet" if p.member.has_wallet else "/", status_code=303)
    return page(request, "wallet/join.html", form={"role": "resident"})


@router.post("/join")
def join(
    request: Request,
    p: MaybeMember,
    display_name: Text = "",
    email: Text = "",
    password: Text = "",
    role: Text = "resident",
    trade_name: Text = "",
    category: Text = "",
    address: Text = "",
    siret: Text = "",
) -> Response:
    """Sign up, log in at once, and land on the new wallet. A refusal shows the form again
    with what was typed (never the password)."""
    typed = {
        "display_name": display_name,
        "email": email,
        "role": role,
        "trade_name": trade_name,
        "category": category,
        "address": address,
        "siret": siret,
    }
    node = node_of(request)
    try:
        if not display_name.strip() or len(display_name) > 120:
            raise Refusal(422, "bad_name", "Give your name (120 characters at most).")
        merchant = _trade(typed) if role == "merchant" else None
        member = service.join(
            node,
            display_name=display_name,
            email=email,
            password=password,
            role=role,
            locale=language_of(request),
            merchant=merchant,
        )
    except Refusal as refusal:
        return page(
            request,
            "wallet/join.html",
            status=refusal.status,
            form=typed,
            flash=refusal.text(request),
            flash_kind="error",
        )
    with node.engine.begin() as conn:
        token, _ = open_session(conn, member.id, node.settings.session_days)
    response = RedirectResponse("/wallet", status_code=303)
    set_session_cookie(request, response, token, node.settings.session_days)
    return response


def _trade(typed: dict[str, str]) -> dict[str, Any]:
    """A merchant's trade details, checked by the same schema as the API's."""
    siret = typed["siret"].replace(" ", "")
    try:
        details = TradeDetails(
            trade_name=typed["trade_name"].strip(),
            category=typed["category"].strip(),
            address=typed["address"].strip(),
            siret=siret or None,
        )
    except ValidationError as exc:
        if any(error["loc"] == ("siret",) for error in exc.errors()):
            raise Refusal(422, "bad_siret", "A SIRET number has 14 digits.") from None
        raise Refusal(
            422, "bad_trade", "Merchants give their trade name, category and address."
        ) from None
    return details.model_dump()


@router.get("/login")
def login_form(request: Request, p: MaybeMember, next: str | None = None) -> Response:
    return page(request, "wallet/login.html", next=_safe_next(next) or "", email="")


@router.post("/login")
def login(
    request: Request,
    p: MaybeMember,
    email: Text = "",
    password: Text = "",
    next: Text = "",
) -> Response:
    """Check the password and open a session; too many failures are refused (429) in
    plain words, with the time to wait."""
    node = node_of(request)
    ip = request.client.host if request.client else "unknown"
    try:
        member, token, _ = service.log_in(node, email, password, ip)
    except Refusal as refusal:
        refused = page(
            request,
            "wallet/login.html",
            status=refusal.status,
            next=_safe_next(next) or "",
            email=email,
            flash=refusal.text(request),
            flash_kind="error",
        )
        if "retry_after" in refusal.params:
            refused.headers["Retry-After"] = str(refusal.params["retry_after"])
        return refused
    landing = "/wallet" if member.has_wallet else LANDING.get(member.role, "/")
    response = RedirectResponse(_safe_next(next) or landing, status_code=303)
    set_session_cookie(request, response, token, node.settings.session_days)
    return response


@router.post("/logout")
def logout(request: Request, p: MaybeMember) -> Response:
    """End this session (the CSRF check of the form ran in `principal`)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        service.log_out(node_of(request), token_hash(cookie))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# -- the wallet ----------------------------------------------------------------------------


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
    movements = service.history(node, member, before=before, limit=HISTORY_PAGE)
    names = _names(request, {m.counterparty for m in movements if m.counterparty})
    rows = [
        {
            "id": m.transfer_id,
            "what": KIND_LABELS.get(m.kind, m.kind),
            "who": names.get(m.counterparty or "", m.counterparty),
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
        flash=frozen,
        flash_kind="error",
    )


@router.get("/wallet/receipts/{transfer_id}")
def receipt(transfer_id: int, request: Request, p: MaybeMember) -> Response:
    """A transfer's receipt and, in plain words, what it proves; the page's script checks
    the proof. Until the sealer has logged the transfer, the page says so and reloads."""
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    node = node_of(request)
    try:
        found = service.receipt(node, member, transfer_id)
    except Refusal as refusal:
        if refusal.code != "not_sealed_yet":
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
        what=KIND_LABELS.get(order.get("kind", ""), order.get("kind", "")),
        amount=mine,
        order=order,
        created=when(request, leaf["created"]),
        node_key=node_key,
    )


@router.get("/send")
def send(request: Request, p: MaybeMember, to: str = "") -> Response:
    """The form to pay another member; the page's script signs and posts the order."""
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    node = node_of(request)
    return page(
        request,
        "wallet/send.html",
        to=to.removeprefix("member:")[:48],
        balance=service.balance(node, member),
        max_amount=node.settings.max_amount,
        number=number_format(request),
    )


@router.get("/keys")
def keys(request: Request, p: MaybeMember) -> Response:
    """This member's device keys and API tokens, to revoke or add."""
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    node = node_of(request)
    devices = [
        {
            **row,
            "registered": when(request, row["registered_ms"]),
            "revoked": when(request, row["revoked_ms"]) if row["revoked_ms"] else None,
        }
        for row in service.device_keys(node, member)
    ]
    with node.ledger.reading() as conn:
        tokens = [
            {**row, "created": when(request, row["created_ms"])}
            for row in repo.tokens_of(conn, member.id)
        ]
    return page(request, "wallet/keys.html", devices=devices, tokens=tokens)
