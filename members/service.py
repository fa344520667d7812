"""The rules of membership: joining, logging in and out, API tokens, device keys and their
recovery, operators, yearly memberships, finding members and whom one pays, the approval
of shops, and frozen wallets.

Every change that alters what a session or token stands for (a logout, a revoked token, a
freeze, a renewed membership) makes `members.access` look its callers up again here, once
the change is committed: the functions below do it, never their callers.

Writes to our own tables run in short transactions of their own, never around a ledger
post: on SQLite one writer holds the database at a time, and the poster is that writer.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from ledger import repository as ledger_repo
from ledger.canonical import canonical, unb64
from ledger.chart import member_account, office_cash
from ledger.signing import key_id as signing_key_id
from members import logins, shops
from members import repository as repo
from members.access import (
    Member,
    forget_principals,
    hash_password,
    now_ms,
    open_session,
    password_matches,
    token_hash,
)
from members.account.seen import SeenFrom
from members.errors import (
    BAD_EMAIL,
    BAD_LOGIN,
    BAD_OFFICE,
    BAD_PUBLIC_KEY,
    BAD_ROLE,
    BAD_ROLE_FILTER,
    BAD_SEARCH,
    EMAIL_TAKEN,
    FORBIDDEN,
    KEY_EXISTS,
    LONG_PASSWORD,
    TOO_MANY_KEYS,
    TOO_MANY_TOKENS,
    UNKNOWN_DEVICE_KEY,
    UNKNOWN_MEMBER,
    UNKNOWN_SHOP,
    UNKNOWN_TOKEN,
    WEAK_PASSWORD,
)
from members.models import ROLES
from members.shops import Payee, Shop
from runtime.node import add_operator
from runtime.signing import node_key_event
from web.text import check_visible

if TYPE_CHECKING:
    from runtime.node import Node

MAX_DEVICE_KEYS = 10
MAX_API_TOKENS = 20  # not revoked, per member
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,}$")
MEMBER_ID = re.compile(r"[A-Za-z0-9_.-]{1,48}")  # as members.schemas.MEMBER_ID
SLUG = re.compile(r"[a-z0-9-]{1,64}")
PER_PAGE = 20
MAX_SEARCH = 120
OPERATOR_ROLES = ("office", "treasurer", "admin")


# -- joining and logging in ----------------------------------------------------------------


def member_id_for(name: str) -> str:
    """A readable, unguessable wallet id: `camille-dupont-7k2q`."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:30] or "membre"
    return f"{slug}-{secrets.token_hex(2)}"


def check_password(password: str) -> None:
    if len(password) < 10:
        raise WEAK_PASSWORD()
    if len(password) > 200:
        raise LONG_PASSWORD()


def join(
    node: Node,
    *,
    display_name: str,
    email: str,
    password: str,
    role: str = "resident",
    locale: str = "fr",
    merchant: dict[str, Any] | None = None,
    address: str | None = None,
) -> Member:
    """Sign a person up: the member, their wallet account (and trade details), together.
    `address`: where an anonymous sign-up comes from, counted (`logins.count_join`)."""
    if role not in ("resident", "merchant") or (role == "merchant") != (merchant is not None):
        raise BAD_ROLE()

    def wallet(conn: Connection, member_id: str) -> None:
        if merchant is not None:  # a shop, listed once the association approves it
            place = merchant.get("place") or node.settings.village
            shops.add_shop(conn, member_id, **{**merchant, "place": place})
        node.ledger.open_account(member_account(member_id), conn)

    person = {"display_name": display_name, "role": role, "locale": locale}
    return get_member(node, _record_person(node, person, email, password, wallet, address))


def _record_person(
    node: Node,
    person: dict[str, Any],
    email: str,
    password: str,
    also: Callable[[Connection, str], None] | None = None,
    address: str | None = None,
) -> str:
    """Check and record a person who logs in (with `also`'s writes, in one transaction);
    their new member id."""
    check_visible("display_name", person["display_name"])
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise BAD_EMAIL()
    check_password(password)
    if address is not None:
        with node.engine.begin() as conn:
            logins.count_join(conn, node.settings, address, now_ms())
    row = person | {
        "display_name": person["display_name"].strip(),
        "email": email,
        "password_hash": hash_password(password),
        "created_ms": now_ms(),
    }
    for attempt in (1, 2):
        member_id = member_id_for(person["display_name"])
        try:
            with node.engine.begin() as conn:
                if repo.member_by_email(conn, email) is not None:
                    raise EMAIL_TAKEN()
                repo.insert_member(conn, {**row, "id": member_id})
                if also is not None:
                    also(conn, member_id)
            return member_id
        except IntegrityError:
            # The same email joining twice at the same moment; else, once in a long while,
            # an id or a shop's slug made twice at the same moment: once more, anew.
            with node.ledger.reading() as conn:
                taken = repo.member_by_email(conn, email) is not None
            if taken or attempt == 2:
                raise EMAIL_TAKEN() from None
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class LoggedIn:
    member: Member
    token: str  # the session cookie's
    csrf: str
    device: str | None  # a new known-device cookie to set, if any (`members.logins`)


