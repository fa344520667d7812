"""The crowdfunding API's bodies, in and out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from web.schemas import Strict

ONE_LINE = r"^[^\x00-\x1f\x7f]*$"


class TierCreate(Strict):
    minimum: int = Field(gt=0, le=2**53, description="Smallest pledge for this reward, in cents.")
    title: str = Field(min_length=1, max_length=120, pattern=ONE_LINE)
    description: str = Field("", max_length=500)
    most_backers: int | None = Field(None, gt=0, le=100_000)


class CampaignCreate(Strict):
    title: str = Field(min_length=1, max_length=120, pattern=ONE_LINE)
    description: str = Field(min_length=1, max_length=5_000)
    goal: int = Field(le=2**53, description="In cents of the local unit.")
    days: int = Field(ge=-(2**31), le=2**31, description="1 to 60, counted from publication.")
    for_commune: bool = Field(False, description="The commune's account is the beneficiary.")
    tiers: list[TierCreate] = Field(default_factory=list, max_length=10)


class Publication(Strict):
    """The admin's decision to open a campaign, with the commune's matching if any."""

    match_per_unit_bp: int = Field(
        0, ge=-(2**31), le=2**31, description="Units added per unit pledged, in basis points."
    )
    match_cap: int = Field(0, ge=-(2**53), le=2**53, description="The matching's cap, in cents.")


class Tier(BaseModel):
    minimum: int
    title: str
    description: str
    most_backers: int | None


class Campaign(BaseModel):
    id: int
    owner: str
    beneficiary: str
    title: str
    description: str
    goal: int
    days: int
    state: str
    reason: str | None
    match_per_unit_bp: int
    match_cap: int
    opens_ms: int | None
    deadline_ms: int | None
    has_picture: bool
    escrow: str


class Progress(BaseModel):
    id: int
    state: str
    goal: int
    pledged: int
    backers: int
    days_left: int
    deadline_ms: int | None
    percent: int
    matching: int = Field(description="What the commune adds if the goal is reached.")
    matched: int = Field(description="What the matching fund has released to it.")
    mine: int | None = Field(None, description="The caller's own pledge, if signed in.")


class Rejection(Strict):
    reason: str = Field(min_length=1, max_length=500, pattern=ONE_LINE)


class PledgeChange(Strict):
    amount: int = Field(ge=0, le=2**53, description="The new, lower pledge (0 cancels it).")


class UpdateCreate(Strict):
    text: str = Field(min_length=1, max_length=5_000)


class Moved(BaseModel):
    transfer_ids: list[int]


class Posted(BaseModel):
    transfer_id: int
    postings: dict[str, int]


class TrailRow(BaseModel):
    transfer_id: int
    kind: str
    account: str | None = Field(description="Whose: None for another member's pledge.")
    amount: int
    ref: int | None
    rule: str | None
    created_ms: int
    receipt: bool = Field(
        False, description="The caller may open its receipt (a transfer that touched them)."
    )


class MatchingFund(BaseModel):
    model_config = ConfigDict(extra="ignore")
    escrow: str
    paid_in: int
    left: int
    unpromised: int = Field(description="What no open or funded campaign may still claim.")
    commune: str
