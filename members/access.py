"""Who is asking: people by session cookie, devices by API token; and what each role may do.

People log in with a password (Argon2id) and get a session cookie (HttpOnly, SameSite=Lax,
Secure behind https). Every unsafe request made with that cookie must carry the session's
CSRF token (form field `csrf` or header `X-CSRF-Token`). Devices use a bearer token whose
scope limits them: a `pos` token takes payments at its shop's counter (invoices, refunds)
and reads them, nothing else. A device paired with a shop's counter (`pos.devices`) holds a
session of scope `pos`: the same cookie and CSRF as a person's, the rights of a `pos` token,
and the counter's pages.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request
from sqlalchemy import Connection, RowMapping
from starlette.concurrency import run_in_threadpool

from ledger.chart import member_account
from members import repository as repo
from members.account.seen import SeenFrom, note_seen
from members.errors import (
    BAD_TOKEN,
    COUNTER_DEVICE,
    CSRF,
    FORBIDDEN,
    LOGIN_REQUIRED,
    NO_WALLET,
    TOKEN_SCOPE,
)
from members.models import WALLET_ROLES
from web.pages import CSRF_COOKIE

if TYPE_CHECKING:
    from runtime.node import Node

SESSION_COOKIE = "sou_session"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
hasher = PasswordHasher()


@cache
def _stand_in(made_by: PasswordHasher) -> str:
    """Verified against when the email is unknown, so that timing does not reveal who is
    a member: a hash as costly to check as the members' (made with the same hasher)."""
    return made_by.hash("not a password of anyone")


@dataclass(frozen=True)
class Member:
    id: str
    role: str
    display_name: str
    email: str | None
    office: str | None
    locale: str
    membership_until: date | None
    frozen_reason: str | None

    @property
    def account(self) -> str:
        return member_account(self.id)

    @property
    def has_wallet(self) -> bool:
        return self.role in WALLET_ROLES

    def membership_current(self, today: date | None = None) -> bool:
        today = today or date.today()
        return self.membership_until is not None and self.membership_until >= today

    @classmethod
    def from_row(cls, row: RowMapping) -> Member:
        return cls(
            row["id"],
            row["role"],
            row["display_name"],
            row["email"],
            row["office"],
            row["locale"],
            row["membership_until"],
            row["frozen_reason"],
        )


@dataclass(frozen=True)
class Principal:
    member: Member
    via: str  # "session" or "token"
    # What it may do: `wallet`, all its member may (a person's session); `pos`, take
    # payments at the shop's counter (a `pos` token, or a counter device's session).
    scope: str = "wallet"


