"""The FastAPI application factory: `node.app:create_app`."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select
from starlette.routing import BaseRoute, Route

from ledger import repository as repo
from ledger.models import log_queue
from members.access import SESSION_COOKIE
from node import plugin_list
from runtime.node import Node, open_node
from runtime.settings import Settings
from wallet_api.cards.stripe_api import checkout_origin
from web.i18n import add_catalogue
from web.pages import add_templates, install_error_handlers
from web.refusals import document_problem
from web.security import SecurityMiddleware


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
    )
    app.state.node = node
    document_problem(app)
    install_error_handlers(app)
    add_routes(app, [plugin_list.router])

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

    plug_in(app, node)
    # After the plugins' own static directories, which it would otherwise hide.
    app.mount("/static", StaticFiles(packages=[("web", "static")]), name="static")
    # Added last, so outermost: its headers and body limit hold for the plugins' middleware too.
    app.add_middleware(
        SecurityMiddleware,
        max_body_bytes=node.settings.max_body_bytes,
        private_cookies=[SESSION_COOKIE],
        form_targets=lambda: filter(None, [checkout_origin(node.settings)]),
    )
    return app


def plug_in(app: FastAPI, node: Node) -> None:
    """What each active plugin adds to the app, in order: it starts, its assets and menu
    entries, its routes, its middleware. A plugin failing at any of them is left out of
    the rest; a route already served leaves the whole plugin's routes out."""
    plugins = node.plugins
    plugins.call("sou_startup", node=node)
    for plugin, assets in plugins.each("sou_assets"):
        if assets.templates is not None:
            add_templates(assets.templates)
        if assets.locale is not None:
            add_catalogue(assets.locale)
        if assets.static is not None:
            static = StaticFiles(directory=str(assets.static))
            app.mount(f"/static/{plugin.name}", static, name=f"static-{plugin.name}")
    menu = [(plugin, entry) for plugin, entries in plugins.each("sou_menu") for entry in entries]
    taken = _routes(app.routes)
    for plugin, routers in plugins.each("sou_routers"):
        theirs = [route for router in routers for route in router.routes]
        clash = sorted(_routes(theirs) & taken)
        if clash:
            said = ", ".join(f"{method} {path}" for path, method in clash)
            plugins.leave_out(plugin, "sou_routers", f"routes already served: {said}")
            continue
        add_routes(app, routers)
        taken |= _routes(theirs)
    for _, middleware in plugins.each("sou_middleware"):
        for cls, options in middleware:
            app.add_middleware(cls, **options)
    shown = [entry for plugin, entry in menu if plugin.active]
    app.state.menu = sorted(shown, key=lambda entry: (entry.order, entry.path))


def add_routes(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Serve the routers' routes as they are. Each route is complete when its router
    defines it (prefix, tags, refusals); `include_router` would rebuild every one of them
    for each app, on its first request: a few tenths of a second of every process start."""
    app.router.routes.extend(route for router in routers for route in router.routes)


def _routes(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    return {
        (route.path, method)
        for route in routes
        if isinstance(route, APIRoute | Route)
        for method in route.methods or ()
    }


def create_served_app(settings: Settings | None = None, node: Node | None = None) -> FastAPI:
    """The app as `sou serve` runs it, in each of its processes."""
    app = create_app(settings, node)
    # What was built to start (modules, routes, models: most of the process's objects)
    # lives as long as the process: kept out of the collector's full passes, which under
    # load otherwise paused requests for tens of milliseconds, many times a minute.
    gc.collect()
    gc.freeze()
    return app
