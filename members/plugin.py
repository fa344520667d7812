"""Members as a plugin of the node: joining, logging in, device keys, tokens, operators."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from members import endpoints, pages
from runtime.hookspecs import hookimpl


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]