def now_ms() -> int:
    return int(time.time() * 1000)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def hash_password(password: str) -> str:
    return hasher.hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    try:
        return hasher.verify(stored or _stand_in(hasher), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def node_of(request: Request) -> Node:
    return request.app.state.node  # type: ignore[no-any-return]


def open_session(
    conn: Connection,
    member_id: str,
    days: int,
    *,
    scope: str = "wallet",
    key_id: str | None = None,
    seen_from: SeenFrom | None = None,
) -> tuple[str, str]:
    """A new session for a member: (cookie token, CSRF token). Only hashes are stored. A
    counter device's (`scope="pos"`) names the counter key it was paired with. Where it is
    opened from (`seen_from`) is otherwise written at its first use."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    now = now_ms()
    repo.delete_expired_sessions(conn, now)
    repo.insert_session(
        conn,
        {
            "token_hash": token_hash(token),
            "member_id": member_id,
            "csrf": csrf,
            "created_ms": now,
            "expires_ms": now + days * 86_400_000,
            "scope": scope,
            "key_id": key_id,
            "last_seen_ms": now,
            **(seen_from.columns() if seen_from is not None else {}),
        },
    )
    return token, csrf


def close_counter_sessions(conn: Connection, key_id: str) -> None:
    """End the sessions of the counter device holding `key_id` (it is unpaired). The caller
    calls `forget_principals` once committed."""
    repo.delete_sessions_of_key(conn, key_id)


async def principal(request: Request) -> Principal | None:
    """The member behind this request, or None for an anonymous one. Checks CSRF."""
    node, caller = node_of(request), _caller(request)
    seen = None if caller is None else _still_fresh(node, caller)
    if caller is not None and seen is None:
        # A database read runs in a worker thread: it must not stall the event loop,
        # which meanwhile reads and answers other requests.
        seen = await run_in_threadpool(_look_up, node, caller, SeenFrom.of(request))
    found = None if seen is None else seen.found
    if caller is not None and caller[0] == "token" and found is None:
        raise BAD_TOKEN()
    if found is not None and found.via == "session":
        request.state.session_csrf = seen.csrf if seen else None
    # Cross-site pages can post forms (and send cookies) but not JSON without the node's
    # consent: anonymous JSON calls carry no ambient credential, everything else is checked.
    if request.method in UNSAFE and (
        (found is not None and found.via == "session") or (found is None and _is_form(request))
    ):
        await _check_csrf(request)
    request.state.member = found.member if found else None
    request.state.scope = found.scope if found else None
    return found


def _one_read(node: Node) -> Connection:
    """A connection for one read. On PostgreSQL outside any transaction: one round trip
    instead of three (BEGIN, SELECT, ROLLBACK), on every request."""
    conn = node.ledger.reading()
    if node.engine.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


# Who a token or session cookie stands for, remembered for a moment: without it every
# request would cost a database read and a thread hop. A logout, revocation or freeze made
# in this process forgets at once; one made by another worker process of the node takes
# effect within RECENT_S seconds.
RECENT_S = 2.0
_MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class _Seen:
    found: Principal | None
    csrf: str | None
    until: float  # time.monotonic()


def _caller(request: Request) -> tuple[str, bytes] | None:
    """("token" | "session", hash of the secret) that the request presents, if any."""
    bearer = request.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        return "token", token_hash(bearer[7:].strip())
    if cookie := request.cookies.get(SESSION_COOKIE):
        return "session", token_hash(cookie)
    return None  # anonymous, or a session expired or logged out: pages offer to log in


def _remembered(node: Node) -> dict[tuple[str, bytes], _Seen]:
    return node.callers


def forget_principals(node: Node) -> None:
    """Look every token and session up again. Called by the functions that log out, revoke
    a token, freeze or thaw a wallet, or renew a membership (`members.service`), once the
    change is committed: not by their callers."""
    node.callers.clear()


def _still_fresh(node: Node, caller: tuple[str, bytes]) -> _Seen | None:
    seen = _remembered(node).get(caller)
    return seen if seen is not None and seen.until > time.monotonic() else None


def _look_up(node: Node, caller: tuple[str, bytes], seen_from: SeenFrom | None = None) -> _Seen:
    kind, hashed = caller
    now, idle_ms = now_ms(), node.settings.session_idle_minutes * 60_000
    with _one_read(node) as conn:
        if kind == "token":
            row = repo.token_member(conn, hashed)
        else:
            row = repo.session_member(conn, hashed, now, now - idle_ms)
    if row is None:  # not remembered: a token or session just made elsewhere works at once
        return _Seen(None, None, 0.0)
    until = time.monotonic() + RECENT_S
    if kind == "token":
        seen = _Seen(Principal(Member.from_row(row), "token", row["scope"]), None, until)
    else:  # never past the session's end, nor past a person's idle time
        ends_ms = row["expires_ms"]
        if row["scope"] == "wallet":
            ends_ms = min(ends_ms, row["last_seen_ms"] + idle_ms)
        until = min(until, time.monotonic() + (ends_ms - now) / 1000)
        note_seen(node, hashed, row, seen_from, now)
        found = Principal(Member.from_row(row), "session", row["scope"])
        seen = _Seen(found, row["csrf"], until)
    cache = _remembered(node)
    if len(cache) >= _MAX_REMEMBERED:  # many distinct callers: start again rather than grow
        cache.clear()
    cache[caller] = seen
    return seen


def wallet_principal(node: Node, hashed: bytes) -> Member | None:
    """The wallet holder a token (by its hash) stands for, if remembered and still fresh:
    what `principal` and `WalletHolder` would find, without a read. None: ask them."""
    seen = _still_fresh(node, ("token", hashed))
    found = None if seen is None else seen.found
    if found is None or found.scope != "wallet" or found.member.role not in WALLET_ROLES:
        return None
    return found.member


async def _check_csrf(request: Request) -> None:
    if request.url.path.startswith("/stripe/"):
        return  # webhooks are authenticated by Stripe's signature instead
    expected = getattr(request.state, "session_csrf", None) or request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get("x-csrf-token")
    if sent is None and _is_form(request):
        value = (await request.form()).get("csrf")
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise CSRF()


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind in ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


def _out_of_scope(p: Principal) -> Exception:
    """The refusal of a caller whose scope does not reach: a token's, or a counter's."""
    return COUNTER_DEVICE() if p.via == "session" else TOKEN_SCOPE()


def _member(p: Principal | None, *, scope: str = "wallet") -> Member:
    if p is None:
        raise LOGIN_REQUIRED()
    if p.scope != scope:
        raise _out_of_scope(p)
    return p.member


def _role(*roles: str) -> Any:
    async def dependency(p: Annotated[Principal | None, Depends(principal)]) -> Member:
        member = _member(p)
        if member.role not in roles:
            raise FORBIDDEN()
        return member

    return Depends(dependency)


async def _pos_device(p: Annotated[Principal | None, Depends(principal)]) -> Member:
    member = _member(p, scope="pos")
    if member.role != "merchant":
        raise FORBIDDEN()
    return member


async def _counter(p: Annotated[Principal | None, Depends(principal)]) -> Member:
    # The shop's point of sale: the merchant signed in, or a device holding its `pos` token
    # or paired with its counter (which take payments and refunds for the shop, and read
    # them, nothing else).
    if p is None:
        raise LOGIN_REQUIRED()
    if p.member.role != "merchant":
        raise FORBIDDEN()
    return p.member


async def _anyone(p: Annotated[Principal | None, Depends(principal)]) -> Member:
    return _member(p)


async def _wallet_owner(p: Annotated[Principal | None, Depends(principal)]) -> Member:
    # A stolen API token must not outlive its revocation: registering a device key or
    # making another token takes the password (a session), never a token.
    member = _member(p)
    if member.role not in WALLET_ROLES:
        raise FORBIDDEN()
    if p is not None and p.via != "session":
        raise TOKEN_SCOPE()
    return member


async def _person_or_visitor(
    p: Annotated[Principal | None, Depends(principal)],
) -> Principal | None:
    # Pages and public endpoints act for whoever calls; a point-of-sale token may only
    # read its merchant's payments, never a wallet page.
    if p is not None and p.scope != "wallet":
        raise _out_of_scope(p)
    return p


async def _person_or_counter(
    p: Annotated[Principal | None, Depends(principal)],
) -> Principal | None:
    # The counter's pages: a person, or a device paired with a shop's counter (its
    # session), never a bearer token of the counter.
    if p is not None and p.scope != "wallet" and p.via != "session":
        raise TOKEN_SCOPE()
    return p


async def _member_or_counter(p: Annotated[Principal | None, Depends(_person_or_counter)]) -> Member:
    if p is None:
        raise LOGIN_REQUIRED()
    return p.member


MaybeMember = Annotated[Principal | None, Depends(_person_or_visitor)]
MaybeCounter = Annotated[Principal | None, Depends(_person_or_counter)]  # + counter devices
AnyMember = Annotated[Member, Depends(_anyone)]
MemberOrCounter = Annotated[Member, Depends(_member_or_counter)]
WalletHolder = Annotated[Member, _role(*WALLET_ROLES)]
WalletOwner = Annotated[Member, Depends(_wallet_owner)]  # a wallet holder, by password
Merchant = Annotated[Member, _role("merchant")]
OfficeOperator = Annotated[Member, _role("office")]
Treasurer = Annotated[Member, _role("treasurer")]
Admin = Annotated[Member, _role("admin")]
# Who may recover a member's keys after checking their identity in person.
KeyOfficer = Annotated[Member, _role("office", "admin")]
PosDevice = Annotated[Member, Depends(_pos_device)]
Counter = Annotated[Member, Depends(_counter)]


# -- who is signed in, for the pages -------------------------------------------------------
# A page answers an anonymous visitor with the login page (coming back afterwards), where
# the API answers 401: these helpers say which, the pages return the redirect as it is.


def signed_in(request: Request, p: Principal | None, *roles: str) -> Member | RedirectResponse:
    """The logged-in member if they have one of `roles`; the login page for an anonymous
    visitor; refused (403) for any other role, or for a device's API token."""
    from web.pages import to_login

    if p is None:
        return to_login(request)
    if p.scope != "wallet":
        raise _out_of_scope(p)
    if p.member.role not in roles:
        raise FORBIDDEN()
    return p.member


def at_counter(request: Request, p: Principal | None) -> Member | RedirectResponse:
    """The shop whose counter this is: its merchant signed in, or a device paired with it
    (`MaybeCounter`); the login page for a visitor; refused (403) for anyone else."""
    from web.pages import to_login

    if p is None:
        return to_login(request)
    if p.member.role != "merchant":
        raise FORBIDDEN()
    return p.member


def may_register_keys(p: Principal | None) -> bool:
    """Whether this caller may register a device key (`WalletOwner`): a person signed in
    with their password, never a token nor a counter device (paired with its key)."""
    return p is not None and p.via == "session" and p.scope == "wallet"


def wallet_holder(
    request: Request, p: Principal | None, back: str | None = None
) -> Member | RedirectResponse:
    """The logged-in member with a wallet; the login page for a visitor, who comes back to
    `back` (this page by default); refused (403) for an operator."""
    from web.pages import to_login

    if p is None:
        return to_login(request, back)
    if p.scope != "wallet":
        raise _out_of_scope(p)
    if not p.member.has_wallet:
        raise NO_WALLET()
    return p.member


if TYPE_CHECKING:  # for the annotations above only
    from fastapi.responses import RedirectResponse
