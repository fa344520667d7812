"""The crowdfunding pages: the campaigns, one campaign (progress, pledge, updates, trail),
proposing one, the admin's moderation queue and the commune's matching fund. Everything
they do goes through the API (static/crowdfunding.js), pledges signed on the device."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from members.access import MaybeMember, node_of, signed_in, wallet_holder
from plugins.crowdfunding import service
from web.pages import PathId, number_format, page, when

router = APIRouter(include_in_schema=False)
OPERATORS = ("treasurer", "admin")


@router.get("/campaigns")
def campaigns(request: Request, p: MaybeMember) -> Response:
    node = node_of(request)
    found = service.listed(node)
    shown = [{**c, "progress": service.progress(node, c)} for c in found]
    return page(request, "crowdfunding/list.html", campaigns=shown, states=service.STATES)


@router.get("/campaigns/new")
def new_campaign(request: Request, p: MaybeMember) -> Response:
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    node = node_of(request)
    return page(
        request,
        "crowdfunding/new.html",
        commune=bool(service.settings(node).commune),
        max_goal=service.settings(node).max_goal,
        number=number_format(request),
    )


@router.get("/campaigns/moderation")
def moderation(request: Request, p: MaybeMember) -> Response:
    member = signed_in(request, p, "admin")
    if isinstance(member, Response):
        return member
    node = node_of(request)
    proposed = service.listed(node, ("proposed",))
    people = {c["owner"] for c in proposed} | {c["beneficiary"] for c in proposed}
    return page(
        request,
        "crowdfunding/moderation.html",
        proposed=proposed,
        names={who: service.display_name(node, who) for who in people},
        free=service.matching_fund(node)["unpromised"],
        number=number_format(request),
        max_amount=node.settings.max_amount,
    )


@router.get("/campaigns/matching")
def matching(request: Request, p: MaybeMember) -> Response:
    member = signed_in(request, p, "resident", "merchant", *OPERATORS)
    if isinstance(member, Response):
        return member
    fund = service.matching_fund(node_of(request))
    return page(
        request,
        "crowdfunding/matching.html",
        fund=fund,
        is_commune=bool(fund["commune"]) and member.id == fund["commune"],
        number=number_format(request),
        max_amount=node_of(request).settings.max_amount,
        when=lambda ms: when(request, ms),
    )


@router.get("/campaigns/{campaign_id}")
def campaign(campaign_id: PathId, request: Request, p: MaybeMember) -> Response:
    node = node_of(request)
    member = p.member if p else None
    found = service.visible(node, member, campaign_id)
    mine = service.pledged_by(node, member, campaign_id) if member else 0
    return page(
        request,
        "crowdfunding/campaign.html",
        campaign=found,
        progress=service.progress(node, found) if found["state"] in service.PUBLISHED else None,
        details=service.details(node, campaign_id),
        trail=service.trail(node, found, member),
        states=service.STATES,
        escrow=service.escrow(campaign_id),
        beneficiary_name=service.display_name(node, found["beneficiary"]),
        mine=mine,
        owner=member is not None and member.id == found["owner"],
        holder=member is not None and member.has_wallet,
        number=number_format(request),
        max_amount=node_of(request).settings.max_amount,
        when=lambda ms: when(request, ms),
    )
