"""The node's settings: environment variables prefixed SOU_, then an optional TOML file.

The TOML file is `$SOU_CONFIG` if set, else `sou.toml` in the working directory if present.
Environment variables win over the file; see `sou.example.toml` for every setting.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _config_file() -> Path | None:
    path = Path(os.environ.get("SOU_CONFIG", "sou.toml"))
    return path if path.is_file() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOU_", extra="ignore")

    data_dir: Path = Field(Path("sou-data"), description="Keys and the SQLite database live here.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    origin: str = Field(
        "sou.localhost/val-de-sou",
        description="The log's name in signed checkpoints: host/path of the node.",
    )
    public_url: str = Field(
        "",
        description="The node's address as phones reach it (https://...): QR codes and printed "
        "notes point there. Empty: the address each request came to.",
    )
    currency: str = Field("SOU", description="Code of the local unit (e.g. SOU, EUSKO).")
    village: str = Field("Val-de-Sou", description="Name shown on pages.")
    timezone: str = Field("Europe/Paris", description="Time zone of dates shown on pages.")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(0, ge=0, description="Web server processes; 0: one per core.")
    access_log: bool = Field(
        False, description="Log every HTTP request (a proxy in front of the node often does)."
    )
    max_amount: int = Field(1_000_000, gt=0, description="Largest single transfer, in cents.")
    order_max_ttl: int = Field(86_400, gt=0, description="Longest validity of a signed order (s).")
    seal_interval: float = Field(0.2, gt=0, description="Seconds between sealer rounds.")
    # The most connections the node opens to the database, its web server processes
    # together: each keeps its share open (at least 8) and never opens more. On PostgreSQL,
    # every node's pool_size and the commands run beside them share max_connections.
    pool_size: int = Field(
        40, gt=0, description="Database connections of the node, all its processes together."
    )

    plugins_disabled: str = Field(
        "", description="Plugins not to load, by name, separated by commas (see /plugins)."
    )

    # Membership and conversions
    membership_required: bool = Field(
        False, description="Refuse top-ups and reconversions to members whose adhesion lapsed."
    )
    topup_min: int = Field(500, gt=0, description="Smallest card top-up, in cents.")
    topup_max: int = Field(50_000, gt=0, description="Largest card top-up, in cents.")
    reconversion_fee_bps: int = Field(
        300, ge=0, le=500, description="Reconversion fee in basis points (300 = 3 %)."
    )
    reconversion_cause_share: int = Field(
        0,
        ge=0,
        le=100,
        description="Percent of the fee given to the cause instead of the association.",
    )
    cause_name: str = Field("", description="The cause that receives part of the fee, if any.")
    residents_may_reconvert: bool = Field(False, description="Let residents reconvert too.")

    # Stripe (card top-ups). Empty keys: the node runs, card top-up pages say how to set them.
    stripe_secret_key: str = Field("", repr=False)
    stripe_webhook_secret: str = Field("", repr=False)
    stripe_publishable_key: str = ""
    stripe_api_base: str = Field("", description="Another Stripe-compatible server (tests).")
    stripe_checkout: bool = Field(
        True,
        description="Send people to Stripe's hosted Checkout page (no Stripe script on our "
        "pages). False: create a PaymentIntent and hand its client secret to the app.",
    )

    # People's sessions
    session_days: int = Field(14, gt=0, description="How long a login lasts.")
    # A phone in a pocket should not ask for the password every day: a week unused ends it.
    session_idle_minutes: int = Field(
        7 * 24 * 60, gt=0, description="A session unused this many minutes ends."
    )
    # Mail (password-reset links). No host: a forgotten password is reset at an office.
    smtp_host: str = Field("", description="Mail server sending password-reset links.")
    smtp_port: int = Field(587, gt=0, lt=65536)
    smtp_tls: str = Field(
        "starttls", pattern="^(starttls|ssl|none)$", description="starttls, ssl or none."
    )
    smtp_user: str = Field("", description="Login at the mail server; empty: none.")
    smtp_password: str = Field("", repr=False)
    smtp_password_file: str = Field("", description="A file holding the SMTP password.")
    smtp_from: str = Field("", description="The sender's address; empty: sou@<smtp_host>.")
    # How password guessing is slowed (`members.logins`, explained in the README).
    login_free_tries: int = Field(
        3,
        gt=0,
        description="Failed logins of one email from one address or device, "
        "after which each next try waits (2 s, 4 s, 8 s… up to login_max_delay).",
    )
    login_max_delay: int = Field(900, gt=0, description="The longest of those waits, in seconds.")
    login_window: int = Field(3600, gt=0, description="The window of the ceilings, in seconds.")
    login_email_ceiling: int = Field(
        20,
        gt=0,
        description="Failed logins of one email per window, from everywhere, "
        "after which only the member's known devices may try.",
    )
    login_address_ceiling: int = Field(
        100,
        gt=0,
        description="Failed logins from one address per window (every email), "
        "after which only known devices may try from there.",
    )
    join_address_ceiling: int = Field(
        30,
        gt=0,
        description="Sign-ups from one address per login window (each costs a password hash).",
    )
    trusted_proxies: str = Field(
        "",
        description="Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are "
        "believed: addresses or networks, comma-separated; empty: none.",
    )
    max_body_bytes: int = Field(
        1_048_576, gt=0, description="Largest request body, in bytes (413 above)."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        # The web server would take a misspelt address for a name that never matches.
        for item in filter(None, (part.strip() for part in value.split(","))):
            if item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"not an address or network: {item!r}") from None
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def disabled_plugins(self) -> set[str]:
        return {name.strip() for name in self.plugins_disabled.split(",") if name.strip()}

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sou.db'}"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)