def log_in(
    node: Node,
    email: str,
    password: str,
    client_ip: str,
    device: str | None = None,
    seen_from: SeenFrom | None = None,
) -> LoggedIn:
    """Check a password and open a session; tries are slowed as `members.logins` says.
    `device`: the known-device cookie the browser presented; `seen_from`: its browser and
    address, shown in the member's list of sessions. A wrong password takes as long for an
    email no member has as for a member's."""
    email = email.strip().lower()
    if len(email) > 254 or not email.isprintable():  # no account's: nothing to count
        raise BAD_LOGIN()  # (and PostgreSQL refuses a NUL byte, the failures' key 300 chars)
    presented, now = logins.device_hash(device), now_ms()
    with node.engine.begin() as conn:
        row = repo.member_by_email(conn, email)
        known = (
            presented
            if row is not None
            and presented is not None
            and repo.login_device_known(conn, presented, row["id"])
            else None
        )
        attempt = logins.Attempt(email, logins.network_of(client_ip), known)
        logins.claim(conn, node.settings, attempt, now)
    # Checked outside any transaction: the hash takes a while, and holds no lock meanwhile.
    if not password_matches(row["password_hash"] if row else None, password) or row is None:
        raise BAD_LOGIN()  # counted above
    with node.engine.begin() as conn:
        new_device = logins.settle(conn, attempt, row["id"], now)
        token, csrf = open_session(conn, row["id"], node.settings.session_days, seen_from=seen_from)
    return LoggedIn(Member.from_row(row), token, csrf, new_device)


def forget_old_logins(node: Node, now: int) -> str:
    """Drop the failed logins that count no more and the devices unused for long."""
    # A day at least: the counts of wrong current passwords (`members.account`) last that.
    window_ms = max(node.settings.login_window * 1000, 86_400_000)
    with node.engine.begin() as conn:
        repo.forget_failures(conn, now - window_ms)
        repo.forget_login_devices(conn, now - logins.DEVICE_DAYS * 86_400_000)
    return "forgotten"


def log_out(node: Node, token_hash: bytes) -> None:
    with node.engine.begin() as conn:
        repo.delete_session(conn, token_hash)
    forget_principals(node)


# -- finding members -----------------------------------------------------------------------


def find_member(node: Node, member_id: str) -> Member | None:
    with node.ledger.reading() as conn:
        row = repo.member(conn, member_id)
    return None if row is None else Member.from_row(row)


def get_member(node: Node, member_id: str) -> Member:
    found = find_member(node, member_id)
    if found is None:
        raise UNKNOWN_MEMBER()
    return found


def names(node: Node, member_ids: set[str]) -> dict[str, str]:
    """How histories and receipts name these members: a shop's trade name, anyone else's
    name (`shops.names_of`)."""
    with node.ledger.reading() as conn:
        return shops.names_of(conn, member_ids)


@dataclass(frozen=True)
class MembersFound:
    """One page of the members a search found."""

    members: list[Member]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def find_members(
    node: Node, *, text: str = "", role: str | None = None, page: int = 1, per_page: int = PER_PAGE
) -> MembersFound:
    """Members whose name, email or id contains `text`, of `role` if given, by name."""
    text = text.strip()
    if len(text) > MAX_SEARCH or not text.isprintable():
        raise BAD_SEARCH()
    if role is not None and role not in ROLES:
        raise BAD_ROLE_FILTER()
    page, per_page = max(page, 1), min(max(per_page, 1), 100)
    with node.ledger.reading() as conn:
        rows, total = repo.search_members(
            conn, text=text, role=role, offset=(page - 1) * per_page, limit=per_page
        )
    return MembersFound([Member.from_row(row) for row in rows], total, page, per_page)


# -- shops and whom one pays ---------------------------------------------------------------


def find_payees(node: Node, text: str, limit: int = 10) -> list[Payee]:
    """Whom a payer's words name (`shops.find_payees`)."""
    with node.ledger.reading() as conn:
        return shops.find_payees(conn, text, limit)


