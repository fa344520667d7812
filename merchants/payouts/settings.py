"""The payouts plugin's settings, read from SOU_PAYOUTS_<NAME>: the association's own bank
account, the debtor of every transfer file."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PayoutsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOU_PAYOUTS_", extra="ignore")

    debtor_name: str = Field("", description="The association's name, as its bank knows it.")
    debtor_iban: str = Field("", description="The IBAN the euros are sent from.")
    debtor_bic: str = Field("", description="The BIC of that account's bank.")
