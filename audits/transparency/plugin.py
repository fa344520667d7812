"""The transparency page as a plugin: its page, its JSON and its menu entry, for everyone."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from audits.transparency import endpoints, pages
from runtime.hookspecs import MenuEntry, hookimpl

# Every role, and "visitor" for the menu of a reader who is not signed in (see the report:
# web/pages.py `menu_of` shows no entry to visitors yet).
EVERYONE = frozenset({"visitor", "resident", "merchant", "office", "treasurer", "admin"})


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [MenuEntry("/transparence", "Transparency", EVERYONE, order=95)]
