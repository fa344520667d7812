"""The rules of the association's administration: finding members, renewing a yearly
membership, making operators, and recovering the keys of a member who lost their device.

Renewals, new operators and recoveries are those of the API (`wallet_api.service`): the
pages only read forms into them, refusing what a form can get wrong in plain words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ledger.canonical import unb64
from wallet_api import repository as members_repo
from wallet_api import service as wallet
from wallet_api.admin import repository as repo
from wallet_api.auth import Member
from wallet_api.models import ROLES
from wallet_api.office.service import find_wallet_member
from wallet_api.schemas import DeviceKeyCreate, OperatorCreate
from web.refusals import Refusal

if TYPE_CHECKING:
    from runtime.node import Node

PER_PAGE = 20
MAX_SEARCH = 120
OPERATOR_ROLES = ("office", "treasurer", "admin")
# Days as people type them when their browser has no date picker: 31/12/2026.
DAY_TYPED = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
# A form field of a new operator that the schema refused -> what to tell the admin.
OPERATOR_FIELDS = {
    "display_name": Refusal(422, "bad_name", "Give the operator's name (120 characters at most)."),
    "email": Refusal(422, "bad_email", "This email address does not look right."),
    "password": Refusal(422, "long_password", "The password is too long (200 characters at most)."),
    "role": Refusal(
        422, "bad_role", "Choose the role: exchange-office operator, treasurer or admin."
    ),
    "office": Refusal(
        422,
        "bad_office_id",
        "An office's id is 1 to 48 lowercase letters, digits, - or _, "
        "starting with a letter or a digit (like mairie).",
    ),
}


# -- finding members -----------------------------------------------------------------------


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
        raise Refusal(422, "bad_search", "Search with at most 120 characters, on one line.")
    if role is not None and role not in ROLES:
        raise Refusal(422, "bad_role_filter", "There is no such role.")
    page, per_page = max(page, 1), min(max(per_page, 1), 100)
    with node.ledger.reading() as conn:
        rows, total = repo.search_members(
            conn, text=text, role=role, offset=(page - 1) * per_page, limit=per_page
        )
    return MembersFound([Member.from_row(row) for row in rows], total, page, per_page)


def membership_state(member: Member, today: date | None = None) -> str:
    """ "current" (paid up to a day not past), "lapsed", or "none" (never paid)."""
    if member.membership_until is None:
        return "none"
    return "current" if member.membership_current(today) else "lapsed"


# -- memberships ---------------------------------------------------------------------------


def suggested_renewal(member: Member, today: date | None = None) -> date:
    """A year after the membership ends, or after today if it has lapsed (or never was)."""
    today = today or date.today()
    start = max(today, member.membership_until or today)
    try:
        return start.replace(year=start.year + 1)
    except ValueError:  # 29 February, and next year has none
        return start.replace(year=start.year + 1, day=28)


def day_typed(text: str) -> date:
    """A day from a form: 2026-12-31 (a date picker's) or 31/12/2026 (typed by hand)."""
    text = text.strip()
    found = DAY_TYPED.match(text)
    try:
        if found:
            return date(int(found[3]), int(found[2]), int(found[1]))
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
    except ValueError:
        pass  # 31/02/2026: a day that does not exist
    raise Refusal(422, "bad_day", "Give the day the membership is paid up to, like 31/12/2026.")


def renew_membership(node: Node, member_id: str, until: str) -> Member:
    """Record a member's yearly membership as paid up to the day typed (as the API does)."""
    return wallet.renew_membership(node, member_id, day_typed(until))


# -- operators -----------------------------------------------------------------------------


def operators(node: Node) -> list[Member]:
    with node.ledger.reading() as conn:
        return [Member.from_row(row) for row in members_repo.members_by_role(conn, OPERATOR_ROLES)]


def create_operator(
    node: Node, *, display_name: str, email: str, password: str, role: str, office: str
) -> Member:
    """An operator made from the page's form, checked by the API's schema. The office is
    read only for an exchange-office operator: a form sent with another role and an office
    still typed in means no office."""
    try:
        body = OperatorCreate(
            display_name=display_name.strip(),
            email=email.strip(),
            password=password,
            role=role,  # the schema checks it
            office=(office.strip() or None) if role == "office" else None,
        )
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        raise OPERATOR_FIELDS.get(field, OPERATOR_FIELDS["role"]) from None
    return wallet.create_operator(node, **body.model_dump())


# -- recovering a member's keys ------------------------------------------------------------


def wallet_member(node: Node, reference: str) -> Member:
    """The member whose keys are recovered, by wallet id or email: a resident or merchant."""
    try:
        return find_wallet_member(node, reference)
    except Refusal as refusal:
        if refusal.code != "not_a_wallet":
            raise
    raise Refusal(
        404, "unknown_member", "This is an operator: only a member's device keys are recovered."
    )


def device_keys(node: Node, member: Member) -> list[dict[str, Any]]:
    return wallet.device_keys(node, member)


def recover_keys(
    node: Node, member: Member, public_key: str, label: str, *, identity_checked: bool
) -> str:
    """Operator-assisted recovery once the operator has seen the member's identity document:
    every key of the member revoked, the new device's key registered (as the API does)."""
    if not identity_checked:
        raise Refusal(
            422,
            "identity_unchecked",
            "Check the member's identity document in person, then tick the box.",
        )
    body = _new_device(public_key, label)
    return wallet.recover_keys(node, member, body.public_key, body.label)


def _new_device(public_key: str, label: str) -> DeviceKeyCreate:
    """The new device's key and name as the API reads them, refused in plain words."""
    try:
        body = DeviceKeyCreate(public_key=public_key.strip(), label=label.strip())
        if len(unb64(body.public_key)) == 32:
            return body
    except ValidationError as exc:
        if exc.errors()[0]["loc"] == ("label",):
            raise Refusal(
                422, "bad_label", "Name the device in at most 80 characters, on one line."
            ) from None
    except ValueError:
        pass  # not base64url
    raise Refusal(422, "bad_public_key", "A device key is 32 bytes of Ed25519, in base64url.")


def holds_only(node: Node, member: Member, key: str) -> bool:
    """Is `key` the member's one live device key (what a recovery leaves)?"""
    live = [k["key_id"] for k in wallet.device_keys(node, member) if k["revoked_ms"] is None]
    return live == [key]
