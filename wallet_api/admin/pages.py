"""The admin pages: members (search, membership renewal), merchants (the association's
approval of their shops), operators (making one), and the operator-assisted recovery of a
member's device keys, which exchange-office operators use too (as the API lets them).
Plain forms, no script needed.

Each form posts to its page's own address: a refusal shows the page again with what was
typed and the reason, a success redirects to the page naming what was done (so a reload
does not send the form again).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from members import service as members_service
from members.access import MaybeMember, Member, node_of, signed_in
from members.errors import BAD_FORM
from members.models import SHOP_STATES
from members.shops import Shop
from wallet_api.admin import service
from web.pages import PathName, Text, day, done, page, say, when
from web.refusals import Refusal

router = APIRouter(include_in_schema=False)

# How people read a role and the state of a membership (msgids, French in admin.po).
ROLE_LABELS = {
    "resident": "Resident",
    "merchant": "Merchant",
    "office": "Exchange-office operator",
    "treasurer": "Treasurer",
    "admin": "Admin",
}
MEMBERSHIP_LABELS = {
    "current": "Paid up to {day}",
    "lapsed": "Lapsed on {day}",
    "none": "Never paid",
}
SHOP_STATE_LABELS = {
    "pending": "Waiting for approval",
    "approved": "Approved",
    "suspended": "Suspended",
}
# What the merchants page says of a decision just made (msgids).
SHOP_DECIDED_MESSAGES = {
    "approved": "{name} is approved: the shop is listed, found by its name and paid at the "
    "counter.",
    "suspended": "{name} is suspended: the shop is no longer listed nor paid at the counter.",
}
KEY_OFFICERS = ("office", "admin")  # who may recover keys: the API's KeyOfficer
PageNumber = Annotated[int, Query(alias="page", ge=1, le=1_000_000)]


def _membership(request: Request, member: Member) -> str:
    state = service.membership_state(member)
    until = member.membership_until
    return say(request, MEMBERSHIP_LABELS[state], day=day(request, until) if until else "")


# -- members -------------------------------------------------------------------------------


@router.get("/admin/members")
def members(
    request: Request, p: MaybeMember, q: str = "", role: str = "", number: PageNumber = 1
) -> Response:
    """Members found by name, email or id, of one role if chosen, a page at a time."""
    admin = signed_in(request, p, "admin")
    if isinstance(admin, Response):
        return admin
    found = members_service.find_members(node_of(request), text=q, role=role or None, page=number)
    return page(
        request,
        "admin/members.html",
        found=found,
        q=q.strip(),
        role=role,
        role_labels=ROLE_LABELS,
        membership=lambda m: _membership(request, m),
        states={m.id: service.membership_state(m) for m in found.members},
    )


@router.get("/admin/members/{member_id}")
def member(
    request: Request, p: MaybeMember, member_id: PathName, renewed: bool = False
) -> Response:
    """One member: who they are, their membership and the form to renew it."""
    admin = signed_in(request, p, "admin")
    if isinstance(admin, Response):
        return admin
    found = members_service.get_member(node_of(request), member_id)
    flash = None
    if renewed and found.membership_until is not None:
        flash = say(
            request,
            "The membership of {name} is paid up to {day}.",
            name=found.display_name,
            day=day(request, found.membership_until),
        )
    return _member_page(request, found, flash=flash)


def _member_page(
    request: Request, found: Member, *, status: int = 200, flash: str | None = None, until: str = ""
) -> Response:
    shop = members_service.shop_of(node_of(request), found.id) if found.role == "merchant" else None
    return page(
        request,
        "admin/member.html",
        status=status,
        member=found,
        shop=shop,
        shop_labels=SHOP_STATE_LABELS,
        role_labels=ROLE_LABELS,
        membership=_membership(request, found),
        state=service.membership_state(found),
        until=until or service.suggested_renewal(found).isoformat(),
        flash=flash,
    )


@router.post("/admin/members/{member_id}")
def renew(request: Request, p: MaybeMember, member_id: PathName, until: Text = "") -> Response:
    """The member's yearly membership, paid up to the day given."""
    admin = signed_in(request, p, "admin")
    if isinstance(admin, Response):
        return admin
    node = node_of(request)
    found = members_service.get_member(node, member_id)
    try:
        service.renew_membership(node, found.id, until)
    except Refusal as refusal:
        return _member_page(
            request, found, status=refusal.status, flash=refusal.text(request), until=until
        )
    return done(f"/admin/members/{found.id}", renewed=1)


# -- merchants and their shops -------------------------------------------------------------


@router.get("/admin/merchants")
def merchants(
    request: Request, p: MaybeMember, approved: str = "", suspended: str = ""
) -> Response:
    """The merchants waiting for the association's approval, then those approved and those
    suspended, each with the form to approve or suspend their shop."""
    admin = signed_in(request, p, "admin")
    if isinstance(admin, Response):
        return admin
    flash = None
    for status, member_id in (("approved", approved), ("suspended", suspended)):
        shop = members_service.shop_of(node_of(request), member_id) if member_id else None
        if shop is not None and shop.status == status:
            flash = say(request, SHOP_DECIDED_MESSAGES[status], name=shop.trade_name)
    return _merchants_page(request, flash=flash)


