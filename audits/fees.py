"""The fees charged against the rules in force: each reconversion's fee, and the cause's
part of it, are what the fee rule of its day gives (ledger/fee_rules.py). The rules are
checked first: each signed by the node key, each following the one before."""

from __future__ import annotations

import json

from sqlalchemy import Connection, select

from audits.report import WARNING, Finding, Report, later
from ledger import fee_rules
from ledger.models import transfers


def check_fees(
    conn: Connection, origin: str, node_key: bytes, after: int | None, report: Report
) -> None:
    """Check the rules, then the reconversions after transfer `after`."""
    rules, problems = fee_rules.verify(conn, origin, node_key)
    report.findings.extend(Finding("fees", problem) for problem in problems)
    t = transfers
    query = (
        select(t.c.id, t.c.created_ms, t.c.order_json)
        .where(t.c.kind == "redemption", later(t.c.id, after))
        .order_by(t.c.id)
    )
    reconversions = conn.execute(query).all()
    if not rules:
        # A node records its rule whenever it opens: none at all means a ledger no node of
        # this version opened yet, or rules removed. Said, as the fees go unchecked.
        if reconversions or problems:
            report.findings.append(
                Finding(
                    "fees",
                    f"no fee rule is recorded: the fees of {len(reconversions)} reconversions "
                    "are not checked",
                    severity=WARNING,
                )
            )
        return
    for tid, created_ms, order_json in reconversions:
        problem = _wrong_fee(order_json, fee_rules.in_force(rules, created_ms))
        if problem:
            report.findings.append(Finding("fees", f"transfer {tid}: {problem}", transfer_id=tid))


def _wrong_fee(order_json: str, rule: fee_rules.FeeRule | None) -> str | None:
    if rule is None:
        return "no fee rule was in force at its time"
    try:
        order = json.loads(order_json)
        amount, fee, cause = order["amount"], order["fee"], order.get("cause_fee", 0)
    except (ValueError, KeyError, TypeError):
        return None  # an unreadable order is the transfer checks' finding
    expected, expected_cause = fee_rules.reconversion_fee(amount, rule.fee_bps, rule.cause_share)
    if (fee, cause) != (expected, expected_cause):
        return (
            f"reconverting {amount} charged a fee of {fee} (cause {cause}), but the rule in "
            f"force (fee rule {rule.id}: {rule.fee_bps} basis points, {rule.cause_share} % to "
            f"the cause) gives {expected} (cause {expected_cause})"
        )
    return None
