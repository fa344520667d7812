"""The crowdfunding API, under /api/v1/campaigns."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from ledger.signing import SignedOrder
from members.access import Admin, AnyMember, MaybeMember, WalletHolder, node_of
from plugins.crowdfunding import errors, service
from plugins.crowdfunding.schemas import (
    Campaign,
    CampaignCreate,
    MatchingFund,
    Moved,
    PledgeChange,
    Posted,
    Progress,
    Publication,
    Rejection,
    TrailRow,
    UpdateCreate,
)
from web.schemas import SignedOrderIn

router = APIRouter(prefix="/api/v1/campaigns", tags=["crowdfunding"])
CampaignId = Annotated[int, Path(ge=1, le=2**53)]


def _out(row: dict[str, Any]) -> Campaign:
    return Campaign(
        **{k: row[k] for k in Campaign.model_fields if k != "escrow"},
        escrow=service.escrow(row["id"]),
    )


def _envelope(body: SignedOrderIn) -> SignedOrder:
    try:
        return SignedOrder.from_json(body.model_dump())
    except ValueError:
        raise errors.BAD_SIGNATURE_ENCODING() from None


@router.get("", response_model=list[Campaign])
def campaigns(request: Request) -> list[Campaign]:
    """Published campaigns, newest first."""
    return [_out(row) for row in service.listed(node_of(request))]


@router.post("", status_code=201, response_model=Campaign)
def propose(body: CampaignCreate, request: Request, member: WalletHolder) -> Campaign:
    """Propose a campaign: it waits for an admin to publish it."""
    fields = body.model_dump()
    return _out(service.propose(node_of(request), member, fields))


@router.get("/proposed", response_model=list[Campaign])
def proposed(request: Request, _: Admin) -> list[Campaign]:
    """The moderation queue."""
    return [_out(row) for row in service.listed(node_of(request), ("proposed",))]


@router.get("/matching", response_model=MatchingFund)
def matching(request: Request, _: AnyMember) -> MatchingFund:
    """The commune's matching fund: what was paid in, what is left."""
    return MatchingFund(**service.matching_fund(node_of(request)))


@router.post("/matching/payments", status_code=201, response_model=Posted)
def pay_matching(
    body: SignedOrderIn, request: Request, response: Response, member: WalletHolder
) -> Posted:
    """The commune's account pays into the matching fund (an escrow payment it signs)."""
    posted = service.pay_matching(node_of(request), member, _envelope(body))
    if posted.replayed:
        response.status_code = 200
    return Posted(transfer_id=posted.transfer_id, postings=posted.postings)


@router.get("/{campaign_id}", response_model=Campaign)
def campaign(campaign_id: CampaignId, request: Request, p: MaybeMember) -> Campaign:
    member = p.member if p else None
    return _out(service.visible(node_of(request), member, campaign_id))


@router.get("/{campaign_id}/progress", response_model=Progress)
def progress(campaign_id: CampaignId, request: Request, p: MaybeMember) -> Progress:
    """Pledged, backers and days left: the campaign page polls it."""
    node = node_of(request)
    found = service.published(node, campaign_id)
    mine = service.pledged_by(node, p.member, campaign_id) if p else None
    return Progress(**service.progress(node, found), mine=mine)


@router.get("/{campaign_id}/trail", response_model=list[TrailRow])
def trail(campaign_id: CampaignId, request: Request, p: MaybeMember) -> list[TrailRow]:
    """Every pledge, refund and release, with its transfer id in the ledger (a backer's
    account only to that backer, the treasurer and the admin)."""
    node = node_of(request)
    found = service.published(node, campaign_id)
    return [TrailRow(**row) for row in service.trail(node, found, p.member if p else None)]


@router.post("/{campaign_id}/publish", response_model=Campaign)
def publish(
    campaign_id: CampaignId, request: Request, _: Admin, body: Publication | None = None
) -> Campaign:
    """Open it to pledges: the deadline counts from now. The commune's matching, if any, is
    decided here, within what the matching fund has not promised to other campaigns."""
    rate, cap = (body.match_per_unit_bp, body.match_cap) if body else (0, 0)
    return _out(service.publish(node_of(request), campaign_id, rate_bp=rate, cap=cap))


@router.post("/{campaign_id}/reject", response_model=Campaign)
def reject(campaign_id: CampaignId, body: Rejection, request: Request, _: Admin) -> Campaign:
    return _out(service.reject(node_of(request), campaign_id, body.reason))


@router.put("/{campaign_id}/picture", status_code=204)
async def set_picture(campaign_id: CampaignId, request: Request, member: WalletHolder) -> Response:
    """The picture, as the request's body (JPEG, PNG or WebP): re-encoded, its metadata gone."""
    node = node_of(request)
    most = service.settings(node).max_picture_bytes
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > most:
            raise errors.BAD_PICTURE(most=most)
    service.set_picture(node, member, campaign_id, bytes(data))
    return Response(status_code=204)


@router.get("/{campaign_id}/picture", response_class=Response)
def picture(campaign_id: CampaignId, request: Request, p: MaybeMember) -> Response:
    member = p.member if p else None
    data = service.picture(node_of(request), member, campaign_id)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=300"})


@router.post("/{campaign_id}/updates", status_code=201)
def post_update(
    campaign_id: CampaignId, body: UpdateCreate, request: Request, member: WalletHolder
) -> dict[str, int]:
    """News of the campaign, by the one who proposed it."""
    return {"id": service.post_update(node_of(request), member, campaign_id, body.text)}


@router.post("/{campaign_id}/pledges", status_code=201, response_model=Posted)
def pledge(
    campaign_id: CampaignId,
    body: SignedOrderIn,
    request: Request,
    response: Response,
    member: WalletHolder,
) -> Posted:
    """Pledge, or pledge more: an escrow payment to the campaign, signed by your device key."""
    posted = service.pledge(node_of(request), member, campaign_id, _envelope(body))
    if posted.replayed:
        response.status_code = 200
    return Posted(transfer_id=posted.transfer_id, postings=posted.postings)


@router.post("/{campaign_id}/pledge/lower", response_model=Moved)
def lower(
    campaign_id: CampaignId, body: PledgeChange, request: Request, member: WalletHolder
) -> Moved:
    """Lower your pledge (to 0 to cancel it) before the deadline: the rest comes back."""
    done = service.lower(node_of(request), member, campaign_id, body.amount)
    return Moved(transfer_ids=[p.transfer_id for p in done])
