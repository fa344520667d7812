"""The treasurer's audit runs, as a plugin: the page and its API, the menu entry, and the
scheduled audit (what is new every hour, everything once a night)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter
from pydantic_settings import BaseSettings

from audits import endpoints, pages, service
from runtime.hookspecs import MenuEntry, hookimpl
from runtime.jobs import Job, JobRun
from runtime.node import Node


@hookimpl
def sou_settings() -> type[BaseSettings]:
    return service.AuditSettings


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [MenuEntry("/treasurer/audit", "Audit", frozenset({"treasurer"}), order=52)]


@hookimpl
def sou_jobs(node: Node) -> Sequence[Job]:
    settings = service.settings_of(node)

    def scheduled(run: JobRun) -> str:
        return service.scheduled(node, run)

    return [Job(service.JOB, every_s=settings.every_s, run=scheduled, lease_s=settings.lease_s)]
