"""The exports' settings, read from SOU_EXPORTS_<NAME>."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ExportSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOU_EXPORTS_", extra="ignore")

    siren: str = Field(
        "",
        pattern=r"^([0-9]{9})?$",
        description="The association's SIREN (9 digits): the FEC's file is named after it.",
    )
