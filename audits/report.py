"""What an audit finds and reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    check: str  # keys, signature, order, postings, balance, backing, log, checkpoint
    message: str
    transfer_id: int | None = None
    account: str | None = None
    leaf: int | None = None


@dataclass
class Report:
    transfers: int = 0
    key_events: int = 0
    leaves: int = 0
    unsealed: int = 0
    checkpoints: int = 0
    accounts: int = 0
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["ok"] = self.ok
        result["findings"] = [
            {k: v for k, v in asdict(f).items() if v is not None} for f in self.findings
        ]
        return result
