"""What the transparency page tells everyone, read from the ledger at each request.

The reserve and the units outstanding follow the chart's rules (`ledger/chart.py`: which
account kinds back the units, which hold them), as the audit's backing check does; the paper
notes outstanding are the notes service's (each series' notes in circulation at their value).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from importlib.resources import files

from sqlalchemy import Connection

from audits.service import latest_run
from ledger import repository as ledger_repo
from ledger.chart import backing
from ledger.checkpoint import verifier_key
from runtime.node import Node

# The figures move with every payment: a few seconds old is still true, and a busy page
# then costs the ledger one read per browser every few seconds.
FRESH_FOR_S = 5

# The verifier a resident downloads is the node's own `ledger/verify.py`, byte for byte, so
# that what the page hands out is what the node's source holds; its SHA-256 lets a resident
# compare it with a copy of that source got elsewhere.
VERIFIER = (files("ledger") / "verify.py").read_bytes()
VERIFIER_SHA256 = hashlib.sha256(VERIFIER).hexdigest()


@dataclass(frozen=True)
class LatestCheckpoint:
    note: str
    tree_size: int
    created_ms: int


@dataclass(frozen=True)
class CleanAudit:
    started_ms: int
    finished_ms: int
    full: bool


@dataclass(frozen=True)
class Figures:
    """The money in plain figures (cents), and the log's latest signed state."""

    currency: str
    digital: int  # local units in wallets, escrows and the association's accounts
    paper: int  # paper notes sold and not yet deposited
    reserve: int  # euros in the reserve accounts, the Stripe balance and the offices' tills
    checkpoint: LatestCheckpoint | None
    audit: CleanAudit | None
    origin: str
    verifier_key: str

    @property
    def outstanding(self) -> int:
        return self.digital + self.paper

    @property
    def ratio_percent(self) -> Decimal | None:
        """Reserve / units outstanding, in percent, rounded down to a tenth (None: no units):
        rounding down never shows 100 % for a reserve short by a cent."""
        if self.outstanding == 0:
            return None
        ratio = Decimal(self.reserve * 100) / Decimal(self.outstanding)
        return ratio.quantize(Decimal("0.1"), rounding=ROUND_FLOOR)

    @property
    def backed(self) -> bool:
        return self.reserve >= self.outstanding


def figures(node: Node) -> Figures:
    with node.ledger.reading() as conn:
        held = backing(ledger_repo.balances(conn))
        reserve, digital, paper = held.reserve, held.digital, held.paper
        latest = ledger_repo.latest_checkpoint(conn)
        audit = last_clean_audit(conn)
    origin = node.ledger.origin
    return Figures(
        currency=node.ledger.chart.local,
        digital=digital,
        paper=paper,
        reserve=reserve,
        checkpoint=None
        if latest is None
        else LatestCheckpoint(latest["note"], int(latest["tree_size"]), int(latest["created_ms"])),
        audit=audit,
        origin=origin,
        verifier_key=verifier_key(origin, node.node_key.public_key),
    )


def last_clean_audit(conn: Connection) -> CleanAudit | None:
    """The last audit that found nothing but warnings."""
    run = latest_run(conn, clean=True)
    if run is None:
        return None
    finished = run.finished_ms if run.finished_ms is not None else run.started_ms
    return CleanAudit(int(run.started_ms), int(finished), bool(run.full))
