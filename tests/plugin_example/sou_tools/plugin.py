"""The tool library's hooks: what it adds to the node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable

import typer
from fastapi import APIRouter
from pydantic_settings import BaseSettings
from sqlalchemy import Connection, func, select

from runtime.hookspecs import Assets, MenuEntry, hookimpl
from runtime.jobs import Job, JobRun
from runtime.node import Node, open_node
from runtime.reactions import Reaction
from runtime.settings import Settings
from sou_tools import endpoints, pages, service
from sou_tools.models import tool_loans
from sou_tools.settings import ToolSettings

HERE = files("sou_tools")


@hookimpl
def sou_settings() -> type[BaseSettings]:
    return ToolSettings


@hookimpl
def sou_migrations() -> Traversable:
    return HERE / "migrations"


@hookimpl
def sou_escrows() -> Sequence[str]:
    return []  # one escrow per loan, opened with the loan; this hook gives the plugin its key


@hookimpl
def sou_escrow_names(conn: Connection, codes: Sequence[str], lang: str) -> Mapping[str, str]:
    return service.escrow_names(conn, codes, lang)  # "Tool library · Lawnmower"


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_assets() -> Assets:
    return Assets(templates=HERE / "templates", static=HERE / "static", locale=HERE / "locale")


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [MenuEntry("/tools", "Tool library", frozenset({"resident", "merchant"}), order=60)]


@hookimpl
def sou_jobs(node: Node) -> Sequence[Job]:
    def remind(run: JobRun) -> str:
        return service.remind_overdue(node, run.started_ms)

    return [Job("tools.remind_overdue", every_s=86_400, run=remind)]


@hookimpl
def sou_reactions(node: Node) -> Sequence[Reaction]:
    return [Reaction("tools.deposits", lambda event: service.on_ledger_event(node, event))]


@hookimpl
def sou_commands(cli: typer.Typer) -> None:
    @cli.command("tools-loans")
    def loans_out() -> None:
        """How many tools are out, and how many loans wait for their deposit."""
        node = open_node(Settings())
        try:
            with node.ledger.reading() as conn:
                counts = dict(
                    conn.execute(
                        select(tool_loans.c.state, func.count()).group_by(tool_loans.c.state)
                    ).all()
                )
        finally:
            node.close()
        typer.echo(f"{counts.get('out', 0)} out, {counts.get('waiting_deposit', 0)} waiting")
