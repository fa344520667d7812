"""What a member does to keep their access safe: change their password, see their open
sessions and end them, and reset a forgotten password by a one-time link, mailed to them
when the node sends mail, else made by an exchange-office operator who saw them in person.

A reset link's token is random, only its hash kept; it lasts RESET_MINUTES and is used once
(one conditional UPDATE). Setting a password ends the member's other sessions: a person's
(`wallet`) ones, never a counter device's (`pos`), which is the shop's till and ends when
the merchant unpairs it.

Writes run in short transactions of their own; every change to sessions makes
`members.access` look its callers up again (`forget_principals`) once committed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING

from sqlalchemy import Connection, RowMapping

from members import logins
from members import repository as members_repo
from members.access import (
    Member,
    forget_principals,
    hash_password,
    now_ms,
    open_session,
    password_matches,
    token_hash,
)
from members.account import repository as repo
from members.account.errors import (
    OPERATOR_RESET,
    RESET_LINK_EXPIRED,
    RESET_LINK_UNKNOWN,
    RESET_LINK_USED,
    RESETS_AT_OFFICE,
    TOO_MANY_RESETS,
    TOO_MANY_WRONG_PASSWORDS,
    UNKNOWN_SESSION,
    WRONG_PASSWORD,
)
from members.account.seen import SeenFrom, device_name
from members.errors import FORBIDDEN, UNKNOWN_MEMBER
from members.models import WALLET_ROLES
from members.service import EMAIL, check_password
from runtime import mail
from web.i18n import translations

if TYPE_CHECKING:
    from runtime.node import Node

RESET_MINUTES = 30
RESET_PATH = "/password/reset/"
# Asking for links: per email typed (known or not, so that the answer says nothing), and
# per address, in an hour; enough for a member who retries, too few to flood a mailbox.
RESETS_PER_EMAIL = 3
RESETS_PER_ADDRESS = 10
RESET_WINDOW_MS = 3_600_000
# Wrong current passwords a session may send in a day, the last of which ends it: the
# login's limits then apply to whoever guesses.
WRONG_PASSWORDS = 5
WRONG_PASSWORD_WINDOW_MS = 86_400_000


# -- changing one's password -------------------------------------------------------------------


def change_password(
    node: Node, member: Member, session: bytes, current_password: str, new_password: str
) -> int:
    """Set a new password, the current one given; end the member's other sessions (how
    many were ended). A wrong current password changes nothing; the WRONG_PASSWORDS-th in a
    day ends this session too."""
    check_password(new_password)
    subject, now = f"password:{session.hex()}", now_ms()
    # Counted before the password is checked, in its own transaction: guesses sent at once
    # are judged one after the other, never all against the same count.
    with node.engine.begin() as conn:
        tried = logins.count_in_window(conn, subject, now, WRONG_PASSWORD_WINDOW_MS) + 1
    with node.ledger.reading() as conn:
        row = members_repo.member(conn, member.id)
    if row is None or not password_matches(row["password_hash"], current_password):
        if tried < WRONG_PASSWORDS:
            raise WRONG_PASSWORD()
        with node.engine.begin() as conn:
            repo.end_sessions(conn, member.id, [session])
        forget_principals(node)
        raise TOO_MANY_WRONG_PASSWORDS()
    with node.engine.begin() as conn:
        members_repo.clear_failures(conn, subject)
        ended = _set_password(conn, member.id, new_password, keep=session)
    forget_principals(node)
    return ended


def _set_password(conn: Connection, member_id: str, password: str, keep: bytes | None) -> int:
    repo.set_password(conn, member_id, hash_password(password))
    repo.withdraw_resets(conn, member_id, now_ms())
    return repo.end_person_sessions(conn, member_id, keep=keep)


# -- sessions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenSession:
    """One of a member's open sessions, as their list shows it."""

    id: str
    created_ms: int
    last_seen_ms: int
    expires_ms: int
    device: str | None  # "Firefox, Android"; None: not recognised
    address: str | None
    current: bool


def session_id(hashed: bytes) -> str:
    """What names a session in its member's list: never its secret, nor its hash."""
    return hashlib.sha256(b"session:" + hashed).hexdigest()[:20]


def open_sessions(node: Node, member: Member, session: bytes | None) -> list[OpenSession]:
    """The member's own open sessions (a person's), the most recently used first."""
    now = now_ms()
    idle_since = now - node.settings.session_idle_minutes * 60_000
    with node.ledger.reading() as conn:
        rows = repo.sessions_of(conn, member.id, now, idle_since)
    return [
        OpenSession(
            session_id(row["token_hash"]),
            row["created_ms"],
            row["last_seen_ms"],
            min(row["expires_ms"], row["last_seen_ms"] + (now - idle_since)),
            device_name(row["user_agent"]),
            row["address"] or None,
            row["token_hash"] == session,
        )
        for row in rows
        if row["scope"] == "wallet"
    ]


def end_session(node: Node, member: Member, shown_id: str) -> None:
    """End one of the member's sessions (this one too, if named)."""
    now = now_ms()
    with node.engine.begin() as conn:
        rows = repo.sessions_of(conn, member.id, now, 0)
        found = [
            bytes(row["token_hash"])
            for row in rows
            if row["scope"] == "wallet" and session_id(row["token_hash"]) == shown_id
        ]
        if not repo.end_sessions(conn, member.id, found):
            raise UNKNOWN_SESSION()
    forget_principals(node)


def end_other_sessions(node: Node, member: Member, session: bytes) -> int:
    """Log out everywhere else; how many sessions were ended."""
    with node.engine.begin() as conn:
        ended = repo.end_person_sessions(conn, member.id, keep=session)
    forget_principals(node)
    return ended


