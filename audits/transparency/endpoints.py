"""The transparency figures as JSON, for anyone (a monitor, another node, a script)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from audits.transparency import service
from members.access import node_of

router = APIRouter(prefix="/api/v1", tags=["node"])


class TransparencyOut(BaseModel):
    currency: str
    digital: int = Field(description="Local units (cents) in wallets, escrows, association.")
    paper: int = Field(description="Paper notes sold and not deposited, in cents.")
    outstanding: int = Field(description="digital + paper.")
    reserve: int = Field(description="Euro cents backing them (reserve, Stripe, tills).")
    ratio_percent: str | None = Field(description="reserve / outstanding, floored to 0.1 %.")
    tree_size: int = Field(description="Entries of the log at its latest checkpoint.")
    checkpoint: str | None = Field(description="The latest signed checkpoint.")
    checkpoint_ms: int | None
    last_clean_audit_ms: int | None = Field(description="When the last clean audit finished.")
    verifier_key: str = Field(description="The node's verifier key for its checkpoints.")


@router.get("/transparency", response_model=TransparencyOut)
def transparency(request: Request, response: Response) -> TransparencyOut:
    """What /transparence shows: units outstanding, the reserve, their ratio, the latest
    checkpoint, the last clean audit and the key that checks the checkpoints."""
    f = service.figures(node_of(request))
    response.headers["Cache-Control"] = f"public, max-age={service.FRESH_FOR_S}"
    return TransparencyOut(
        currency=f.currency,
        digital=f.digital,
        paper=f.paper,
        outstanding=f.outstanding,
        reserve=f.reserve,
        ratio_percent=None if f.ratio_percent is None else str(f.ratio_percent),
        tree_size=0 if f.checkpoint is None else f.checkpoint.tree_size,
        checkpoint=None if f.checkpoint is None else f.checkpoint.note,
        checkpoint_ms=None if f.checkpoint is None else f.checkpoint.created_ms,
        last_clean_audit_ms=None if f.audit is None else f.audit.finished_ms,
        verifier_key=f.verifier_key,
    )
