"""The FastAPI application factory: `node.app:create_app`."""

from __future__ import annotations

import gc
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from sqlalchemy import func, select

from ledger import repository as repo
from ledger.models import log_queue
from runtime.node import Node, open_node
from runtime.settings import Settings
from web.pages import install_error_handlers
from web.refusals import REFUSALS

# The routers of the feature packages, API and pages.
FEATURES = (
    "wallet_api.endpoints",
    "wallet_api.pages",
    "wallet_api.cards.endpoints",
    "wallet_api.cards.pages",
    "wallet_api.office.endpoints",
    "wallet_api.office.pages",
    "merchants.endpoints",
    "merchants.pages",
    "wallet_api.admin.endpoints",
    "wallet_api.admin.pages",
)


def create_app(settings: Settings | None = None, node: Node | None = None) -> FastAPI:
    """Build the app. The node (database, ledger, poster, sealer) opens at startup."""
    settings = settings or Settings()
    node = node or open_node(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        node.start()
        try:
            yield
        finally:
            node.close()

    # No /docs: Swagger UI would load its assets from a CDN; the schema is at /openapi.json.
    app = FastAPI(
        title="Sou",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        responses=REFUSALS,
    )
    app.state.node = node
    install_error_handlers(app)
    from fastapi.staticfiles import StaticFiles

    for module in FEATURES:
        app.include_router(importlib.import_module(module).router)
    from wallet_api.endpoints import DirectPayments

    app.add_middleware(DirectPayments)
    app.mount("/static", StaticFiles(packages=[("web", "static")]), name="static")

    @app.get("/healthz", tags=["node"])
    def healthz(request: Request) -> dict[str, object]:
        """Liveness and the state of the log: is the node up and sealing?"""
        with node.ledger.reading() as conn:
            latest = repo.latest_checkpoint(conn)
            unsealed = conn.scalar(select(func.count()).select_from(log_queue))
        return {
            "status": "ok",
            "origin": node.ledger.origin,
            "currency": node.ledger.chart.local,
            "log_size": 0 if latest is None else latest["tree_size"],
            "unsealed": unsealed,
        }

    return app


def create_served_app(settings: Settings | None = None, node: Node | None = None) -> FastAPI:
    """The app as `sou serve` runs it, in each of its processes."""
    app = create_app(settings, node)
    # What was built to start (modules, routes, models: most of the process's objects)
    # lives as long as the process: kept out of the collector's full passes, which under
    # load otherwise paused requests for tens of milliseconds, many times a minute.
    gc.collect()
    gc.freeze()
    return app
