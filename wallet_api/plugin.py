"""The wallet as a plugin of the node: balance, history, payments, receipts, log proofs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from runtime.hookspecs import MenuEntry, hookimpl
from wallet_api import endpoints, pages


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_middleware() -> Sequence[tuple[type, dict[str, Any]]]:
    return [(endpoints.DirectPayments, {})]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [MenuEntry("/wallet", "Wallet", frozenset({"resident", "merchant"}), order=10)]
