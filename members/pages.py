"""The members' pages: join, log in and out, and one's device keys and API tokens.

Server-rendered with `web.pages.page`; the keys page's script (making a device key) is
`web/static/wallet.js`, over `sou.js`. Rules stay in `service.py`: these handlers read
forms, call the service, and choose what to show.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from members import service
from members.access import (
    SESSION_COOKIE,
    MaybeCounter,
    MaybeMember,
    node_of,
    open_session,
    token_hash,
    wallet_holder,
)
from members.account.seen import SeenFrom
from members.endpoints import client_address, set_login_cookies, set_session_cookie
from members.errors import BAD_NAME, BAD_PLACE, BAD_SIRET, BAD_TRADE
from members.logins import DEVICE_COOKIE
from members.schemas import TradeDetails
from web.i18n import language_of
from web.pages import Text, page, when
from web.refusals import Refusal

router = APIRouter(include_in_schema=False)

# Where each role lands after logging in.
LANDING = {"office": "/office", "treasurer": "/treasurer"}


def _safe_next(target: str | None) -> str | None:
    """Only paths of this site: never `//elsewhere` nor `https://elsewhere`."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    # Browsers read a backslash as a slash and drop tabs and newlines: "/\\x" or "/\t/x"
    # would lead elsewhere.
    if "\\" in target or not target.isprintable():
        return None
    return target


# -- joining, logging in and out -----------------------------------------------------------


@router.get("/join")
def join_form(request: Request, p: MaybeMember) -> Response:
    if p is not None:
        return RedirectResponse("/wallet" if p.member.has_wallet else "/", status_code=303)
    village = node_of(request).settings.village
    return page(request, "wallet/join.html", form={"role": "resident", "place": village})


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
    place: Text = "",
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
        "place": place,
        "siret": siret,
    }
    node = node_of(request)
    try:
        if not display_name.strip() or len(display_name) > 120:
            raise BAD_NAME()
        merchant = _trade(typed) if role == "merchant" else None
        member = service.join(
            node,
            display_name=display_name,
            email=email,
            password=password,
            role=role,
            locale=language_of(request),
            merchant=merchant,
            address=client_address(request),
        )
    except Refusal as refusal:
        return page(
            request,
            "wallet/join.html",
            status=refusal.status,
            form=typed,
            flash=refusal.text(request),
        )
    with node.engine.begin() as conn:
        token, _ = open_session(conn, member.id, node.settings.session_days)
    response = RedirectResponse("/wallet", status_code=303)
    set_session_cookie(request, response, token, node.settings.session_days)
    return response


def _trade(typed: dict[str, str]) -> dict[str, Any]:
    """A merchant's trade details, checked by the same schema as the API's (the place left
    blank: the node's village)."""
    siret = typed["siret"].replace(" ", "")
    try:
        details = TradeDetails(
            trade_name=typed["trade_name"].strip(),
            category=typed["category"].strip(),
            address=typed["address"].strip(),
            siret=siret or None,
            place=typed["place"].strip() or None,
        )
    except ValidationError as exc:
        if any(error["loc"] == ("siret",) for error in exc.errors()):
            raise BAD_SIRET() from None
        if any(error["loc"] == ("place",) for error in exc.errors()):
            raise BAD_PLACE() from None
        raise BAD_TRADE() from None
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
    try:
        done = service.log_in(
            node_of(request),
            email,
            password,
            client_address(request),
            request.cookies.get(DEVICE_COOKIE),
            SeenFrom.of(request),
        )
    except Refusal as refusal:
        refused = page(
            request,
            "wallet/login.html",
            status=refusal.status,
            next=_safe_next(next) or "",
            email=email,
            flash=refusal.text(request),
        )
        if "retry_after" in refusal.params:
            refused.headers["Retry-After"] = str(refusal.params["retry_after"])
        return refused
    member = done.member
    landing = "/wallet" if member.has_wallet else LANDING.get(member.role, "/")
    response = RedirectResponse(_safe_next(next) or landing, status_code=303)
    set_login_cookies(request, response, done)
    return response


@router.post("/logout")
def logout(request: Request, p: MaybeCounter) -> Response:
    """End this session, a person's or a counter device's (the CSRF check of the form ran
    in `principal`). A counter device logged out stays paired until its merchant removes it:
    its key signs nothing without a session."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        service.log_out(node_of(request), token_hash(cookie))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    # The HTTP cache's pages; what sw.js kept offline it forgets on seeing this request.
    response.headers["Clear-Site-Data"] = '"cache"'
    return response


# -- device keys and API tokens ------------------------------------------------------------


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
    tokens = [
        {**row, "created": when(request, row["created_ms"])}
        for row in service.api_tokens(node, member)
    ]
    return page(request, "wallet/keys.html", devices=devices, tokens=tokens)
