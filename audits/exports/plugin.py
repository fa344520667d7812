"""The accountant's exports as a plugin: the treasurer's page and downloads, the menu entry,
the `sou export` command and its setting (the association's SIREN)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fastapi import APIRouter

from audits.exports import commands, pages
from audits.exports.settings import ExportSettings
from runtime.hookspecs import MenuEntry, hookimpl

if TYPE_CHECKING:
    import typer


@hookimpl
def sou_settings() -> type[ExportSettings]:
    return ExportSettings


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [pages.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [
        MenuEntry("/treasurer/exports", "Accounting exports", frozenset({"treasurer"}), order=55)
    ]


@hookimpl
def sou_commands(cli: typer.Typer) -> None:
    cli.command("export")(commands.export)
