"""What the node has plugged in: `/plugins` (a page) and `GET /api/v1/plugins`.

Anyone may see which plugins run and their versions, as on any public service; why a plugin
was left out (an error's text) is shown to the admin only.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from members.access import MaybeMember, Principal
from runtime.plugins import Plugin
from web.pages import page

router = APIRouter()


class PluginOut(BaseModel):
    name: str
    distribution: str
    version: str
    shipped: bool  # one of the node's own features
    state: str  # active, disabled, left_out
    hooks: list[str]
    problem: str | None  # why it was left out (to the admin only)


class PluginsOut(BaseModel):
    plugins: list[PluginOut]


def _listed(request: Request, p: Principal | None) -> list[PluginOut]:
    admin = p is not None and p.scope == "wallet" and p.member.role == "admin"
    return [
        PluginOut(
            name=plugin.name,
            distribution=plugin.distribution,
            version=plugin.version,
            shipped=plugin.shipped,
            state=_state(plugin),
            hooks=plugin.hooks,
            problem=plugin.problem if admin else None,
        )
        for plugin in request.app.state.node.plugins.found.values()
    ]


def _state(plugin: Plugin) -> str:
    if plugin.disabled:
        return "disabled"
    return "active" if plugin.problem is None else "left_out"


@router.get("/api/v1/plugins", response_model=PluginsOut, tags=["node"])
def plugins(request: Request, p: MaybeMember) -> PluginsOut:
    """The plugins found, with their version, the hooks they implement and their state:
    active, disabled (SOU_PLUGINS_DISABLED) or left out (it failed; the admin sees why)."""
    return PluginsOut(plugins=_listed(request, p))


@router.get("/plugins", include_in_schema=False)
def plugins_page(request: Request, p: MaybeMember) -> Response:
    return page(request, "plugins.html", plugins=_listed(request, p))
