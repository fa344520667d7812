"""What the admin pages add to the members' rules: the state of a membership and the
renewal to suggest, a new operator read from a form, and the recovery of a member's keys
once their identity has been checked in person.

Finding members, renewals, new operators and recoveries are those of the API
(`members.service`): the pages only read forms into them, refusing what a form can get
wrong in plain words.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ledger.canonical import unb64
from members import service as members
from members.access import Member
from members.errors import (
    BAD_EMAIL,
    BAD_NAME,
    BAD_PUBLIC_KEY,
    BAD_ROLE,
    LONG_PASSWORD,
    UNKNOWN_MEMBER,
)
from members.schemas import DeviceKeyCreate, OperatorCreate
from wallet_api.admin.errors import (
    BAD_DAY,
    BAD_LABEL,
    BAD_OFFICE_ID,
    IDENTITY_UNCHECKED,
)
from wallet_api.office.service import find_wallet_member
from web.refusals import Refusal

if TYPE_CHECKING:
    from runtime.node import Node

# Days as people type them when their browser has no date picker: 31/12/2026.
DAY_TYPED = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
# A form field of a new operator that the schema refused -> what to tell the admin.
OPERATOR_FIELDS = {
    "display_name": BAD_NAME,
    "email": BAD_EMAIL,
    "password": LONG_PASSWORD,
    "role": BAD_ROLE,
    "office": BAD_OFFICE_ID,
}


# -- memberships ---------------------------------------------------------------------------


def membership_state(member: Member, today: date | None = None) -> str:
    """ "current" (paid up to a day not past), "lapsed", or "none" (never paid)."""
    if member.membership_until is None:
        return "none"
    return "current" if member.membership_current(today) else "lapsed"


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
    raise BAD_DAY()


def renew_membership(node: Node, member_id: str, until: str) -> Member:
    """Record a member's yearly membership as paid up to the day typed (as the API does)."""
    return members.renew_membership(node, member_id, day_typed(until))


# -- operators -----------------------------------------------------------------------------


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
        raise OPERATOR_FIELDS.get(field, BAD_ROLE)() from None
    return members.create_operator(node, **body.model_dump())


# -- recovering a member's keys ------------------------------------------------------------


def wallet_member(node: Node, reference: str) -> Member:
    """The member whose keys are recovered, by wallet id or email: a resident or merchant."""
    try:
        return find_wallet_member(node, reference)
    except Refusal as refusal:
        if refusal.code != "not_a_wallet":
            raise
    raise UNKNOWN_MEMBER()


def device_keys(node: Node, member: Member) -> list[dict[str, Any]]:
    return members.device_keys(node, member)


def recover_keys(
    node: Node, member: Member, public_key: str, label: str, *, identity_checked: bool
) -> str:
    """Operator-assisted recovery once the operator has seen the member's identity document:
    every key of the member revoked, the new device's key registered (as the API does)."""
    if not identity_checked:
        raise IDENTITY_UNCHECKED()
    body = _new_device(public_key, label)
    return members.recover_keys(node, member, body.public_key, body.label)


def _new_device(public_key: str, label: str) -> DeviceKeyCreate:
    """The new device's key and name as the API reads them, refused in plain words."""
    try:
        body = DeviceKeyCreate(public_key=public_key.strip(), label=label.strip())
        if len(unb64(body.public_key)) == 32:
            return body
    except ValidationError as exc:
        if exc.errors()[0]["loc"] == ("label",):
            raise BAD_LABEL() from None
    except ValueError:
        pass  # not base64url
    raise BAD_PUBLIC_KEY()


def holds_only(node: Node, member: Member, key: str) -> bool:
    """Is `key` the member's one live device key (what a recovery leaves)?"""
    live = [k["key_id"] for k in members.device_keys(node, member) if k["revoked_ms"] is None]
    return live == [key]
