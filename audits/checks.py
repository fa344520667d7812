"""The checks made on each transfer by the audit, as pure functions of what was read.

Each transfer is signed by a key of the right owner, not revoked, its stored columns are
those of its signed order, and its postings are exactly those the order implies. The
results also say what it adds to each balance and what its log leaf is.

This module imports no database code: the audit runs it in worker processes (one per
core: the Ed25519 checks are most of the cost), which start in a few tens of milliseconds.
Per transfer, the Python here costs about a fifth of what verifying its signature does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nacl.bindings
import nacl.exceptions
import orjson

from audits.report import Finding, finding
from ledger.authorisations import Endorsement
from ledger.chart import Chart
from ledger.errors import LedgerError
from ledger.leaves import transfer_leaf
from ledger.merkle import leaf_hash
from ledger.operations import OPERATIONS, Context, Original
from ledger.orders import MAX_SAFE_INTEGER, Order

# id, kind, initiator, client_id, key_id, nonce, order_json, signature, ref_id, created_ms,
# once_key
Row = tuple[Any, ...]
Leg = tuple[str, str, int]  # account code, currency, amount
Work = tuple[Row, list[Leg], Original | None]
Sealed = dict[int, list[tuple[int, bytes]]]  # transfer id -> its leaves in the log (idx, hash)
PUBLIC_KEY_SIZE = nacl.bindings.crypto_sign_PUBLICKEYBYTES
SIGNATURE_SIZE = nacl.bindings.crypto_sign_BYTES


@dataclass(frozen=True)
class KeyState:
    owner: str
    public_key: bytes
    revoked_ms: int | None
    registered_ms: int | None = None


@dataclass
class Transfers:
    """What the transfers add up to, for the balance and log checks. Each transfer's leaf
    is compared with the one the log holds for it where it is checked: only what differs
    comes back, so that nothing here grows with the ledger."""

    count: int = 0
    sums: dict[str, int] = field(default_factory=dict)  # account code -> net postings
    findings: list[Finding] = field(default_factory=list)
    unsealed: list[int] = field(default_factory=list)  # transfers without a leaf
    flagged: list[int] = field(default_factory=list)  # leaves found wrong (idx)
    resealed: dict[int, bytes] = field(default_factory=dict)  # idx -> the leaf its entry gives

    def add(self, other: Transfers) -> None:
        self.count += other.count
        for code, amount in other.sums.items():
            self.sums[code] = self.sums.get(code, 0) + amount
        self.findings.extend(other.findings)
        self.unsealed.extend(other.unsealed)
        self.flagged.extend(other.flagged)
        self.resealed.update(other.resealed)


def leaf_of(row: Row, legs: list[Leg]) -> bytes:
    """The log leaf of a stored transfer, as the sealer makes it."""
    return leaf_hash(transfer_leaf(row[0], row[9], row[6], row[7], legs))


class TransferChecks:
    def __init__(self, local: str, origin: str, keys: dict[str, KeyState]) -> None:
        self.chart, self.origin, self.keys = Chart(local), origin, keys
        self.plain = Context(self.chart, MAX_SAFE_INTEGER)  # for orders without a reference
        # libsodium reads 32 bytes of key whatever it is given: a key of another length never
        # verifies anything.
        self.public_keys = {
            k: s.public_key for k, s in keys.items() if len(s.public_key) == PUBLIC_KEY_SIZE
        }

    def check(self, work: list[Work], sealed: Sealed) -> Transfers:
        """Check `work`; `sealed` holds the log's leaves naming the transfers of its id
        range (taken from it as they are compared)."""
        result = Transfers(len(work))
        sums, findings = result.sums, result.findings
        for row, legs, original in work:
            tid = row[0]
            for code, _, amount in legs:
                sums[code] = sums.get(code, 0) + amount
            _compare_leaf(tid, leaf_of(row, legs), sealed.pop(tid, []), result)
            problem = self._check(row, legs, original)
            if problem:
                findings.append(problem)
        for tid, placed in sealed.items():  # leaves naming a transfer that is not stored
            for idx, _ in placed:
                findings.append(
                    finding(
                        "log",
                        "leaf {idx}: transfer {transfer} is missing",
                        leaf=idx,
                        idx=idx,
                        transfer=tid,
                        transfer_id=tid,
                    )
                )
                result.flagged.append(idx)
        return result

    def _check(self, row: Row, lines: list[Leg], original: Original | None) -> Finding | None:
        """What is wrong with one transfer, if anything: each message names the transfer
        first ("transfer {transfer}: ...")."""
        tid, kind, initiator, client_id, key_id, nonce, order_json, sig, ref, created, once = row
        at: dict[str, Any] = {"transfer": tid, "transfer_id": tid}
        if tid < 1:
            return finding(
                "order",
                "transfer {transfer}: transfer ids start at 1: the ledger did not write this row",
                **at,
            )
        key = self.keys.get(key_id)
        if key is None:
            return finding(
                "signature", "transfer {transfer}: signed by unknown key {key}", key=key_id, **at
            )
        message, sig = order_json.encode(), bytes(sig)  # bytes, whatever the driver gave
        if not self._verifies(key_id, message, sig):
            return finding(
                "signature",
                "transfer {transfer}: the signature does not match the stored order",
                **at,
            )
        try:
            fields = orjson.loads(message)  # stored orders are canonical JSON
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
            return finding("order", "transfer {transfer}: the stored order is unreadable", **at)
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
            return finding(
                "order", "transfer {transfer}: stored columns differ from the signed order", **at
            )
        if key.revoked_ms is not None and key.revoked_ms < created:
            return finding(
                "signature",
                "transfer {transfer}: signed with a key revoked before the transfer",
                **at,
            )
        if created > order.expires * 1000:
            return finding("order", "transfer {transfer}: posted after the order expired", **at)
        op = OPERATIONS.get(order.kind)
        if op is not None and op.endorsement is not None:
            problem = self._check_endorsement(tid, op.endorsement, fields, created)
            if problem is not None:
                return problem
        return self._check_postings(tid, order, key, lines, original, once)

    def _check_endorsement(
        self,
        tid: int,
        read: Callable[[dict[str, Any]], Endorsement],
        fields: dict[str, Any],
        created: int,
    ) -> Finding | None:
        """The payer's authorisation a collection carries: signed by a key of the payer,
        live when the collection was posted, for this node."""
        at: dict[str, Any] = {"transfer": tid, "transfer_id": tid}
        try:
            endorsed = read(fields)
        except LedgerError as exc:
            return finding(
                "order",
                "transfer {transfer}: the authorisation is not valid: {reason}",
                **_reason(exc),
                **at,
            )
        key = self.keys.get(endorsed.key_id)
        if key is None or not self._verifies(endorsed.key_id, endorsed.message, endorsed.signature):
            return finding(
                "signature",
                "transfer {transfer}: the authorisation's signature does not match it",
                **at,
            )
        if key.owner != endorsed.owner or endorsed.node != self.origin:
            return finding(
                "signature",
                "transfer {transfer}: authorised by a key of {signer}, not of {payer}",
                signer=key.owner,
                payer=endorsed.owner,
                **at,
            )
        if key.revoked_ms is not None and key.revoked_ms < created:
            return finding(
                "signature",
                "transfer {transfer}: authorised with a key revoked before the transfer",
                **at,
            )
        return None

    def _verifies(self, key_id: str, message: bytes, signature: bytes) -> bool:
        public_key = self.public_keys.get(key_id)
        if public_key is None or len(signature) != SIGNATURE_SIZE:
            return False
        try:  # the bare libsodium call: no key object made per transfer
            nacl.bindings.crypto_sign_open(signature + message, public_key)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return False
        return True

    def _check_postings(
        self,
        tid: int,
        order: Order,
        key: KeyState,
        lines: list[Leg],
        original: Original | None,
        once: str | None,
    ) -> Finding | None:
        at: dict[str, Any] = {"transfer": tid, "transfer_id": tid}
        sums: dict[str, int] = {}
        legs: dict[str, int] = {}
        for code, currency, amount in lines:
            sums[currency] = sums.get(currency, 0) + amount
            legs[code] = amount
        if any(sums.values()):
            return finding(
                "postings",
                "transfer {transfer}: postings do not sum to zero ({sums})",
                sums=_fmt(sums),
                **at,
            )
        op = OPERATIONS.get(order.kind)
        if op is None:
            return finding(
                "order",
                "transfer {transfer}: unknown operation {kind}",
                kind=repr(order.kind),
                **at,
            )
        if key.owner not in op.signers(order):
            return finding(
                "signature",
                "transfer {transfer}: a key of {signer} may not sign a {kind}",
                signer=key.owner,
                kind=order.kind,
                **at,
            )
        try:
            context = self.plain
            if original is not None:
                context = Context(self.chart, MAX_SAFE_INTEGER, original)
            plan = op.plan(order, context)
        except LedgerError as exc:
            return finding(
                "order",
                "transfer {transfer}: the signed order is not valid: {reason}",
                **_reason(exc),
                **at,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            if original is None:
                raise
            # Operations trust what the ledger posted; an altered original can break that.
            return finding(
                "order",
                "transfer {transfer}: transfer {ref}, which it refers to, is not as it was posted",
                ref=original.id,
                **at,
            )
        if plan.once != once:
            return finding(
                "order",
                "transfer {transfer}: its one-time token {token} is not its order's, {expected}",
                token=repr(once),
                expected=repr(plan.once),
                **at,
            )
        expected = plan.postings
        if expected != legs:
            return finding(
                "postings",
                "transfer {transfer}: postings {legs} differ from those its order implies "
                "{expected}",
                legs=_fmt(legs),
                expected=_fmt(expected),
                **at,
            )
        return None


def _compare_leaf(
    tid: int, leaf: bytes, placed: list[tuple[int, bytes]], result: Transfers
) -> None:
    if not placed:
        result.unsealed.append(tid)
        return
    if len(placed) == 1 and placed[0][1] == leaf:  # as nearly always
        return
    (idx, digest), *again = sorted(placed)
    if bytes(digest) != leaf:
        result.findings.append(
            finding(
                "log",
                "leaf {idx}: transfer {transfer} differs from what was sealed",
                leaf=idx,
                idx=idx,
                transfer=tid,
                transfer_id=tid,
            )
        )
        result.flagged.append(idx)
        result.resealed[idx] = leaf
    for other, _ in again:
        result.findings.append(
            finding(
                "log",
                "leaf {idx}: transfer {transfer} is in the log a second time (first at leaf "
                "{first})",
                leaf=other,
                idx=other,
                transfer=tid,
                first=idx,
                transfer_id=tid,
            )
        )
        result.flagged.append(other)


def _reason(exc: LedgerError) -> dict[str, Any]:
    """The ledger's reason for refusing an order: its English message, and what the page
    says it by in the reader's language (`web.refusals.ledger_reason`)."""
    said: dict[str, Any] = {"reason": exc.message, "reason_code": exc.code}
    field = exc.params.get("field")
    if isinstance(field, str):
        said["reason_field"] = field
    return said


def _fmt(amounts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:+d}" for k, v in sorted(amounts.items()))
