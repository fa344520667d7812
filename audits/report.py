"""What an audit finds and reports, and the state it leaves for the next one to resume from."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the audit's worker processes read this module: they start without it
    from sqlalchemy import ColumnElement

# How serious a finding is: an *emergency* when units outstanding ever exceeded the euros
# backing them, a *warning* for what needs watching but is not a fault (the ACPR threshold
# coming near), an *error* for everything the ledger's data contradicts.
ERROR, WARNING, EMERGENCY = "error", "warning", "emergency"


def later(transfer_id: ColumnElement[Any], after: int | None) -> ColumnElement[bool]:
    """Transfers after `after` (the last one a previous audit checked), or all (None)."""
    from sqlalchemy import true

    return true() if after is None else transfer_id > after


# A value a finding's words name: an id, an amount, an account code...; or the values of
# a reason quoted with its own template (a checkpoint's `reason_args`).
Arg = str | int | dict[str, str | int]


@dataclass(frozen=True)
class Finding:
    check: str  # keys, signature, order, postings, balance, backing, log, checkpoint, acpr...
    message: str  # in English, as the command line and the JSON report give it
    transfer_id: int | None = None
    account: str | None = None
    leaf: int | None = None
    severity: str = ERROR
    # The message's English template (a msgid of audit.po) and the values of its {names},
    # so that the page says it in its reader's language; empty for a message given whole
    # (by the ledger), which the page shows as it is.
    template: str = field(default="", compare=False)
    args: tuple[tuple[str, Arg], ...] = field(default=(), compare=False)

    def as_dict(self) -> dict[str, Any]:
        """What is set of it, `args` as an object: as the JSON report and the runs keep it."""
        said = {k: v for k, v in asdict(self).items() if v is not None and k != "args"}
        if not self.template:
            said.pop("template")
        else:
            said["args"] = dict(self.args)
        return said


def finding(
    check: str,
    template: str,
    *,
    transfer_id: int | None = None,
    account: str | None = None,
    leaf: int | None = None,
    severity: str = ERROR,
    **args: Arg,
) -> Finding:
    """A finding whose message is `template` (English, a msgid: pybabel extracts it under
    the keyword `finding`) with its {names} filled from `args`."""
    return Finding(
        check,
        template.format(**args),
        transfer_id,
        account,
        leaf,
        severity,
        template,
        tuple(args.items()),
    )


def finding_template(template: str) -> str:
    """A finding's template written apart from its `finding` call, marked so that pybabel
    extracts it (the keyword `finding_template`)."""
    return template


def recognised(check: str, text: str, templates: tuple[str, ...], **where: Any) -> Finding:
    """A finding for a message written whole elsewhere (the ledger's), with the template of
    `templates` it reads as, so that the page can translate it; else as it is."""
    for template in templates:
        found = _pattern(template).fullmatch(text)
        if found:
            args: dict[str, Any] = {
                k: int(v) if v.isdigit() else v for k, v in found.groupdict().items()
            }
            if template.format(**args) == text:
                return finding(check, template, **where, **args)
    return Finding(check, text, **where)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)  # text, name, text, name, ..., text
    return re.compile(
        "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
        )
    )


@dataclass
class AuditState:
    """How far an audit has checked, for the next one to resume from (after GNU Taler's
    auditor): every transfer up to `last_transfer`, the log up to `tree_size` (its
    `frontier`: the roots of the perfect subtrees the tree is made of, largest first, from
    which the next roots follow), and the balances the checked history gives. Stored signed
    by the node key, so that a resumed audit does not take the database's word for it."""

    origin: str
    last_transfer: int
    tree_size: int
    frontier: list[str]  # hex
    balances: dict[str, int]
    # Running totals for the watches (audits/watch.py): the day (days since 1970-01-01, UTC)
    # of the last transfer checked, the euros backing and units outstanding at its end, and
    # the payments of each of the last 365 days.
    day: int | None = None
    backing: int = 0
    outstanding: int = 0
    payments: dict[str, int] = field(default_factory=dict)
    # What the notes' transfers added up to (audits/paper.py `Paper`); None in a state left
    # before it was kept: the next audit then sums them all.
    paper: dict[str, dict[str, int]] | None = None
    version: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AuditState:
        return cls(**json.loads(text))


@dataclass
class Watch:
    """Figures the treasurer follows, measured by the audit."""

    # Payments between members over the last 365 days, in euro cents (units are 1:1), and the
    # ceiling above which the ACPR supervises the currency (EUR 1,000,000 a year).
    payments_12_months: int = 0
    acpr_ceiling: int = 100_000_000
    backing: int = 0  # euro cents in reserve, at the audit's snapshot
    outstanding: int = 0  # local cents held by members (digital and paper)
    lowest_margin_day: str | None = None  # the day the reserve exceeded units the least
    lowest_margin: int | None = None

    @property
    def acpr_share(self) -> float:
        return self.payments_12_months / self.acpr_ceiling if self.acpr_ceiling else 0.0


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
    full: bool = True  # False when resumed from a previous audit's state
    resumed_from: int | None = None  # the last transfer the resumed state had checked
    watch: Watch = field(default_factory=Watch)
    state: AuditState | None = None  # what the next audit may resume from (when ok)

    @property
    def ok(self) -> bool:
        """No finding but warnings."""
        return all(f.severity == WARNING for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result.pop("state")
        result["ok"] = self.ok
        result["watch"]["acpr_share"] = round(self.watch.acpr_share, 4)
        result["findings"] = [f.as_dict() for f in self.findings]
        return result
