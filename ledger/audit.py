"""The audit: re-derive everything the ledger claims from what is stored, and say what differs.

Checked: every key event (signature, authority), every transfer (signature by a key of
the right owner, not revoked, postings exactly those its order implies, zero sum), every
stored balance against replayed postings, no forbidden negative balance, the backing
invariant, and the Merkle log (every leaf recomputed from its transfer, every stored node
from the leaves, every checkpoint's root and signature). Transfers are checked in ranges,
by worker processes when there are many, all reading one database snapshot.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import nacl.exceptions
import nacl.signing
from sqlalchemy import Connection, Engine, create_engine, func, select, text, tuple_
from sqlalchemy.pool import NullPool

from ledger import repository as repo
from ledger.canonical import canonical, unb64
from ledger.chart import EUR, RULES, Chart, kind_of
from ledger.checkpoint import CheckpointError, open_checkpoint, verifier_key
from ledger.errors import LedgerError
from ledger.leaves import key_event_leaf, transfer_leaf
from ledger.merkle import MemoryNodes, leaf_hash, root
from ledger.models import (
    accounts,
    checkpoints,
    key_events,
    log_leaves,
    log_nodes,
    log_queue,
)
from ledger.models import (
    keys as keys_table,
)
from ledger.models import postings as postings_table
from ledger.models import transfers as transfers_table
from ledger.operations import NODE, OPERATIONS, Context, Original
from ledger.orders import MAX_SAFE_INTEGER, Order
from ledger.service import KEY_OFFICERS

CHUNK = 5_000  # transfers read per query
PARALLEL_FROM = 20_000  # below this, worker processes cost more than they save


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
        result["findings"] = [{k: v for k, v in asdict(f).items() if v is not None}
                              for f in self.findings]
        return result


@dataclass(frozen=True)
class KeyState:
    owner: str
    public_key: bytes
    revoked_ms: int | None


@dataclass
class RangeResult:
    count: int = 0
    sums: dict[str, int] = field(default_factory=dict)
    leaves: dict[int, bytes] = field(default_factory=dict)  # transfer id -> leaf hash
    findings: list[Finding] = field(default_factory=list)


Progress = Callable[[int, int], None]


def audit(engine: Engine, *, node_public_key: bytes | None = None,
          witnessed: Sequence[str] = (), workers: int = 2,
          progress: Progress | None = None) -> Report:
    """Audit the ledger in `engine`'s database.

    `node_public_key` is the key the operator trusts (from the node's key file); without
    it, the genesis key event's key is used. `witnessed` are signed checkpoints kept
    outside the database (by the node, by residents): the log must still contain each."""
    started = time.perf_counter()
    report = Report()
    with engine.connect().execution_options(sqlite_deferred=True) as conn:
        snapshot = _snapshot(conn)
        meta = repo.read_meta(conn)
        chart, origin = Chart(meta["currency"]), meta["origin"]
        keys, event_leaves = _replay_keys(conn, origin, node_public_key, report)
        low, top = conn.execute(select(func.min(transfers_table.c.id),
                                       func.max(transfers_table.c.id))).one()
        ranges = ([] if top is None else
                  [(lo, min(lo + CHUNK - 1, top)) for lo in range(low, top + 1, CHUNK)])
        url = engine.url.render_as_string(hide_password=False)
        result = _audit_ranges(conn, url, snapshot, ranges, chart, origin, keys, workers,
                               progress)
        report.transfers = result.count
        report.findings.extend(result.findings)
        _check_replays(conn, report)
        _check_accounts(conn, chart, result.sums, report)
        _check_log(conn, origin, keys, node_public_key, result.leaves, event_leaves, report,
                   witnessed)
    report.seconds = time.perf_counter() - started
    report.findings.sort(key=lambda f: (f.transfer_id or 0, f.check, f.message))
    return report


def _snapshot(conn: Connection) -> str | None:
    """One consistent view for the whole audit. PostgreSQL exports the snapshot to the
    workers; on SQLite, writers are serialised and ids grow in commit order, so the
    largest id read now bounds the same view."""
    if conn.dialect.name != "postgresql":
        conn.execute(select(func.count()).select_from(transfers_table))  # start the read
        return None
    conn.commit()
    conn.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    return str(conn.scalar(text("SELECT pg_export_snapshot()")))


# -- keys ----------------------------------------------------------------------------------

def _replay_keys(conn: Connection, origin: str, trusted: bytes | None, report: Report
                 ) -> tuple[dict[str, KeyState], dict[int, bytes]]:
    """Rebuild the key registry from the signed key events; compare it with the table."""
    keys: dict[str, KeyState] = {}
    leaves: dict[int, bytes] = {}
    for row in conn.execute(select(key_events).order_by(key_events.c.id)).mappings():
        report.key_events += 1
        problem = _apply_key_event(row, keys, origin, trusted)
        if problem:
            report.findings.append(Finding("keys", f"key event {row['id']}: {problem}"))
        leaves[row["id"]] = leaf_hash(key_event_leaf(row["id"], row["created_ms"],
                                                     row["event_json"], row["signature"]))
    for row in conn.execute(select(keys_table)).mappings():
        state = keys.get(row["key_id"])
        stored = KeyState(row["owner"], bytes(row["public_key"]), row["revoked_ms"])
        if state != stored:
            report.findings.append(Finding(
                "keys", f"key {row['key_id']} differs from its signed key events"))
    for missing in keys.keys() - {r for r in conn.scalars(select(keys_table.c.key_id))}:
        report.findings.append(Finding("keys", f"key {missing} is missing from the key table"))
    return keys, leaves


def _apply_key_event(row: Any, keys: dict[str, KeyState], origin: str,
                     trusted: bytes | None) -> str | None:
    try:
        event = json.loads(row["event_json"])
        public_key = unb64(event["public_key"])
        kid, owner, action = event["key"], event["owner"], event["action"]
    except (ValueError, KeyError, TypeError):
        return "unreadable event"
    if canonical(event).decode() != row["event_json"] or event.get("node") != origin:
        return "not a canonical event of this node"
    if (kid, action, event["signer"]) != (row["key_id"], row["action"], row["signer_key_id"]):
        return "stored columns differ from the signed event"
    genesis = not keys
    if genesis:  # the node key registers itself first
        if owner != NODE or event["signer"] != kid or (trusted and public_key != trusted):
            return "the log does not start with the trusted node key"
        signer = KeyState(owner, public_key, None)
    else:
        signer = keys.get(event["signer"])  # type: ignore[assignment]
        if signer is None or signer.revoked_ms is not None:
            return "signed by an unknown or revoked key"
        if signer.owner != owner and signer.owner not in KEY_OFFICERS:
            return f"a key of {signer.owner} may not change keys of {owner}"
    if not _verifies(signer.public_key, row["event_json"].encode(), row["signature"]):
        return "bad signature"
    if action == "register":
        keys[kid] = KeyState(owner, public_key, None)
    elif kid in keys:
        keys[kid] = KeyState(keys[kid].owner, keys[kid].public_key, row["created_ms"])
    return None


def _verifies(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, bytes(signature))
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


# -- transfers -----------------------------------------------------------------------------

def _audit_ranges(conn: Connection, url: str, snapshot: str | None,
                  ranges: list[tuple[int, int]], chart: Chart, origin: str,
                  keys: dict[str, KeyState], workers: int, progress: Progress | None
                  ) -> RangeResult:
    total = ranges[-1][1] - ranges[0][0] + 1 if ranges else 0
    merged = RangeResult()
    if workers <= 1 or total < PARALLEL_FROM or len(ranges) < 2:
        results: Iterable[RangeResult] = (
            RangeAuditor(conn, chart, origin, keys).run(lo, hi) for lo, hi in ranges)
        return _merge(results, merged, total, progress)
    context = multiprocessing.get_context("spawn")  # no threads or sockets inherited
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(_audit_range_in_worker, url, snapshot, lo, hi, chart.local,
                               origin, keys) for lo, hi in ranges]
        return _merge((f.result() for f in futures), merged, total, progress)


def _merge(results: Iterable[RangeResult], merged: RangeResult, total: int,
           progress: Progress | None) -> RangeResult:
    for part in results:
        merged.count += part.count
        for code, amount in part.sums.items():
            merged.sums[code] = merged.sums.get(code, 0) + amount
        merged.leaves.update(part.leaves)
        merged.findings.extend(part.findings)
        if progress is not None:
            progress(merged.count, total)
    return merged


def _audit_range_in_worker(url: str, snapshot: str | None, lo: int, hi: int, local: str,
                           origin: str, keys: dict[str, KeyState]) -> RangeResult:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if snapshot is not None:
                conn.commit()
                conn.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            return RangeAuditor(conn, Chart(local), origin, keys).run(lo, hi)
    finally:
        engine.dispose()


class RangeAuditor:
    """Checks the transfers with ids in [lo, hi]: signatures, orders, postings, leaves."""

    def __init__(self, conn: Connection, chart: Chart, origin: str,
                 keys: dict[str, KeyState]) -> None:
        self.conn, self.chart, self.origin, self.keys = conn, chart, origin, keys
        self.codes = {r.id: r.code for r in conn.execute(select(accounts.c.id, accounts.c.code))}
        self.verifiers = {k: nacl.signing.VerifyKey(s.public_key) for k, s in keys.items()}

    def run(self, lo: int, hi: int) -> RangeResult:
        result = RangeResult()
        t = transfers_table
        rows = self.conn.execute(select(t).where(t.c.id.between(lo, hi)).order_by(t.c.id)).all()
        legs: dict[int, dict[str, int]] = {row.id: {} for row in rows}
        currencies: dict[int, list[tuple[str, str, int]]] = {row.id: [] for row in rows}
        p = postings_table
        for tid, account_id, currency, amount in self.conn.execute(
                select(p.c.transfer_id, p.c.account_id, p.c.currency, p.c.amount)
                .where(p.c.transfer_id.between(lo, hi))):
            code = self.codes.get(account_id, f"#{account_id}")
            if tid not in legs:
                result.findings.append(Finding("postings", f"postings of a missing transfer "
                                               f"{tid}", transfer_id=tid))
                continue
            legs[tid][code] = amount
            currencies[tid].append((code, currency, amount))
        originals = self._originals({row.ref_id for row in rows if row.ref_id is not None})
        for row in rows:
            result.count += 1
            for code, amount in legs[row.id].items():
                result.sums[code] = result.sums.get(code, 0) + amount
            result.leaves[row.id] = leaf_hash(transfer_leaf(
                row.id, row.created_ms, row.order_json, row.signature, currencies[row.id]))
            problem = self._check(row, legs[row.id], currencies[row.id], originals)
            if problem:
                check, message = problem
                result.findings.append(Finding(check, f"transfer {row.id}: {message}",
                                               transfer_id=row.id))
        return result

    def _originals(self, ref_ids: set[int]) -> dict[int, Original]:
        if not ref_ids:
            return {}
        stored = repo.transfers_by_id(self.conn, ref_ids)
        legs = repo.postings_of(self.conn, stored.keys())
        return {i: Original(i, s.kind, s.initiator, s.fields, legs[i]) for i, s in stored.items()}

    def _check(self, row: Any, legs: dict[str, int], lines: list[tuple[str, str, int]],
               originals: dict[int, Original]) -> tuple[str, str] | None:
        if row.id < 1:
            return "order", "transfer ids start at 1: the ledger did not write this row"
        key = self.keys.get(row.key_id)
        if key is None:
            return "signature", f"signed by unknown key {row.key_id}"
        try:
            self.verifiers[row.key_id].verify(row.order_json.encode(), bytes(row.signature))
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return "signature", "the signature does not match the stored order"
        try:
            fields = json.loads(row.order_json)
            order = Order(fields, row.order_json.encode(), bytes(row.signature), fields["kind"],
                          fields["id"], fields["key"], fields["nonce"], fields["expires"])
        except (ValueError, KeyError, TypeError):
            return "order", "the stored order is unreadable"
        stored = (row.kind, row.client_id, row.key_id, row.nonce, row.ref_id, key.owner)
        signed = (order.kind, order.client_id, order.key_id, order.nonce, fields.get("ref"),
                  row.initiator)
        if stored != signed or fields.get("node") != self.origin:
            return "order", "stored columns differ from the signed order"
        if key.revoked_ms is not None and key.revoked_ms < row.created_ms:
            return "signature", "signed with a key revoked before the transfer"
        if row.created_ms > order.expires * 1000:
            return "order", "posted after the order expired"
        return self._check_postings(row, order, key, legs, lines, originals)

    def _check_postings(self, row: Any, order: Order, key: KeyState, legs: dict[str, int],
                        lines: list[tuple[str, str, int]], originals: dict[int, Original]
                        ) -> tuple[str, str] | None:
        sums: dict[str, int] = {}
        for _code, currency, amount in lines:
            sums[currency] = sums.get(currency, 0) + amount
        if any(sums.values()):
            return "postings", f"postings do not sum to zero ({_fmt(sums)})"
        op = OPERATIONS.get(order.kind)
        if op is None:
            return "order", f"unknown operation {order.kind!r}"
        if key.owner not in op.signers(order):
            return "signature", f"a key of {key.owner} may not sign a {order.kind}"
        original = originals.get(row.ref_id) if row.ref_id is not None else None
        try:
            expected = op.plan(order, Context(self.chart, MAX_SAFE_INTEGER, original)).postings
        except LedgerError as exc:
            return "order", f"the signed order is not valid: {exc.message}"
        if expected != legs:
            return "postings", (f"postings {_fmt(legs)} differ from those its order implies "
                                 f"{_fmt(expected)}")
        return None


def _fmt(amounts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:+d}" for k, v in sorted(amounts.items()))


# -- what must happen once ------------------------------------------------------------------

def _check_replays(conn: Connection, report: Report) -> None:
    """An order is posted once (key + nonce, initiator + client id), a transfer is paid out
    or corrected once, and refunds never exceed their payment. The database's unique keys
    say so too, but an audit does not take the schema's word for it."""
    t, p = transfers_table, postings_table
    once = (((t.c.key_id, t.c.nonce), "replays transfer {} (same key and nonce)", None),
            ((t.c.initiator, t.c.client_id), "replays transfer {} (same client id)", None),
            ((t.c.ref_id,), "settles transfer {} a second time", ("payout", "correction")))
    for columns, message, kinds in once:
        query = select(t.c.id, *columns).order_by(t.c.id)
        if kinds:
            query = query.where(t.c.kind.in_(kinds), t.c.ref_id.is_not(None))
        dupes = select(*columns).group_by(*columns).having(func.count() > 1)
        if kinds:
            dupes = dupes.where(t.c.kind.in_(kinds))
        query = query.where(tuple_(*columns).in_(dupes))
        first: dict[tuple[Any, ...], int] = {}
        for row in conn.execute(query):
            key = tuple(row[1:])
            if key in first:
                shown = first[key] if kinds is None else key[0]
                report.findings.append(Finding("order", f"transfer {row.id} "
                                               + message.format(shown), transfer_id=row.id))
            else:
                first[key] = row.id
    paid = select(p.c.transfer_id, func.sum(p.c.amount).label("paid")).where(
        p.c.amount > 0).group_by(p.c.transfer_id).subquery()
    refunds = (select(t.c.ref_id, func.sum(p.c.amount), func.max(t.c.id), paid.c.paid)
               .join(p, p.c.transfer_id == t.c.id).join(paid, paid.c.transfer_id == t.c.ref_id)
               .where(t.c.kind == "refund", p.c.amount > 0)
               .group_by(t.c.ref_id, paid.c.paid))
    for ref, refunded, last, amount in conn.execute(refunds):
        if refunded > amount:
            report.findings.append(Finding("order", f"transfer {last}: refunds of payment "
                                           f"{ref} add up to {refunded}, more than its "
                                           f"{amount}", transfer_id=last))


# -- accounts and backing ------------------------------------------------------------------

def _check_accounts(conn: Connection, chart: Chart, sums: dict[str, int], report: Report
                    ) -> None:
    stored = {r["code"]: r for r in repo.all_accounts(conn)}
    report.accounts = len(stored)
    backing = outstanding = 0
    for code in sorted(stored.keys() | sums.keys()):
        row, replayed = stored.get(code), sums.get(code, 0)
        if row is None:
            report.findings.append(Finding("balance", f"postings to unknown account {code}",
                                           account=code))
            continue
        if row["balance"] != replayed:
            report.findings.append(Finding(
                "balance", f"account {code}: stored balance {row['balance']}, "
                f"history gives {replayed}", account=code))
        try:
            rule = RULES[kind_of(code)]
        except LedgerError:
            report.findings.append(Finding("balance", f"{code} is outside the chart",
                                           account=code))
            continue
        if replayed < 0 and not rule.may_go_negative:
            report.findings.append(Finding("balance", f"account {code} is below zero "
                                           f"({replayed})", account=code))
        if row["currency"] != chart.currency_of(code) or row["kind"] != kind_of(code).value:
            report.findings.append(Finding("balance", f"account {code} has the wrong "
                                           "currency or kind", account=code))
        backing += replayed if rule.backing else 0
        outstanding += replayed if rule.outstanding else 0
    if backing < outstanding:
        report.findings.append(Finding(
            "backing", f"{outstanding} {chart.local} cents outstanding but only {backing} "
            f"{EUR} cents in reserve"))


# -- the log -------------------------------------------------------------------------------

def _check_log(conn: Connection, origin: str, keys: dict[str, KeyState],
               trusted: bytes | None, transfer_leaves: dict[int, bytes],
               event_leaves: dict[int, bytes], report: Report,
               witnessed: Sequence[str]) -> None:
    recomputed: list[bytes] = []
    entries: list[tuple[int | None, int | None]] = []  # (transfer id, key event id) per leaf
    flagged: set[int] = set()
    sealed_t: set[int] = set()
    sealed_e: set[int] = set()
    for row in conn.execute(select(log_leaves).order_by(log_leaves.c.idx)).mappings():
        while len(recomputed) < row["idx"]:  # a hole: keep positions, flag it
            gap = len(recomputed)
            report.findings.append(Finding("log", f"leaf {gap} is missing", leaf=gap))
            recomputed.append(bytes(32))
            entries.append((None, None))
            flagged.add(gap)
        idx = len(recomputed)
        tid, eid = row["transfer_id"], row["key_event_id"]
        expected = transfer_leaves.get(tid) if tid is not None else event_leaves.get(eid)
        what = f"transfer {tid}" if tid is not None else f"key event {eid}"
        if expected is None:
            report.findings.append(Finding("log", f"leaf {idx}: {what} is missing",
                                           transfer_id=tid, leaf=idx))
            flagged.add(idx)
            expected = bytes(row["hash"])
        elif expected != bytes(row["hash"]):
            report.findings.append(Finding("log", f"leaf {idx}: {what} differs from what "
                                           "was sealed", transfer_id=tid, leaf=idx))
            flagged.add(idx)
        (sealed_t if tid is not None else sealed_e).add(tid if tid is not None else eid)
        recomputed.append(expected)
        entries.append((tid, eid))
    report.leaves = len(recomputed)
    queued_t = set(conn.scalars(select(log_queue.c.transfer_id).where(
        log_queue.c.transfer_id.is_not(None))))
    queued_e = set(conn.scalars(select(log_queue.c.key_event_id).where(
        log_queue.c.key_event_id.is_not(None))))
    report.unsealed = len(queued_t) + len(queued_e)
    for tid in sorted(transfer_leaves.keys() - sealed_t - queued_t):
        report.findings.append(Finding("log", f"transfer {tid} is neither in the log nor "
                                       "waiting for it", transfer_id=tid))
    for eid in sorted(event_leaves.keys() - sealed_e - queued_e):
        report.findings.append(Finding("log", f"key event {eid} is not in the log"))
    nodes = MemoryNodes.from_leaves(recomputed)
    _check_nodes(conn, nodes, flagged, entries, report)
    node_key = trusted or next((k.public_key for k in keys.values() if k.owner == NODE), None)
    verifier = verifier_key(origin, node_key) if node_key else ""
    _check_checkpoints(conn, origin, verifier, nodes, len(recomputed), report)
    _check_witnessed(witnessed, origin, verifier, nodes, len(recomputed), report)


def _check_witnessed(notes: Sequence[str], origin: str, verifier: str, nodes: MemoryNodes,
                     size: int, report: Report) -> None:
    """Checkpoints kept outside the database anchor the log: removing its last entries
    and their checkpoints leaves a log consistent with itself, but not with these."""
    for note in notes:
        try:
            seen = open_checkpoint(note, verifier, origin=origin)
        except CheckpointError as exc:
            report.findings.append(Finding("checkpoint", f"a witnessed checkpoint: {exc}"))
            continue
        if seen.size > size:
            report.findings.append(Finding(
                "checkpoint", f"a checkpoint of size {seen.size} was witnessed but the log "
                f"has only {size} leaves: entries were removed"))
        elif root(seen.size, nodes) != seen.root:
            report.findings.append(Finding(
                "checkpoint", f"the log's first {seen.size} leaves are not those of the "
                "checkpoint witnessed at that size"))


def _check_nodes(conn: Connection, nodes: MemoryNodes, flagged: set[int],
                 entries: list[tuple[int | None, int | None]], report: Report) -> None:
    """Stored inner nodes must be those of the leaves: a difference shows reordering.

    Only the smallest differing subtrees not already explained by a changed or missing
    leaf are reported, so one altered row gives one finding, not one per tree level."""
    size = len(entries)
    differing: list[tuple[int, int]] = []
    beyond = size
    for level, idx, digest in conn.execute(select(log_nodes.c.level, log_nodes.c.idx,
                                                  log_nodes.c.hash)):
        first, last = idx << level, ((idx + 1) << level) - 1
        if last >= size:  # sealed over leaves that are no longer there
            beyond = max(beyond, last + 1)
        elif nodes.perfect(level, idx) != bytes(digest):
            differing.append((first, last))
    if beyond > size:
        report.findings.append(Finding("log", f"the log was sealed up to at least leaf "
                                       f"{beyond - 1} but has only {size} leaves", leaf=size))
    differing.sort(key=lambda r: r[1] - r[0])
    reported: list[tuple[int, int]] = []
    for first, last in differing:
        if any(first <= leaf <= last for leaf in flagged) or any(
                first <= a and b <= last for a, b in reported):
            continue
        reported.append((first, last))
        inside = [t for t, _ in entries[first:last + 1] if t is not None]
        named = ", ".join(map(str, inside[:6])) + (", ..." if len(inside) > 6 else "")
        report.findings.append(Finding(
            "log", f"the log's leaves {first}..{last} (transfers {named or 'none'}) are not "
            "in the order they were sealed",
            transfer_id=inside[0] if len(inside) == 1 else None, leaf=first))


def _check_checkpoints(conn: Connection, origin: str, verifier: str, nodes: MemoryNodes,
                       size: int, report: Report) -> None:
    latest = intact = 0  # the largest checkpoint whose tree the log still has, before a break
    broken = False
    for row in conn.execute(select(checkpoints).order_by(checkpoints.c.tree_size)).mappings():
        report.checkpoints += 1
        tree_size = row["tree_size"]
        latest = max(latest, tree_size)
        try:
            note = open_checkpoint(row["note"], verifier, origin=origin)
        except CheckpointError as exc:
            report.findings.append(Finding("checkpoint", f"checkpoint {tree_size}: {exc}"))
            continue
        if note.size != tree_size or note.root != bytes(row["root"]):
            report.findings.append(Finding("checkpoint", f"checkpoint {tree_size}: stored "
                                           "size or root differs from the signed note"))
        elif tree_size > size or root(tree_size, nodes) != note.root:
            # The first broken checkpoint bounds where history changed.
            where = "" if broken else f" (a change among leaves {intact}..{tree_size - 1})"
            broken = True
            report.findings.append(Finding("checkpoint", f"checkpoint {tree_size}: the log "
                                           "no longer has the tree this checkpoint signed"
                                           + where))
        elif not broken:
            intact = tree_size
    if latest != size:
        report.findings.append(Finding("checkpoint", f"the log has {size} leaves but the "
                                       f"latest checkpoint signs {latest}"))
