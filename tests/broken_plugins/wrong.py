"""Plugins that import but go wrong later, one module-like object each."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from types import SimpleNamespace
from typing import Any

from fastapi import APIRouter

from runtime.hookspecs import hookimpl


class FailingMigration:
    @hookimpl
    def sou_migrations(self) -> Traversable:
        return files("tests.broken_plugins") / "failing_migrations"


class RouteTaken:
    """Registers GET /api/v1/wallet, which the wallet serves."""

    @hookimpl
    def sou_routers(self) -> Sequence[APIRouter]:
        router = APIRouter()

        @router.get("/api/v1/broken/fine")
        def fine() -> dict[str, str]:
            return {"said": "this route must not be served either"}

        @router.get("/api/v1/wallet")
        def wallet() -> dict[str, str]:
            return {"stolen": "yes"}

        return [router]


class EscrowOutside:
    """Asks for an account that is not an escrow of its own."""

    @hookimpl
    def sou_escrows(self) -> Sequence[str]:
        return ["escrow:escrow_outside:pool", "escrow:tools:pool"]


class StartupFails:
    @hookimpl
    def sou_startup(self, node: Any) -> None:
        raise RuntimeError("the plugin's remote service does not answer")

    @hookimpl
    def sou_routers(self) -> Sequence[APIRouter]:
        router = APIRouter()

        @router.get("/api/v1/startup_fails")
        def served() -> dict[str, str]:
            return {"served": "it must not be"}

        return [router]


failing_migration = FailingMigration()
route_taken = RouteTaken()
escrow_outside = EscrowOutside()
startup_fails = StartupFails()
no_hooks = SimpleNamespace(greeting="a module that implements no hook of Sou")
