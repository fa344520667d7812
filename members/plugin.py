"""Members as a plugin of the node: joining, logging in, device keys, tokens, operators;
one's account (password, sessions, reset links)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fastapi import APIRouter

from members import endpoints, pages, service
from members.account import endpoints as account_endpoints
from members.account import pages as account_pages
from members.account import service as account_service
from members.models import ROLES
from runtime.hookspecs import MenuEntry, hookimpl
from runtime.jobs import Job, JobRun

if TYPE_CHECKING:
    from runtime.node import Node


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router, account_endpoints.router, account_pages.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [MenuEntry("/account", "My account", frozenset(ROLES), order=88)]


@hookimpl
def sou_jobs(node: Node) -> Sequence[Job]:
    def forget(run: JobRun) -> str:
        return service.forget_old_logins(node, run.started_ms)

    def forget_account(run: JobRun) -> str:
        return account_service.forget_old_links_and_sessions(node, run.started_ms)

    return [
        Job("members.forget_old_logins", every_s=3600, run=forget),
        Job("members.forget_old_links_and_sessions", every_s=3600, run=forget_account),
    ]
