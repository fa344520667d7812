"""The counter's settings, read from SOU_POS_<NAME> (the `pos` plugin's `sou_settings`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

COUNTER_SESSION_DAYS = 90


class CounterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOU_POS_", extra="ignore")

    counter_session_days: int = Field(
        COUNTER_SESSION_DAYS,
        gt=0,
        le=3650,
        description="How long a device paired with a shop's counter stays signed in, in days.",
    )
