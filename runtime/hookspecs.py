# mypy: disable-error-code="empty-body"
# (a hook specification has no body: pluggy calls the plugins' implementations only)
"""The hooks through which everything a feature adds to the node is plugged in.

A plugin is a module (or object) named by an entry point of the group `sou.plugins`; the
entry point's name is the plugin's name (lowercase letters, digits, `_`). It implements any
of the hooks below, each marked `@hookimpl`. The node's own features (wallet, cards, office,
admin, merchants) are plugins like any other. docs/plugins.md shows a whole one.

What a plugin may touch: its own tables (made by its own migrations), its own escrow
accounts `escrow:<name>:...`, and money only through the ledger's operations, signed with its
own key `plugin:<name>` (which the node makes and registers for it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter
    from pydantic_settings import BaseSettings
    from sqlalchemy import Connection

    from runtime.jobs import Job
    from runtime.node import Node
    from runtime.reactions import Reaction
    from runtime.settings import Settings

PROJECT = "sou"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class MenuEntry:
    """A link in the pages' top menu, for the members whose role is in `roles`."""

    path: str
    label: str  # English, translated through the catalogues (the plugin's own included)
    roles: frozenset[str]  # "resident", "merchant", "office", "treasurer", "admin", "visitor"
    order: int = 100  # smaller first; the node's own entries use 10 to 90
    # A finer rule than the role, on the member and the node's settings.
    shown: Callable[[Any, Settings], bool] | None = None
    # Shown to a device paired with a shop's counter too (which sees only such entries).
    counter: bool = False


@dataclass(frozen=True)
class Assets:
    """Directories of the plugin's package. Templates are found by name after the node's
    own (name them `<plugin>/...html` to keep clear of others); static files are served at
    `/static/<plugin>/`; the catalogue is `<locale>/<lang>/LC_MESSAGES/*.po`."""

    templates: Traversable | None = None
    static: Traversable | None = None
    locale: Traversable | None = None


@dataclass(frozen=True)
class BankConfirmation:
    """A plugin's record that a transfer's euros are on the bank's (or Stripe's) statement:
    a line of an imported statement matched to it (`how` "statement"), or the treasurer's
    word, with the reference read on the statement (`how` "hand")."""

    transfer_id: int
    how: str  # "statement" or "hand"
    bank_ref: str | None  # the line's own reference (the bank may give none), or the typed one
    at_ms: int  # when it was matched or recorded
    by: str | None = None  # the treasurer's member id; None for an automatic match
    line_id: int | None = None  # the statement's line
    booked: str | None = None  # the day the bank booked the line (ISO date)
    account: str | None = None  # the statement's account: reserve:digital, clearing:stripe...


class Hooks:
    """The hook specifications. Each is called once per plugin that implements it."""

    @hookspec
    def sou_settings(self) -> type[BaseSettings] | None:
        """Settings of the plugin, with their defaults: a pydantic-settings class, read
        from environment variables `SOU_<NAME>_<FIELD>` (set `env_prefix` so). The node
        makes one at start; `Node.plugin_settings(name)` gives it back."""

    @hookspec
    def sou_migrations(self) -> Traversable | None:
        """The directory of the plugin's Alembic revisions: a history of its own (the first
        revision has `down_revision = None`), recorded in the table
        `alembic_version_<name>`. `sou migrate`, `sou init` and `sou serve` run it after the
        node's own. Its tables go on `ledger.models.metadata`."""

    @hookspec
    def sou_escrows(self) -> Sequence[str]:
        """For a plugin that holds members' units: the escrow accounts to open from the
        start, all its own (`escrow:<name>:<purpose>`; may be none). Implementing this hook
        gives the plugin its key `plugin:<name>`, made and registered by the node, with
        which it signs the releases and refunds of its escrows. Escrows for one purpose (a
        contract, a campaign) may also be opened later with `node.ledger.open_account`."""

    @hookspec
    def sou_escrow_holdings(self, conn: Connection) -> Mapping[str, int]:
        """For a plugin that holds members' units: what each of its escrow accounts holds
        by the plugin's own records (what its operations took in, less what they released
        and refunded), read on `conn`. `sou audit` compares each with the ledger's balance
        and names any account where they differ. Accounts holding nothing may be left out."""

    @hookspec
    def sou_escrow_names(
        self, conn: Connection, codes: Sequence[str], lang: str
    ) -> Mapping[str, str]:
        """For a plugin that holds members' units: a short name for each of these of its
        escrow accounts, in words a member reads (a contract's, a campaign's title) and in
        `lang` ("fr", "en") where the plugin adds words of its own, read on `conn` in one
        query for all of them. Codes not its own, or that it knows nothing of, are left
        out. The wallet names the other side of a member's movements and receipts so,
        rather than by the account's code."""

    @hookspec
    def sou_bank_confirmations(
        self, conn: Connection, transfer_ids: Sequence[int]
    ) -> Sequence[BankConfirmation]:
        """What the plugin's own records say of these transfers reaching the bank: one
        `BankConfirmation` per record it holds (none for a transfer it knows nothing of),
        read on `conn`. So one feature shows what another confirmed without reading its
        tables: the offices' page, a deposit matched to a statement line; the
        reconciliation, a deposit the treasurer marked found by hand."""

    @hookspec
    def sou_startup(self, node: Node) -> None:
        """Called once per process, once the node is open and migrated, before the plugin's
        routes are served. An exception here leaves the plugin out (logged, shown on
        /plugins)."""

    @hookspec
    def sou_routers(self) -> Sequence[APIRouter]:
        """API routers (paths under /api/v1/) and page routers. A route already taken by
        another plugin or by the node leaves the whole plugin out."""

    @hookspec
    def sou_middleware(self) -> Sequence[tuple[type, dict[str, Any]]]:
        """ASGI middleware, as (class, options), added around the whole app."""

    @hookspec
    def sou_assets(self) -> Assets:
        """The plugin's templates, static files and translations."""

    @hookspec
    def sou_menu(self) -> Sequence[MenuEntry]:
        """Entries of the pages' menu, by role."""

    @hookspec
    def sou_commands(self, cli: typer.Typer) -> None:
        """Add sub-commands to `sou` (`@cli.command()`), or a group (`cli.add_typer`)."""

    @hookspec
    def sou_jobs(self, node: Node) -> Sequence[Job]:
        """Scheduled jobs: each due run happens once across all the node's processes and
        machines, and a run missed while the node was down happens when it is back."""

    @hookspec
    def sou_reactions(self, node: Node) -> Sequence[Reaction]:
        """Reactions to ledger events (a transfer posted, a key registered or revoked),
        delivered in log order, at least once: a reaction must be idempotent."""
