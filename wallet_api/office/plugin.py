"""The exchange office (cash in, cash out, deposits at the bank) as a plugin."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from runtime.hookspecs import MenuEntry, hookimpl
from wallet_api.office import endpoints, pages


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [MenuEntry("/office", "Exchange office", frozenset({"office"}), order=30)]
