"""The reconversion fee rules in force over time.

The node's settings say what fee a reconversion pays today; an audit must know what they
said on the day of each reconversion. So every change is recorded as a rule, in force from
its `effective` time until the next: RFC 8785 JSON signed by the node key, naming the rule
it follows (the database allows one successor per rule), so that a rule altered, removed or
inserted in the database is seen. The first rule a node records applies from the start of
its ledger.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from ledger.canonical import canonical
from ledger.models import fee_rules
from ledger.signing import SigningKey


@dataclass(frozen=True)
class FeeRule:
    id: int
    previous: int | None
    effective_ms: int
    fee_bps: int  # the reconversion fee, in basis points
    cause_share: int  # percent of the fee given to the association's cause


def reconversion_fee(amount: int, fee_bps: int, cause_share: int) -> tuple[int, int]:
    """The fee on reconverting `amount` cents, and the cause's part of it. The fee is
    rounded up to the cent (a request split into small ones never pays less than the rate);
    the cause's part is rounded down, the remaining cent staying with the association."""
    fee = -(-amount * fee_bps // 10_000)
    return fee, fee * cause_share // 100


def latest(conn: Connection) -> FeeRule | None:
    rows = read(conn)
    return rows[-1] if rows else None


def read(conn: Connection) -> list[FeeRule]:
    """The stored rules, as their signed JSON says, in the order they follow each other."""
    found = []
    for row in conn.execute(select(fee_rules).order_by(fee_rules.c.id)):
        fields = json.loads(row.rule_json)
        found.append(
            FeeRule(
                row.id,
                row.previous,
                row.effective_ms,
                fields["reconversion_fee_bps"],
                fields["cause_share"],
            )
        )
    return found


def rule_body(origin: str, rule: FeeRule) -> bytes:
    return canonical(
        {
            "node": origin,
            "id": rule.id,
            "previous": rule.previous,
            "effective": rule.effective_ms,
            "reconversion_fee_bps": rule.fee_bps,
            "cause_share": rule.cause_share,
            "type": "fee_rule",
        }
    )


def record(
    engine: Engine, node_key: SigningKey, origin: str, fee_bps: int, cause_share: int, now_ms: int
) -> FeeRule:
    """Make the settings' rule the one in force, unless it already is. Nodes opening at
    once record it once: the loser of the race finds the winner's rule."""
    for _ in range(3):
        with engine.begin() as conn:
            last = latest(conn)
            if last is not None and (last.fee_bps, last.cause_share) == (fee_bps, cause_share):
                return last
            rule = FeeRule(
                last.id + 1 if last else 1,
                last.id if last else None,
                now_ms if last else 0,
                fee_bps,
                cause_share,
            )
            body = rule_body(origin, rule)
            try:
                conn.execute(
                    insert(fee_rules).values(
                        id=rule.id,
                        previous=rule.previous,
                        effective_ms=rule.effective_ms,
                        rule_json=body.decode(),
                        signature=node_key.sign_bytes(body),
                    )
                )
            except IntegrityError:
                continue  # another process recorded a rule just now: read it
            return rule
    raise RuntimeError("could not record the fee rule")


def verify(
    conn: Connection, origin: str, node_public_key: bytes
) -> tuple[list[FeeRule], list[str]]:
    """The rules whose signature, chain and columns hold, and what is wrong with the
    others (the audit's findings)."""
    verifier = nacl.signing.VerifyKey(node_public_key)
    good: list[FeeRule] = []
    problems: list[str] = []
    previous: int | None = None
    for row in conn.execute(select(fee_rules).order_by(fee_rules.c.id)):
        try:
            fields = json.loads(row.rule_json)
            rule = FeeRule(
                fields["id"],
                fields["previous"],
                fields["effective"],
                fields["reconversion_fee_bps"],
                fields["cause_share"],
            )
            body = rule_body(origin, rule)
            verifier.verify(body, bytes(row.signature))
        except (ValueError, KeyError, TypeError, nacl.exceptions.BadSignatureError):
            problems.append(f"fee rule {row.id}: not signed by the node key")
            previous = row.id
            continue
        # The signature holds for the rule as this node writes it: the stored text must be
        # that very text (a field the rule does not read, such as its node, altered too).
        if row.rule_json.encode() != body or (row.id, row.previous, row.effective_ms) != (
            rule.id,
            rule.previous,
            rule.effective_ms,
        ):
            problems.append(f"fee rule {row.id}: stored columns differ from the signed rule")
        elif rule.previous != previous:
            problems.append(
                f"fee rule {row.id}: follows fee rule {rule.previous}, but the rule stored "
                f"before it is {previous}"
            )
        elif good and rule.effective_ms < good[-1].effective_ms:
            problems.append(f"fee rule {row.id}: takes effect before the rule it follows")
        previous = rule.id
        good.append(rule)
    return good, problems


def in_force(rules: Sequence[FeeRule], at_ms: int) -> FeeRule | None:
    """The rule in force at `at_ms`: the last one effective by then."""
    found = None
    for rule in rules:
        if rule.effective_ms <= at_ms:
            found = rule
    return found