def payee(node: Node, reference: str) -> Payee | None:
    """The payee a link names: an approved shop's slug or a member id (`shops.payee`)."""
    with node.ledger.reading() as conn:
        return shops.payee(conn, reference)


def shop_of(node: Node, member_id: str) -> Shop | None:
    if not MEMBER_ID.fullmatch(member_id):  # typed in an address: never a member's
        return None
    with node.ledger.reading() as conn:
        return shops.shop_of(conn, member_id)


def approved_shop(node: Node, slug: str) -> Shop:
    """The shop of this slug, if the association approved it: else none is known here."""
    if not SLUG.fullmatch(slug):
        raise UNKNOWN_SHOP()
    with node.ledger.reading() as conn:
        found = shops.shop_by_slug(conn, slug)
    if found is None or not found.approved:
        raise UNKNOWN_SHOP()
    return found


def shops_in(node: Node, status: str) -> list[Shop]:
    with node.ledger.reading() as conn:
        return shops.shops_in(conn, status)


def approve_shop(node: Node, admin: Member, member_id: str) -> Shop:
    """The association approves a merchant against its charter: the shop is listed, found
    by its name, and paid at the counter. Approving an approved shop changes nothing."""
    return _decide_shop(node, admin, member_id, "approved")


def suspend_shop(node: Node, admin: Member, member_id: str) -> Shop:
    """The association suspends a merchant (or turns down one who asked): the shop is no
    longer listed nor paid at the counter; the member keeps their wallet."""
    return _decide_shop(node, admin, member_id, "suspended")


def _decide_shop(node: Node, admin: Member, member_id: str, status: str) -> Shop:
    if admin.role != "admin":
        raise FORBIDDEN()
    if not MEMBER_ID.fullmatch(member_id):
        raise UNKNOWN_SHOP()
    with node.engine.begin() as conn:
        found = shops.shop_of(conn, member_id)
        if found is None:
            raise UNKNOWN_SHOP()
        if found.status != status:
            shops.decide(conn, member_id, status, admin.id, now_ms())
            found = shops.shop_of(conn, member_id)
    assert found is not None
    return found


# -- API tokens ----------------------------------------------------------------------------


def api_tokens(node: Node, member: Member) -> list[dict[str, Any]]:
    """The member's API tokens not revoked, oldest first (never the secrets)."""
    with node.ledger.reading() as conn:
        return [dict(row) for row in repo.tokens_of(conn, member.id)]


def create_token(node: Node, member: Member, scope: str, label: str) -> dict[str, Any]:
    """An API token for a device; its secret (`token`) is shown this once, only its hash
    is kept. A `pos` token (merchants) only reads incoming payments."""
    if scope == "pos" and member.role != "merchant":
        raise FORBIDDEN()
    check_visible("label", label)
    token, created = secrets.token_urlsafe(32), now_ms()
    row = {"member_id": member.id, "scope": scope, "label": label, "created_ms": created}
    with node.engine.begin() as conn:
        repo.lock_member(conn, member.id)  # two made at once are counted one after the other
        held = len(repo.tokens_of(conn, member.id))
        if held >= MAX_API_TOKENS:
            raise TOO_MANY_TOKENS(count=held)
        token_id = repo.insert_token(conn, {**row, "token_hash": token_hash(token)})
    return {"id": token_id, "scope": scope, "label": label, "created_ms": created, "token": token}


def revoke_token(node: Node, member: Member, token_id: int) -> None:
    with node.engine.begin() as conn:
        if not repo.revoke_token(conn, member.id, token_id, now_ms()):
            raise UNKNOWN_TOKEN()
    forget_principals(node)


# -- device keys ---------------------------------------------------------------------------


def add_device_key(node: Node, member: Member, public_key_b64: str, label: str) -> str:
    """Register a device's public key for a member, signed by the node after the member
    proved who they are (password session). The key event goes into the Merkle log."""
    check_visible("label", label)
    public_key = read_public_key(public_key_b64)
    with node.ledger.reading() as conn:
        active = [d for d in repo.devices_of(conn, member.id) if d["revoked_ms"] is None]
    if len(active) >= MAX_DEVICE_KEYS:
        raise TOO_MANY_KEYS(count=len(active))
    event = node_key_event(node, "register", member.account, public_key)
    key_id = node.ledger.register_key(event, node.node_key.sign_bytes(canonical(event)))
    with node.engine.begin() as conn:
        repo.insert_device(
            conn,
            {"key_id": key_id, "member_id": member.id, "label": label[:80], "created_ms": now_ms()},
        )
    return key_id


