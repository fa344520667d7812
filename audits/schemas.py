"""The audit runs, in and out of the API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AuditStart(BaseModel):
    """Start a run: resumed from the last clean run's state (checks what is new), or full."""

    full: bool = False


class AuditRunOut(BaseModel):
    id: int
    status: str = Field(description="running, ok, findings or failed")
    ok: bool = Field(description="finished without a finding but warnings")
    findings: int = Field(description="how many findings, of every severity")
    started_ms: int
    finished_ms: int | None
    started_by: str = Field(description="member:<id>, job:<name> or cli")
    asked_full: bool
    full: bool | None = Field(description="whether it checked everything (once it has chosen)")
    why_full: str | None = Field(description="why a run asked to resume checked everything")
    done: int
    total: int | None
    transfers: int | None
    errors: int | None
    warnings: int | None
    emergencies: int | None
    error: str | None = Field(description="why a failed run could not finish")


class AuditRunDetail(AuditRunOut):
    report: dict[str, Any] | None = Field(description="the audit's report, once finished")


class AuditRunList(BaseModel):
    runs: list[AuditRunOut]
