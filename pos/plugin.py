"""The counter (point of sale, paying at the counter, refunds, the shop's day), as a plugin."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from pos import endpoints, pages, scanning
from runtime.hookspecs import MenuEntry, hookimpl


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router, scanning.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [
        MenuEntry("/pos", "Point of sale", frozenset({"merchant"}), order=15),
        MenuEntry("/pay/code", "Pay with a code", frozenset({"resident", "merchant"}), order=16),
    ]
