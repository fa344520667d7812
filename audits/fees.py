"""The fees charged against the rules in force: each reconversion's fee, and the cause's
part of it, are what the fee rule of its day gives (ledger/fee_rules.py). The rules are
checked first: each signed by the node key, each following the one before."""

from __future__ import annotations

import json

from sqlalchemy import Connection, select

from audits.report import WARNING, Finding, Report, finding, finding_template, later, recognised
from ledger import fee_rules
from ledger.models import transfers

# What the ledger says of a fee rule that does not hold (ledger/fee_rules.py `verify`), as
# templates: the page translates a problem that reads as one of them.
FEE_RULE_PROBLEMS = (
    finding_template("fee rule {rule}: not signed by the node key"),
    finding_template("fee rule {rule}: stored columns differ from the signed rule"),
    finding_template(
        "fee rule {rule}: follows fee rule {previous}, but the rule stored before it is {stored}"
    ),
    finding_template("fee rule {rule}: takes effect before the rule it follows"),
)


def check_fees(
    conn: Connection, origin: str, node_key: bytes, after: int | None, report: Report
) -> None:
    """Check the rules, then the reconversions after transfer `after`."""
    rules, problems = fee_rules.verify(conn, origin, node_key)
    report.findings.extend(recognised("fees", problem, FEE_RULE_PROBLEMS) for problem in problems)
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
                finding(
                    "fees",
                    "no fee rule is recorded: the fees of {count} reconversions are not checked",
                    count=len(reconversions),
                    severity=WARNING,
                )
            )
        return
    for tid, created_ms, order_json in reconversions:
        problem = _wrong_fee(tid, order_json, fee_rules.in_force(rules, created_ms))
        if problem:
            report.findings.append(problem)


def _wrong_fee(tid: int, order_json: str, rule: fee_rules.FeeRule | None) -> Finding | None:
    if rule is None:
        return finding(
            "fees",
            "transfer {transfer}: no fee rule was in force at its time",
            transfer=tid,
            transfer_id=tid,
        )
    try:
        order = json.loads(order_json)
        amount, fee, cause = order["amount"], order["fee"], order.get("cause_fee", 0)
    except (ValueError, KeyError, TypeError):
        return None  # an unreadable order is the transfer checks' finding
    expected, expected_cause = fee_rules.reconversion_fee(amount, rule.fee_bps, rule.cause_share)
    if (fee, cause) != (expected, expected_cause):
        return finding(
            "fees",
            "transfer {transfer}: reconverting {amount} charged a fee of {fee} (cause {cause}), "
            "but the rule in force (fee rule {rule}: {bps} basis points, {share} % to the "
            "cause) gives {expected} (cause {expected_cause})",
            transfer=tid,
            amount=amount,
            fee=fee,
            cause=cause,
            rule=rule.id,
            bps=rule.fee_bps,
            share=rule.cause_share,
            expected=expected,
            expected_cause=expected_cause,
            transfer_id=tid,
        )
    return None
