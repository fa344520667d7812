"""The counter (point of sale, paying at the counter, refunds, the shop's day), as a plugin."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter
from pydantic_settings import BaseSettings

from pos import endpoints, pages, scanning
from pos.codes import endpoints as code_endpoints
from pos.codes import pages as code_pages
from pos.devices import endpoints as device_endpoints
from pos.devices import pages as device_pages
from pos.devices.settings import CounterSettings
from runtime.hookspecs import MenuEntry, hookimpl


@hookimpl
def sou_settings() -> type[BaseSettings]:
    return CounterSettings


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [
        endpoints.router,
        code_endpoints.router,
        pages.router,
        code_pages.router,
        scanning.router,
        device_endpoints.router,
        device_pages.router,
    ]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [
        MenuEntry("/pos", "Point of sale", frozenset({"merchant"}), order=15, counter=True),
        MenuEntry("/pay/code", "Pay with a code", frozenset({"resident", "merchant"}), order=16),
        MenuEntry("/pos/devices", "Counter devices", frozenset({"merchant"}), order=17),
    ]
