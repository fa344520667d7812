"""The tool library's page: a member's loans."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from members.access import MaybeMember, node_of, wallet_holder
from sou_tools import service
from web.pages import page

router = APIRouter(include_in_schema=False)


@router.get("/tools")
def loans(request: Request, p: MaybeMember) -> Response:
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    found = service.loans_of(node_of(request), member)
    return page(request, "tools/loans.html", loans=found, states=service.STATES)
