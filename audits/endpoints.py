"""The audit runs' API, under /api/v1/audit, for the treasurer: start a run in the
background, read one (the page follows its progress), list them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from audits import service
from audits.schemas import AuditRunDetail, AuditRunList, AuditRunOut, AuditStart
from members.access import Treasurer, node_of

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
RunId = Annotated[int, Path(ge=1, le=2**53)]


def _out(run: service.AuditRun) -> dict[str, Any]:
    return {k: v for k, v in asdict(run).items() if k != "watch"}


@router.post("/runs", status_code=202, response_model=AuditRunOut)
def start_run(body: AuditStart, request: Request, treasurer: Treasurer) -> Any:
    """Start an audit in the background: resumed from the last clean run (what is new), or
    full. 409 `audit_running` (naming it as `run`) while another runs."""
    node = node_of(request)
    run_id = service.start_in_background(node, f"member:{treasurer.id}", full=body.full)
    with node.engine.connect() as conn:
        run, _ = service.run_of(conn, run_id)
    return _out(run)


@router.get("/runs", response_model=AuditRunList)
def list_runs(
    request: Request,
    _: Treasurer,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[int | None, Query(ge=1, le=2**53)] = None,
) -> Any:
    """The latest runs first; `before` a run's id for the ones before it."""
    with node_of(request).engine.connect() as conn:
        return {"runs": [_out(run) for run in service.runs(conn, limit, before)]}


@router.get("/runs/{run_id}", response_model=AuditRunDetail)
def read_run(run_id: RunId, request: Request, _: Treasurer) -> Any:
    """One run: its progress while it runs, its outcome and report once finished."""
    with node_of(request).engine.connect() as conn:
        run, report = service.run_of(conn, run_id)
    return {**_out(run), "report": report}
