"""The tool library's settings, read from SOU_TOOLS_<NAME>."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ToolSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOU_TOOLS_", extra="ignore")

    keeper: str = Field("", description="Member id of the library's keeper: lost tools' deposits.")
    overdue_days: int = Field(30, gt=0, description="Days after which a loan is overdue.")
    max_deposit: int = Field(10_000, gt=0, description="Largest deposit asked, in cents.")
