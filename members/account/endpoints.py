"""The account's API (JSON, under /api/v1): change one's password, list and end one's
sessions, ask for a reset link by email and use it; and the exchange office's (or admin's)
reset link for a member seen in person. Thin handlers over `service.py`. (The pages:
`pages.py`.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from members.access import (
    SESSION_COOKIE,
    KeyOfficer,
    MaybeMember,
    Member,
    Principal,
    node_of,
    principal,
    token_hash,
)
from members.account import service
from members.account.schemas import (
    RESET_TOKEN,
    SESSION_ID,
    PasswordChange,
    PasswordChanged,
    ResetAsked,
    ResetLinkOut,
    ResetUse,
    SessionsEnded,
    SessionShown,
)
from members.account.seen import SeenFrom
from members.endpoints import client_address, member_out, set_session_cookie
from members.errors import LOGIN_REQUIRED, TOKEN_SCOPE
from members.schemas import MEMBER_ID, SessionOut
from web.pages import public_origin

router = APIRouter(prefix="/api/v1", tags=["wallet"])


@dataclass(frozen=True)
class Signed:
    """A person signed in with their password: the member and the hash of this session."""

    member: Member
    session: bytes


async def _signed(request: Request, p: Annotated[Principal | None, Depends(principal)]) -> Signed:
    # One's password and sessions: a person's session only, never an API token nor a
    # counter device (which would let a stolen token lock its owner out).
    if p is None:
        raise LOGIN_REQUIRED()
    if p.via != "session" or p.scope != "wallet":
        raise TOKEN_SCOPE()
    return Signed(p.member, token_hash(request.cookies.get(SESSION_COOKIE, "")))


SignedIn = Annotated[Signed, Depends(_signed)]


@router.post("/me/password", response_model=PasswordChanged)
def change_password(body: PasswordChange, request: Request, me: SignedIn) -> PasswordChanged:
    """Set a new password, giving the current one. Your other sessions end; this one and
    your counter devices stay. After 5 wrong current passwords this session ends too."""
    ended = service.change_password(
        node_of(request), me.member, me.session, body.current_password, body.new_password
    )
    return PasswordChanged(ended_sessions=ended)


@router.get("/me/sessions", response_model=list[SessionShown])
def sessions(request: Request, me: SignedIn) -> list[SessionShown]:
    """Your open sessions, the most recently used first."""
    found = service.open_sessions(node_of(request), me.member, me.session)
    return [SessionShown(**vars(s)) for s in found]


@router.delete("/me/sessions/{session_id}", status_code=204)
def end_session(
    session_id: Annotated[str, Path(pattern=SESSION_ID)], request: Request, me: SignedIn
) -> None:
    """End one of your sessions (this one too, if named)."""
    service.end_session(node_of(request), me.member, session_id)


@router.delete("/me/sessions", response_model=SessionsEnded)
def end_other_sessions(request: Request, me: SignedIn) -> SessionsEnded:
    """Log out everywhere else."""
    ended = service.end_other_sessions(node_of(request), me.member, me.session)
    return SessionsEnded(ended_sessions=ended)


@router.post("/password-resets", status_code=202)
def ask_reset(body: ResetAsked, request: Request, _: MaybeMember) -> Response:
    """Mail a one-time link to reset the password of this email's account, if there is one;
    the answer is the same either way. Refused (409) on a node that sends no mail: a
    forgotten password is then reset at an exchange office."""
    node = node_of(request)
    service.ask_reset(node, body.email, client_address(request), public_origin(request))
    return Response(status_code=202)


@router.post("/password-resets/{token}", response_model=SessionOut)
def use_reset(
    token: Annotated[str, Path(pattern=RESET_TOKEN)],
    body: ResetUse,
    request: Request,
    response: Response,
    _: MaybeMember,
) -> SessionOut:
    """Set a new password with a reset link's token (once): every session of the member
    ends, and this answer sets a new one's cookie."""
    node = node_of(request)
    member, token_, csrf = service.reset_password(node, token, body.password, SeenFrom.of(request))
    set_session_cookie(request, response, token_, node.settings.session_days)
    return SessionOut(member=member_out(member), csrf=csrf)


@router.post(
    "/members/{member_id}/password-reset-links",
    status_code=201,
    response_model=ResetLinkOut,
    tags=["admin"],
)
def office_reset(
    member_id: Annotated[str, Path(pattern=MEMBER_ID)], request: Request, officer: KeyOfficer
) -> ResetLinkOut:
    """A one-time reset link for a member seen in person with an identity document, to
    open on their phone (30 minutes). An exchange office makes one for a wallet holder; an
    admin for anyone."""
    member, link = service.office_reset(node_of(request), officer, member_id)
    return ResetLinkOut(
        member=member.id, url=link.url(public_origin(request)), expires_ms=link.expires_ms
    )