def read_public_key(text: str) -> bytes:
    """A device's Ed25519 public key from its base64url text; refused (422) if it is none."""
    try:
        key = unb64(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise BAD_PUBLIC_KEY()
    return key


def revoke_device_key(node: Node, member: Member, key_id: str) -> None:
    with node.ledger.reading() as conn:
        row = ledger_repo.key_row(conn, key_id)
    if row is None or row["owner"] != member.account:
        raise UNKNOWN_DEVICE_KEY()
    if row["revoked_ms"] is not None:
        return  # revoking twice changes nothing
    event = node_key_event(node, "revoke", member.account, bytes(row["public_key"]))
    node.ledger.revoke_key(event, node.node_key.sign_bytes(canonical(event)))


def recover_keys(node: Node, member: Member, public_key_b64: str, label: str) -> str:
    """Operator-assisted recovery: a member who lost their device proves who they are in
    person; every key they had is revoked and the new device's key registered.

    A key that is already this member's live key (the same recovery sent twice) is kept
    and the others revoked: the recovery ends the same. Any other key registered before is
    refused before anything is revoked (else the member would be left with no key)."""
    new_key = signing_key_id(read_public_key(public_key_b64))
    with node.ledger.reading() as conn:
        existing = ledger_repo.key_row(conn, new_key)
        keys = repo.devices_of(conn, member.id)
    if existing is not None and (
        existing["owner"] != member.account or existing["revoked_ms"] is not None
    ):
        raise KEY_EXISTS()
    for key in keys:
        if key["revoked_ms"] is None and key["key_id"] != new_key:
            revoke_device_key(node, member, key["key_id"])
    if existing is not None:
        return new_key
    return add_device_key(node, member, public_key_b64, label or "recovered")


def device_keys(node: Node, member: Member) -> list[dict[str, Any]]:
    with node.ledger.reading() as conn:
        return [dict(row) for row in repo.devices_of(conn, member.id)]


# -- operators and memberships -------------------------------------------------------------


def create_operator(
    node: Node,
    *,
    display_name: str,
    email: str,
    password: str,
    role: str,
    office: str | None = None,
) -> Member:
    """An operator: exchange office (with its till and role key), treasurer or admin."""
    if (role == "office") != (office is not None):
        raise BAD_OFFICE()
    person = {"display_name": display_name, "role": role, "office": office}
    member_id = _record_person(node, person, email, password)
    if office is not None:
        with node.ledger.reading() as conn:
            opened = ledger_repo.accounts_by_code(conn, [office_cash(office)], node.ledger.chart)
        if not opened:  # a new office: its till and the role key that signs its receipts
            node.ledger.open_account(office_cash(office))
            add_operator(node, f"role:office:{office}")
    return get_member(node, member_id)


def operators(node: Node) -> list[Member]:
    with node.ledger.reading() as conn:
        return [Member.from_row(row) for row in repo.members_by_role(conn, OPERATOR_ROLES)]


def renew_membership(node: Node, member_id: str, until: date) -> Member:
    get_member(node, member_id)
    with node.engine.begin() as conn:
        repo.update_member(conn, member_id, membership_until=until)
    forget_principals(node)
    return get_member(node, member_id)


# -- frozen wallets ------------------------------------------------------------------------


@dataclass
class Freezes:
    """Wallets frozen and thawed in one transaction, `conn`, which the caller uses for its
    own writes too (a card payment's counters move with the freeze they cause)."""

    conn: Connection
    changed: bool = False

    def freeze(self, member_id: str, reason: str) -> None:
        """Freeze the wallet for `reason`, unless it is frozen already (that reason stands)."""
        repo.freeze(self.conn, member_id, reason)
        self.changed = True

    def thaw(self, member_id: str, reason: str) -> None:
        """Lift a freeze made for `reason`, never one made for another."""
        repo.thaw(self.conn, member_id, reason)
        self.changed = True

    def unfreeze(self, member_id: str) -> None:
        """Lift the freeze, whatever its reason (the treasurer's decision)."""
        repo.unfreeze(self.conn, member_id)
        self.changed = True


@contextmanager
def freezing(node: Node) -> Iterator[Freezes]:
    """A transaction that may freeze or thaw wallets: once it commits, the member's next
    request sees the change (their session or token is looked up again)."""
    with node.engine.begin() as conn:
        freezes = Freezes(conn)
        yield freezes
    if freezes.changed:
        forget_principals(node)
