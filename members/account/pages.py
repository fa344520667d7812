"""The account's pages: "Mon compte" (`/account`: change one's password, one's open
sessions), the forgotten password (`/password/forgot`: a link by email, or the exchange
offices to go to), the reset link's page (`/password/reset/<token>`), and the operator's
reset link for a member seen in person (`/account/reset-links`, from the key-recovery page),
shown as a link and a QR code for the member's phone. Plain forms, no script.

Each form posts to its page's address: a refusal shows the page again with the reason, a
success redirects to the page saying what was done (a reload sends nothing again).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from members import repository as members_repo
from members.access import (
    SESSION_COOKIE,
    MaybeMember,
    Member,
    Principal,
    node_of,
    signed_in,
    token_hash,
)
from members.account import service
from members.account.errors import PASSWORDS_DIFFER, TOO_MANY_WRONG_PASSWORDS
from members.account.schemas import RESET_TOKEN, SESSION_ID
from members.account.seen import SeenFrom
from members.endpoints import client_address, set_session_cookie
from members.errors import TOKEN_SCOPE
from members.models import ROLES
from members.pages import LANDING
from runtime import mail
from web.pages import Text, done, page, public_origin, say, when
from web.qr import qr_data_url
from web.refusals import Refusal

router = APIRouter(include_in_schema=False)

ResetToken = Annotated[str, Path(pattern=RESET_TOKEN)]


def _person(request: Request, p: Principal | None) -> Member | Response:
    """Whoever is signed in with their password (no API token)."""
    member = signed_in(request, p, *ROLES)
    if isinstance(member, Member) and p is not None and p.via != "session":
        raise TOKEN_SCOPE()
    return member


def _this_session(request: Request) -> bytes:
    return token_hash(request.cookies.get(SESSION_COOKIE, ""))


def _account_page(
    request: Request, member: Member, *, status: int = 200, flash: str | None = None
) -> Response:
    found = service.open_sessions(node_of(request), member, _this_session(request))
    return page(
        request,
        "account/account.html",
        status=status,
        flash=flash,
        sessions=found,
        when=lambda ms: when(request, ms),
    )


@router.get("/account")
def account(
    request: Request,
    p: MaybeMember,
    changed: Annotated[int | None, Query(ge=0, le=10_000)] = None,
    ended: Annotated[int | None, Query(ge=0, le=10_000)] = None,
) -> Response:
    """My account: the password, and the sessions open."""
    member = _person(request, p)
    if isinstance(member, Response):
        return member
    flash = None
    if changed is not None:
        flash = say(
            request, "Password changed. Your other sessions are ended: {count}.", count=changed
        )
    elif ended is not None:
        flash = say(request, "Sessions ended: {count}.", count=ended)
    return _account_page(request, member, flash=flash)


@router.post("/account/password")
def change_password(
    request: Request,
    p: MaybeMember,
    current_password: Text = "",
    new_password: Text = "",
    new_password_again: Text = "",
) -> Response:
    """Change the password (the current one given)."""
    member = _person(request, p)
    if isinstance(member, Response):
        return member
    try:
        if new_password != new_password_again:
            raise PASSWORDS_DIFFER()
        ended = service.change_password(
            node_of(request), member, _this_session(request), current_password, new_password
        )
    except Refusal as refusal:
        if refusal.code == TOO_MANY_WRONG_PASSWORDS.code:
            raise  # this session is ended: the error page says to log in again
        return _account_page(request, member, status=refusal.status, flash=refusal.text(request))
    return done("/account", changed=ended)


@router.post("/account/sessions/{session_id}/end")
def end_session(
    session_id: Annotated[str, Path(pattern=SESSION_ID)], request: Request, p: MaybeMember
) -> Response:
    """End one session (this one too: then to the home page)."""
    member = _person(request, p)
    if isinstance(member, Response):
        return member
    try:
        service.end_session(node_of(request), member, session_id)
    except Refusal as refusal:
        return _account_page(request, member, status=refusal.status, flash=refusal.text(request))
    if session_id == service.session_id(_this_session(request)):
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response
    return done("/account", ended=1)


@router.post("/account/sessions/end-others")
def end_other_sessions(request: Request, p: MaybeMember) -> Response:
    """Log out everywhere else."""
    member = _person(request, p)
    if isinstance(member, Response):
        return member
    ended = service.end_other_sessions(node_of(request), member, _this_session(request))
    return done("/account", ended=ended)


# -- a forgotten password -------------------------------------------------------------------


def _forgot_page(
    request: Request, *, status: int = 200, flash: str | None = None, email: str = ""
) -> Response:
    node = node_of(request)
    with node.ledger.reading() as conn:
        offices = sorted({row["office"] for row in members_repo.members_by_role(conn, ["office"])})
    return page(
        request,
        "account/forgot.html",
        status=status,
        flash=flash,
        by_mail=mail.configured(node.settings),
        offices=offices,
        email=email,
        minutes=service.RESET_MINUTES,
    )


@router.get("/password/forgot")
def forgot(
    request: Request, p: MaybeMember, sent: Annotated[int | None, Query(ge=1, le=1)] = None
) -> Response:
    """Ask for a reset link by email; on a node that sends no mail, where to go instead."""
    flash = None
    if sent:
        flash = say(
            request,
            "If an account uses this address, a message with a link is on its way. It lasts "
            "{minutes} minutes; look in the spam folder too.",
            minutes=service.RESET_MINUTES,
        )
    return _forgot_page(request, flash=flash)


@router.post("/password/forgot")
def ask_reset(request: Request, p: MaybeMember, email: Text = "") -> Response:
    """Mail a reset link (the same answer whether the email is known or not)."""
    try:
        service.ask_reset(
            node_of(request), email[:254], client_address(request), public_origin(request)
        )
    except Refusal as refusal:
        return _forgot_page(
            request, status=refusal.status, flash=refusal.text(request), email=email
        )
    return done("/password/forgot", sent=1)


def _reset_page(
    request: Request, token: str, *, status: int = 200, flash: str | None = None
) -> Response:
    member = None
    try:
        member = service.reset_for(node_of(request), token)
    except Refusal as refusal:
        status, flash = refusal.status, flash or refusal.text(request)
    return page(
        request,
        "account/reset.html",
        status=status,
        flash=flash,
        token=token,
        member=member,
    )


@router.get("/password/reset/{token}")
def reset(token: ResetToken, request: Request, p: MaybeMember) -> Response:
    """What a reset link opens: the form to choose a new password."""
    response = _reset_page(request, token)
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the address
    return response


@router.post("/password/reset/{token}")
def use_reset(
    token: ResetToken,
    request: Request,
    p: MaybeMember,
    password: Text = "",
    password_again: Text = "",
) -> Response:
    """Set the new password, end every session of the member, and log them in here."""
    node = node_of(request)
    try:
        if password != password_again:
            raise PASSWORDS_DIFFER()
        member, session, _ = service.reset_password(node, token, password, SeenFrom.of(request))
    except Refusal as refusal:
        return _reset_page(request, token, status=refusal.status, flash=refusal.text(request))
    landing = "/wallet" if member.has_wallet else LANDING.get(member.role, "/")
    response = RedirectResponse(landing, status_code=303)
    set_session_cookie(request, response, session, node.settings.session_days)
    return response


# -- the exchange office's reset link ----------------------------------------------------------


@router.post("/account/reset-links")
def office_reset(request: Request, p: MaybeMember, member: Text = "") -> Response:
    """A reset link for a member seen in person, shown as a QR code for their phone."""
    officer = signed_in(request, p, "office", "admin")
    if isinstance(officer, Response):
        return officer
    try:
        found, link = service.office_reset(node_of(request), officer, member.strip())
    except Refusal as refusal:
        return page(
            request, "account/reset_link.html", status=refusal.status, flash=refusal.text(request)
        )
    url = link.url(public_origin(request))
    qr = qr_data_url(url)
    return page(
        request,
        "account/reset_link.html",
        member=found,
        url=url,
        qr=qr,
        until=when(request, link.expires_ms),
    )
