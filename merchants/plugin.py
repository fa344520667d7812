"""Merchants and the reconversion of their units into euros, as a plugin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from merchants import endpoints, pages
from runtime.hookspecs import MenuEntry, hookimpl
from runtime.settings import Settings


def _may_reconvert(member: Any, settings: Settings) -> bool:
    return bool(member.role == "merchant" or settings.residents_may_reconvert)


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [
        MenuEntry(
            "/reconversion",
            "Reconversion",
            frozenset({"merchant", "resident"}),
            order=20,
            shown=_may_reconvert,
        ),
        MenuEntry("/treasurer", "Treasury", frozenset({"treasurer"}), order=40),
    ]
