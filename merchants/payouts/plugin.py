"""Payouts to merchants, as a plugin: their bank details, the treasurer's SEPA files, and
`sou payouts`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer
from fastapi import APIRouter
from pydantic_settings import BaseSettings

from merchants.payouts import commands, endpoints, pages
from merchants.payouts.settings import PayoutsSettings
from runtime.hookspecs import MenuEntry, hookimpl
from runtime.settings import Settings


def _may_reconvert(member: Any, settings: Settings) -> bool:
    return bool(member.role == "merchant" or settings.residents_may_reconvert)


@hookimpl
def sou_settings() -> type[BaseSettings]:
    return PayoutsSettings


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_commands(cli: typer.Typer) -> None:
    cli.add_typer(commands.payouts, name="payouts")


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [
        MenuEntry(
            "/bank-details",
            "Bank details",
            frozenset({"merchant", "resident"}),
            order=21,
            shown=_may_reconvert,
        ),
        MenuEntry("/treasurer/payouts", "Transfer files", frozenset({"treasurer"}), order=41),
    ]