# -- reset links -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResetLink:
    token: str
    expires_ms: int

    def url(self, origin: str) -> str:
        return f"{origin}{RESET_PATH}{self.token}"


def _make_link(conn: Connection, member_id: str, made_by: str | None) -> ResetLink:
    """A new link for the member; the ones not used yet can no longer be."""
    token, now = secrets.token_urlsafe(32), now_ms()
    expires = now + RESET_MINUTES * 60_000
    repo.withdraw_resets(conn, member_id, now)
    repo.insert_reset(
        conn,
        {
            "token_hash": token_hash(token),
            "member_id": member_id,
            "made_by": made_by,
            "created_ms": now,
            "expires_ms": expires,
        },
    )
    return ResetLink(token, expires)


def ask_reset(node: Node, email: str, address: str, origin: str) -> None:
    """Mail a reset link to the member of this email, if there is one. The answer, and
    its time, are the same whether there is or not: the message leaves from another thread,
    and the attempts are counted by the email typed."""
    if not mail.configured(node.settings):
        raise RESETS_AT_OFFICE()
    email = email.strip().lower()
    typed = hashlib.sha256(email.encode()).hexdigest()
    subjects = (
        (f"reset-email:{typed}", RESETS_PER_EMAIL),
        (f"reset-ip:{logins.network_of(address)}", RESETS_PER_ADDRESS),
    )
    now = now_ms()
    with node.engine.begin() as conn:  # a refusal rolls the counts back: nothing written
        for subject, most in subjects:
            if logins.count_in_window(conn, subject, now, RESET_WINDOW_MS) >= most:
                raise TOO_MANY_RESETS(minutes=RESET_WINDOW_MS // 60_000)
        row = members_repo.member_by_email(conn, email) if EMAIL.match(email) else None
        link = None if row is None else _make_link(conn, row["id"], None)
    if row is not None and link is not None:
        mail.send_later(node.settings, _reset_letter(node, row, link.url(origin)), "reset")


def _reset_letter(node: Node, row: RowMapping, url: str) -> EmailMessage:
    """The message bringing the link, in the member's language."""
    tr = translations(row["locale"])
    village = node.settings.village
    subject = tr.gettext("Reset your password for {village}").format(village=village)
    body = tr.gettext(
        "Hello {name},\n\n"
        "Someone, probably you, asked to reset the password of your account at {village}. "
        "To choose a new password, open this link within {minutes} minutes:\n\n"
        "{link}\n\n"
        "The link works once. If you did not ask for it, ignore this message: your password "
        "stays as it is.\n"
    ).format(name=row["display_name"], village=village, minutes=RESET_MINUTES, link=url)
    return mail.letter(node.settings, to=row["email"], subject=subject, body=body)


def office_reset(node: Node, officer: Member, member_id: str) -> tuple[Member, ResetLink]:
    """A reset link an operator makes for a member they saw in person with an identity
    document, shown on their screen for the member's phone. An exchange office resets a
    wallet holder's; an operator's is reset by an admin."""
    if officer.role not in ("office", "admin"):
        raise FORBIDDEN()
    with node.engine.begin() as conn:
        row = members_repo.member(conn, member_id)
        if row is None:
            raise UNKNOWN_MEMBER()
        if officer.role == "office" and row["role"] not in WALLET_ROLES:
            raise OPERATOR_RESET()
        link = _make_link(conn, member_id, officer.id)
    return Member.from_row(row), link


def reset_for(node: Node, token: str) -> Member:
    """The member whose password this link resets, if it may still be used."""
    with node.ledger.reading() as conn:
        reset = repo.reset_by_token(conn, token_hash(token))
        _check_usable(reset, now_ms())
        assert reset is not None
        row = members_repo.member(conn, reset["member_id"])
    assert row is not None
    return Member.from_row(row)


def _check_usable(reset: RowMapping | None, now: int) -> None:
    if reset is None:
        raise RESET_LINK_UNKNOWN()
    if reset["used_ms"] is not None:
        raise RESET_LINK_USED()
    if reset["expires_ms"] <= now:
        raise RESET_LINK_EXPIRED(minutes=RESET_MINUTES)


def reset_password(
    node: Node, token: str, password: str, seen_from: SeenFrom | None = None
) -> tuple[Member, str, str]:
    """Set the password a link resets, end every session of the member (a person's), and
    open one here: (member, session token, CSRF token). Of two uses at once, one sets it."""
    check_password(password)
    now = now_ms()
    with node.engine.begin() as conn:
        reset = repo.reset_by_token(conn, token_hash(token))
        _check_usable(reset, now)
        assert reset is not None
        if not repo.use_reset(conn, reset["id"], now):
            raise RESET_LINK_USED()
        _set_password(conn, reset["member_id"], password, keep=None)
        # Whoever had the account before the reset loses the devices it knew as well.
        members_repo.forget_login_devices_of(conn, reset["member_id"])
        row = members_repo.member(conn, reset["member_id"])
        assert row is not None
        session, csrf = open_session(
            conn, row["id"], node.settings.session_days, seen_from=seen_from
        )
    forget_principals(node)
    return Member.from_row(row), session, csrf


def forget_old_links_and_sessions(node: Node, now: int) -> str:
    """Drop the links that can no longer be used and the sessions unused for the idle time
    (a person's). The counts that limit asking for links and guessing one's current
    password go with the login limits' (`members.service.forget_old_logins`)."""
    with node.engine.begin() as conn:
        repo.forget_resets(conn, now - RESET_MINUTES * 60_000)
        repo.forget_idle_sessions(conn, now - node.settings.session_idle_minutes * 60_000)
    return "forgotten"
