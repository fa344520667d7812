"""Card top-ups through Stripe, and the treasurer's card shortfalls, as a plugin."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from runtime.hookspecs import MenuEntry, hookimpl
from wallet_api.cards import endpoints, pages


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [
        MenuEntry("/treasurer/cards", "Card shortfalls", frozenset({"treasurer"}), order=50),
        MenuEntry("/admin/cards", "Card payments", frozenset({"admin"}), order=75),
    ]
