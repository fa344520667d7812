"""The crowdfunding plugin's settings, read from SOU_CROWDFUNDING_<NAME>."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CrowdfundingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOU_CROWDFUNDING_", extra="ignore")

    commune: str = Field(
        "",
        description="Member id of the commune's account: a beneficiary, the matching's payer.",
    )
    max_goal: int = Field(100_000_000, gt=0, description="Largest goal of a campaign, in cents.")
    max_picture_bytes: int = Field(2_000_000, gt=0, description="Largest picture uploaded.")