def _merchants_page(request: Request, *, status: int = 200, flash: str | None = None) -> Response:
    node = node_of(request)
    shops: dict[str, list[Shop]] = {s: members_service.shops_in(node, s) for s in SHOP_STATES}
    return page(
        request,
        "admin/merchants.html",
        status=status,
        shops=shops,
        shop_labels=SHOP_STATE_LABELS,
        flash=flash,
    )


@router.post("/admin/merchants/{member_id}")
def decide_shop(
    request: Request, p: MaybeMember, member_id: PathName, decision: Text = ""
) -> Response:
    """Approve a merchant's shop (`decision` "approve") against the association's charter,
    or suspend it ("suspend")."""
    admin = signed_in(request, p, "admin")
    if isinstance(admin, Response):
        return admin
    node = node_of(request)
    try:
        if decision == "approve":
            shop = members_service.approve_shop(node, admin, member_id)
            return done("/admin/merchants", approved=shop.member_id)
        if decision == "suspend":
            shop = members_service.suspend_shop(node, admin, member_id)
            return done("/admin/merchants", suspended=shop.member_id)
        raise BAD_FORM()
    except Refusal as refusal:
        return _merchants_page(request, status=refusal.status, flash=refusal.text(request))


# -- operators -----------------------------------------------------------------------------


@router.get("/admin/operators")
def operators(request: Request, p: MaybeMember, created: str = "") -> Response:
    """The operators, and the form to make one."""
    admin = signed_in(request, p, "admin")
    if isinstance(admin, Response):
        return admin
    made = next((o for o in members_service.operators(node_of(request)) if o.id == created), None)
    flash = None
    if made is not None:
        flash = say(
            request,
            "{name} can now log in with {email}, as {role}.",
            name=made.display_name,
            email=made.email,
            role=say(request, ROLE_LABELS[made.role]).lower(),
        )
    return _operators_page(request, flash=flash)


def _operators_page(
    request: Request,
    *,
    status: int = 200,
    flash: str | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    return page(
        request,
        "admin/operators.html",
        status=status,
        operators=members_service.operators(node_of(request)),
        role_labels=ROLE_LABELS,
        typed=typed or {"role": "office"},
        flash=flash,
    )


@router.post("/admin/operators")
def create_operator(
    request: Request,
    p: MaybeMember,
    display_name: Text = "",
    email: Text = "",
    password: Text = "",
    role: Text = "",
    office: Text = "",
) -> Response:
    """A new exchange-office operator (with their office), treasurer or admin. A refusal
    shows the form again with what was typed (never the password)."""
    admin = signed_in(request, p, "admin")
    if isinstance(admin, Response):
        return admin
    try:
        made = service.create_operator(
            node_of(request),
            display_name=display_name,
            email=email,
            password=password,
            role=role,
            office=office,
        )
    except Refusal as refusal:
        typed = {"display_name": display_name, "email": email, "role": role, "office": office}
        return _operators_page(
            request, status=refusal.status, flash=refusal.text(request), typed=typed
        )
    return done("/admin/operators", created=made.id)


# -- recovering a member's keys ------------------------------------------------------------


@router.get("/admin/recovery")
def recovery(request: Request, p: MaybeMember, member: str = "", recovered: str = "") -> Response:
    """Find the member (by wallet id or email); their keys; the form to recover them."""
    officer = signed_in(request, p, *KEY_OFFICERS)
    if isinstance(officer, Response):
        return officer
    if not member:
        return _recovery_page(request, None)
    try:
        found = service.wallet_member(node_of(request), member)
    except Refusal as refusal:
        return _recovery_page(
            request, None, status=refusal.status, flash=refusal.text(request), asked=member
        )
    flash = None
    if recovered and service.holds_only(node_of(request), found, recovered):
        flash = say(
            request,
            "The keys of {name} are recovered: the old ones are revoked and the new "
            "device's key {key} is registered.",
            name=found.display_name,
            key=recovered,
        )
    return _recovery_page(request, found, flash=flash)


def _recovery_page(
    request: Request,
    found: Member | None,
    *,
    status: int = 200,
    flash: str | None = None,
    asked: str = "",
    typed: dict[str, str] | None = None,
) -> Response:
    keys = service.device_keys(node_of(request), found) if found is not None else []
    return page(
        request,
        "admin/recovery.html",
        status=status,
        member=found,
        asked=asked,
        keys=keys,
        when=lambda ms: when(request, ms),
        typed=typed or {},
        flash=flash,
    )


@router.post("/admin/recovery")
def recover(
    request: Request,
    p: MaybeMember,
    member: Text = "",
    public_key: Text = "",
    label: Text = "",
    identity_checked: Text = "",
) -> Response:
    """Revoke every key of the member and register their new device's key, once the
    operator has checked who they are."""
    officer = signed_in(request, p, *KEY_OFFICERS)
    if isinstance(officer, Response):
        return officer
    node, found = node_of(request), None
    try:
        found = service.wallet_member(node, member)
        key = service.recover_keys(
            node, found, public_key, label, identity_checked=identity_checked == "yes"
        )
    except Refusal as refusal:
        typed = {"public_key": public_key, "label": label}
        return _recovery_page(
            request,
            found,
            status=refusal.status,
            flash=refusal.text(request),
            asked=member,
            typed=typed,
        )
    return done("/admin/recovery", member=found.id, recovered=key)
