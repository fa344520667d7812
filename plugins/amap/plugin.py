"""The amap plugin's hooks: what it adds to the node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import APIRouter
from sqlalchemy import Connection

from plugins.amap import endpoints, pages, repository, service
from runtime.hookspecs import Assets, MenuEntry, hookimpl
from runtime.jobs import Job, JobRun
from runtime.node import Node
from runtime.reactions import Reaction

HERE = files("plugins.amap")


@hookimpl
def sou_migrations() -> Traversable:
    return HERE / "migrations"


@hookimpl
def sou_escrows() -> Sequence[str]:
    return []  # one escrow per subscription, opened with it; this hook gives the plugin its key


@hookimpl
def sou_escrow_holdings(conn: Connection) -> Mapping[str, int]:
    return {
        service.escrow(subscription): held
        for subscription, held in repository.escrow_holdings(conn).items()
    }


@hookimpl
def sou_escrow_names(conn: Connection, codes: Sequence[str], lang: str) -> Mapping[str, str]:
    return service.escrow_names(conn, codes, lang)


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_assets() -> Assets:
    return Assets(templates=HERE / "templates", static=HERE / "static", locale=HERE / "locale")


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [MenuEntry("/amap", "AMAP", frozenset({"resident", "merchant", "admin"}), order=55)]


@hookimpl
def sou_jobs(node: Node) -> Sequence[Job]:
    def post_pending(run: JobRun) -> str:
        return service.post_pending(node, run.started_ms)

    return [Job("amap.post_pending", every_s=300, run=post_pending)]


@hookimpl
def sou_reactions(node: Node) -> Sequence[Reaction]:
    return [Reaction("amap.payments", lambda event: service.on_ledger_event(node, event))]
