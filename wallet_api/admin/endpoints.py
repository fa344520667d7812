"""The admin API (JSON, under /api/v1): finding members, and the keys an operator is about
to recover. Renewals, new operators and the recovery itself are in `members.endpoints`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from members.access import Admin, KeyOfficer, Member, node_of
from members.endpoints import member_out
from members.schemas import MEMBER_ID, DeviceKeyOut
from members.service import MAX_SEARCH, PER_PAGE, device_keys, find_members
from wallet_api.admin import service
from wallet_api.admin.schemas import MemberListed, MembersPage

router = APIRouter(prefix="/api/v1", tags=["admin"])
Role = Literal["resident", "merchant", "office", "treasurer", "admin"]


def listed(member: Member) -> MemberListed:
    return MemberListed(
        **member_out(member).model_dump(),
        membership_current=member.membership_current(),
        frozen_reason=member.frozen_reason,
    )


@router.get("/admin/members", response_model=MembersPage)
def members(
    request: Request,
    admin: Admin,
    q: Annotated[str, Query(max_length=MAX_SEARCH)] = "",
    role: Role | None = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = PER_PAGE,
) -> MembersPage:
    """Members whose name, email or id contains `q` (any case), of one `role` if given,
    by name, a page at a time; with their membership and whether their wallet is frozen."""
    found = find_members(node_of(request), text=q, role=role, page=page, per_page=per_page)
    return MembersPage(
        items=[listed(m) for m in found.members],
        total=found.total,
        page=found.page,
        per_page=found.per_page,
        pages=found.pages,
    )


@router.get("/members/{member_id}/keys", response_model=list[DeviceKeyOut])
def member_keys(
    member_id: Annotated[str, Path(pattern=MEMBER_ID)], request: Request, officer: KeyOfficer
) -> list[DeviceKeyOut]:
    """A member's device keys, revoked ones too: what a recovery would revoke."""
    node = node_of(request)
    member = service.wallet_member(node, member_id)
    return [DeviceKeyOut(**row) for row in device_keys(node, member)]
