"""The administration (members, operators, key recovery) as a plugin."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from runtime.hookspecs import MenuEntry, hookimpl
from wallet_api.admin import endpoints, pages


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [
        MenuEntry("/admin/recovery", "Key recovery", frozenset({"office"}), order=60),
        MenuEntry("/admin/members", "Administration", frozenset({"admin"}), order=70),
    ]
