"""The checks made on each transfer by the audit, as pure functions of what was read.

Each transfer is signed by a key of the right owner, not revoked, its stored columns are
those of its signed order, and its postings are exactly those the order implies. The
results also say what it adds to each balance and what its log leaf is.

This module imports no database code: the audit runs it in worker processes (one per
core: the Ed25519 checks are most of the cost), which start in a few tens of milliseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import nacl.exceptions
import nacl.signing

from ledger.audit_report import Finding
from ledger.chart import Chart
from ledger.errors import LedgerError
from ledger.leaves import transfer_leaf
from ledger.merkle import leaf_hash
from ledger.operations import OPERATIONS, Context, Original
from ledger.orders import MAX_SAFE_INTEGER, Order

# id, kind, initiator, client_id, key_id, nonce, order_json, signature, ref_id, created_ms
Row = tuple[Any, ...]
Leg = tuple[str, str, int]  # account code, currency, amount
Work = tuple[Row, list[Leg], Original | None]


@dataclass(frozen=True)
class KeyState:
    owner: str
    public_key: bytes
    revoked_ms: int | None


@dataclass
class Transfers:
    """What the transfers add up to, for the balance and log checks."""

    count: int = 0
    sums: dict[str, int] = field(default_factory=dict)  # account code -> net postings
    leaves: dict[int, bytes] = field(default_factory=dict)  # transfer id -> leaf hash
    findings: list[Finding] = field(default_factory=list)

    def add(self, other: Transfers) -> None:
        self.count += other.count
        for code, amount in other.sums.items():
            self.sums[code] = self.sums.get(code, 0) + amount
        self.leaves.update(other.leaves)
        self.findings.extend(other.findings)


class TransferChecks:
    def __init__(self, local: str, origin: str, keys: dict[str, KeyState]) -> None:
        self.chart, self.origin, self.keys = Chart(local), origin, keys
        self.verifiers = {k: nacl.signing.VerifyKey(s.public_key) for k, s in keys.items()}

    def check(self, work: list[Work]) -> Transfers:
        result = Transfers()
        sums = result.sums
        for row, legs, original in work:
            tid = row[0]
            result.count += 1
            for code, _, amount in legs:
                sums[code] = sums.get(code, 0) + amount
            result.leaves[tid] = leaf_hash(transfer_leaf(tid, row[9], row[6], row[7], legs))
            problem = self._check(row, legs, original)
            if problem:
                check, message = problem
                result.findings.append(
                    Finding(check, f"transfer {tid}: {message}", transfer_id=tid)
                )
        return result

    def _check(
        self, row: Row, lines: list[Leg], original: Original | None
    ) -> tuple[str, str] | None:
        tid, kind, initiator, client_id, key_id, nonce, order_json, sig, ref, created = row
        if tid < 1:
            return "order", "transfer ids start at 1: the ledger did not write this row"
        key = self.keys.get(key_id)
        if key is None:
            return "signature", f"signed by unknown key {key_id}"
        message = order_json.encode()
        try:
            self.verifiers[key_id].verify(message, sig)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return "signature", "the signature does not match the stored order"
        try:
            fields = json.loads(order_json)
            order = Order(
                fields,
                message,
                sig,
                fields["kind"],
                fields["id"],
                fields["key"],
                fields["nonce"],
                fields["expires"],
            )
        except (ValueError, KeyError, TypeError):
            return "order", "the stored order is unreadable"
        if (
            (kind, client_id, key_id, nonce, ref, key.owner)
            != (
                order.kind,
                order.client_id,
                order.key_id,
                order.nonce,
                fields.get("ref"),
                initiator,
            )
        ) or fields.get("node") != self.origin:
            return "order", "stored columns differ from the signed order"
        if key.revoked_ms is not None and key.revoked_ms < created:
            return "signature", "signed with a key revoked before the transfer"
        if created > order.expires * 1000:
            return "order", "posted after the order expired"
        return self._check_postings(order, key, lines, original)

    def _check_postings(
        self, order: Order, key: KeyState, lines: list[Leg], original: Original | None
    ) -> tuple[str, str] | None:
        sums: dict[str, int] = {}
        legs: dict[str, int] = {}
        for code, currency, amount in lines:
            sums[currency] = sums.get(currency, 0) + amount
            legs[code] = amount
        if any(sums.values()):
            return "postings", f"postings do not sum to zero ({_fmt(sums)})"
        op = OPERATIONS.get(order.kind)
        if op is None:
            return "order", f"unknown operation {order.kind!r}"
        if key.owner not in op.signers(order):
            return "signature", f"a key of {key.owner} may not sign a {order.kind}"
        try:
            expected = op.plan(order, Context(self.chart, MAX_SAFE_INTEGER, original)).postings
        except LedgerError as exc:
            return "order", f"the signed order is not valid: {exc.message}"
        if expected != legs:
            return "postings", (
                f"postings {_fmt(legs)} differ from those its order implies {_fmt(expected)}"
            )
        return None


def _fmt(amounts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:+d}" for k, v in sorted(amounts.items()))


# In a worker process: the checks, made once from what the pool's initializer received.
_worker: TransferChecks | None = None


def start_worker(local: str, origin: str, keys: dict[str, KeyState]) -> None:
    global _worker
    _worker = TransferChecks(local, origin, keys)


def check_in_worker(work: list[Work]) -> Transfers:
    assert _worker is not None, "start_worker runs first, as the pool's initializer"
    return _worker.check(work)
