"""The crowdfunding plugin's hooks: what it adds to the node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import APIRouter
from pydantic_settings import BaseSettings
from sqlalchemy import Connection

from plugins.crowdfunding import endpoints, pages, repository, service
from plugins.crowdfunding.settings import CrowdfundingSettings
from runtime.hookspecs import Assets, MenuEntry, hookimpl
from runtime.jobs import Job, JobRun
from runtime.node import Node
from runtime.reactions import Reaction

HERE = files("plugins.crowdfunding")
EVERY_S = 60  # how late the deadline may be met: a minute


@hookimpl
def sou_settings() -> type[BaseSettings]:
    return CrowdfundingSettings


@hookimpl
def sou_escrow_holdings(conn: Connection) -> Mapping[str, int]:
    return repository.escrow_holdings(conn)


@hookimpl
def sou_escrow_names(conn: Connection, codes: Sequence[str], lang: str) -> Mapping[str, str]:
    return service.escrow_names(conn, codes, lang)


@hookimpl
def sou_migrations() -> Traversable:
    return HERE / "migrations"


@hookimpl
def sou_escrows() -> Sequence[str]:
    return [service.MATCHING]  # campaigns' escrows are opened with their publication


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_assets() -> Assets:
    return Assets(templates=HERE / "templates", static=HERE / "static", locale=HERE / "locale")


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    people = frozenset({"resident", "merchant", "treasurer", "admin"})
    return [
        MenuEntry("/campaigns", "Projects", people, order=70),
        MenuEntry("/campaigns/moderation", "Campaigns to moderate", frozenset({"admin"}), order=71),
    ]


@hookimpl
def sou_jobs(node: Node) -> Sequence[Job]:
    def deadline(run: JobRun) -> str:
        return service.close_due(node, run.started_ms)

    return [Job("crowdfunding.deadlines", every_s=EVERY_S, run=deadline)]


@hookimpl
def sou_reactions(node: Node) -> Sequence[Reaction]:
    return [Reaction("crowdfunding.escrows", lambda event: service.on_ledger_event(node, event))]
