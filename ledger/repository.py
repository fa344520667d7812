"""Every query of the ledger, in SQLAlchemy Core (the hot path has no ORM overhead)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, func, literal_column, or_, select, tuple_
from sqlalchemy.exc import DBAPIError

from ledger import bulk
from ledger.chart import Chart, kind_of
from ledger.models import (
    accounts,
    checkpoints,
    key_events,
    keys,
    log_leaves,
    log_nodes,
    log_queue,
    meta,
    postings,
    transfers,
)
from ledger.operations import Original

SEALER_LOCK = 0x50550001  # PostgreSQL advisory lock id held by the sealing transaction


@dataclass(frozen=True, slots=True)
class AccountRef:
    """The fixed facts of an account (everything but its balance), safe to cache."""

    id: int
    code: str
    currency: str
    kind: str
    may_go_negative: bool


@dataclass(frozen=True, slots=True)
class KeyRef:
    key_id: str
    owner: str
    public_key: bytes
    registered_ms: int


@dataclass(frozen=True, slots=True)
class StoredTransfer:
    id: int
    kind: str
    initiator: str
    client_id: str
    order_json: str
    created_ms: int

    @property
    def fields(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.order_json)
        return result


# -- meta ------------------------------------------------------------------------------------


def read_meta(conn: Connection) -> dict[str, str]:
    return {row.name: row.value for row in conn.execute(select(meta))}


def write_meta(conn: Connection, values: dict[str, str]) -> None:
    conn.execute(meta.insert(), [{"name": k, "value": v} for k, v in values.items()])


# -- accounts --------------------------------------------------------------------------------


def accounts_by_code(
    conn: Connection, codes: Collection[str], chart: Chart
) -> dict[str, AccountRef]:
    """The accounts of these codes that exist. What an account may do comes from its kind
    in the chart, never from its row: a row altered to let a wallet go negative changes
    nothing (and the audit reports it); a row whose currency differs from the chart's makes
    the database refuse postings to it (their foreign key names the currency)."""
    query = select(accounts.c.id, accounts.c.code).where(accounts.c.code.in_(list(codes)))
    return {
        r.code: AccountRef(
            r.id,
            r.code,
            chart.currency_of(r.code),
            kind_of(r.code).value,
            chart.may_go_negative(r.code),
        )
        for r in conn.execute(query)
    }


def insert_account(conn: Connection, ref: dict[str, Any]) -> int:
    result = conn.execute(accounts.insert().returning(accounts.c.id), ref)
    return int(result.scalar_one())


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a batch was judged on without reading under lock: the accounts it writes, what
    its judgment needs of their balances (by account id: exactly a value, or at least a
    floor), the keys that signed it. The write's round trip locks the accounts in id order
    and refuses to commit unless the balances still meet those needs and no key was
    revoked: `StaleBalances`."""

    accounts: set[int]
    balances: dict[int, int]
    keys: set[str]
    floors: dict[int, int] = field(default_factory=dict)


class StaleBalances(Exception):
    """A balance no longer meets what a judgment needed of it, or a key was revoked, since
    this process saw them: judge again."""


STALE = "SOU01"  # the SQLSTATE of sou_expect_balances' refusal (migrations 0006, 0008)


def lock_balances(
    conn: Connection, account_ids: Collection[int], key_ids: Collection[str]
) -> tuple[dict[int, int], set[str]]:
    """Balances of the accounts, locked until commit, in id order so that writers never
    deadlock (SQLite needs no row lock: its transaction already holds the database); and
    which of the keys are revoked (asked in the same round trip)."""
    if not account_ids:
        return {}, set()
    where, params = bulk.among(conn, "id", sorted(account_ids))
    lock = " FOR NO KEY UPDATE" if bulk.postgres(conn) else ""
    key_where, key_params = bulk.among(conn, "key_id", key_ids, "text")
    rows, revoked = bulk.fetch(
        conn,
        [
            (f"SELECT id, balance FROM accounts WHERE {where} ORDER BY id{lock}", params),
            (f"SELECT key_id FROM keys WHERE revoked_ms IS NOT NULL AND {key_where}", key_params),
        ],
    )
    return {row[0]: row[1] for row in rows}, {row[0] for row in revoked}


def balances(conn: Connection, codes: Collection[str] | None = None) -> dict[str, int]:
    query = select(accounts.c.code, accounts.c.balance)
    if codes is not None:
        query = query.where(accounts.c.code.in_(list(codes)))
    return {r.code: r.balance for r in conn.execute(query)}


def all_accounts(conn: Connection) -> list[RowMapping]:
    return list(conn.execute(select(accounts).order_by(accounts.c.id)).mappings())


# -- keys ------------------------------------------------------------------------------------


def key_by_id(conn: Connection, key_id: str) -> KeyRef | None:
    row = conn.execute(select(keys).where(keys.c.key_id == key_id)).first()
    return None if row is None else KeyRef(row.key_id, row.owner, row.public_key, row.registered_ms)


def key_row(conn: Connection, key_id: str, *, hold: bool = False) -> RowMapping | None:
    """The key's row; with `hold`, kept from being revoked until the transaction ends (on
    SQLite the transaction's write lock does it)."""
    query = select(keys).where(keys.c.key_id == key_id)
    if hold:
        query = query.with_for_update(read=True)
    return conn.execute(query).mappings().first()


def insert_key(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(keys.insert(), row)


def mark_revoked(conn: Connection, key_id: str, at_ms: int) -> None:
    conn.execute(keys.update().where(keys.c.key_id == key_id).values(revoked_ms=at_ms))


def insert_key_event(conn: Connection, row: dict[str, Any]) -> int:
    event_id = int(conn.execute(key_events.insert().returning(key_events.c.id), row).scalar_one())
    conn.execute(log_queue.insert(), {"key_event_id": event_id})
    return event_id


# -- transfers -------------------------------------------------------------------------------


def transfers_by_client_id(
    conn: Connection, pairs: Collection[tuple[str, str]]
) -> dict[tuple[str, str], StoredTransfer]:
    if not pairs:
        return {}
    query = select(*_stored_columns()).where(
        tuple_(transfers.c.initiator, transfers.c.client_id).in_(list(pairs))
    )
    return {(r.initiator, r.client_id): StoredTransfer(*r) for r in conn.execute(query)}


def used_nonces(conn: Connection, pairs: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
    if not pairs:
        return set()
    query = select(transfers.c.key_id, transfers.c.nonce).where(
        tuple_(transfers.c.key_id, transfers.c.nonce).in_(list(pairs))
    )
    return {(r.key_id, r.nonce) for r in conn.execute(query)}


def used_once(conn: Connection, keys: Collection[str]) -> dict[str, int]:
    """Which of these one-time tokens transfers used: {token: transfer id}."""
    if not keys:
        return {}
    query = select(transfers.c.once_key, transfers.c.id).where(transfers.c.once_key.in_(list(keys)))
    return {r.once_key: r.id for r in conn.execute(query)}


def transfers_by_id(conn: Connection, ids: Collection[int]) -> dict[int, StoredTransfer]:
    query = select(*_stored_columns()).where(transfers.c.id.in_(list(ids)))
    return {r.id: StoredTransfer(*r) for r in conn.execute(query)}


def _stored_columns() -> tuple[Any, ...]:
    c = transfers.c
    return (c.id, c.kind, c.initiator, c.client_id, c.order_json, c.created_ms)


def postings_of(conn: Connection, transfer_ids: Collection[int]) -> dict[int, dict[str, int]]:
    """Postings of each transfer as {account code: amount}."""
    query = (
        select(postings.c.transfer_id, accounts.c.code, postings.c.amount)
        .join(accounts, accounts.c.id == postings.c.account_id)
        .where(postings.c.transfer_id.in_(list(transfer_ids)))
    )
    result: dict[int, dict[str, int]] = {i: {} for i in transfer_ids}
    for row in conn.execute(query):
        result[row.transfer_id][row.code] = row.amount
    return result


def originals(conn: Connection, ref_ids: Collection[int]) -> dict[int, Original]:
    """The transfers that new orders refer to (refunded, paid out, corrected)."""
    if not ref_ids:
        return {}
    stored = transfers_by_id(conn, ref_ids)
    legs = postings_of(conn, stored.keys())
    return {i: Original(i, t.kind, t.initiator, t.fields, legs[i]) for i, t in stored.items()}


@dataclass(frozen=True, slots=True)
class Dependents:
    """What already hangs on a referenced transfer: refunds so far, a payout or correction."""

    refunded: int = 0
    settled: bool = False


# The leg that measures what a transfer gives back of the one it references: a refund's
# credit to the payer, an escrow release's or refund's credit to a member, a card reversal's
# units returned to issuance (its other positive leg, the euros, would count them twice), a
# card write-off's euros into the reserve.
_TAKEN_BACK = or_(
    and_(
        transfers.c.kind.in_(("refund", "escrow_release", "escrow_refund")),
        postings.c.amount > 0,
    ),
    and_(transfers.c.kind == "card_reversal", accounts.c.code == "issuance:digital"),
    and_(transfers.c.kind == "card_write_off", accounts.c.code == "reserve:digital"),
)


def dependents(conn: Connection, ref_ids: Collection[int]) -> dict[int, Dependents]:
    """Refunds (not themselves corrected) and payouts or corrections of these transfers."""
    if not ref_ids:
        return {}
    corrections = transfers.alias("corrections")
    corrected = (
        select(corrections.c.id)
        .where(corrections.c.ref_id == transfers.c.id, corrections.c.kind == "correction")
        .exists()
    )
    refunded = (
        select(transfers.c.ref_id, func.sum(postings.c.amount))
        .join(postings, postings.c.transfer_id == transfers.c.id)
        .join(accounts, accounts.c.id == postings.c.account_id)
        .where(transfers.c.ref_id.in_(list(ref_ids)), _TAKEN_BACK, ~corrected)
        .group_by(transfers.c.ref_id)
    )
    settled = select(transfers.c.ref_id).where(
        transfers.c.ref_id.in_(list(ref_ids)), transfers.c.kind.in_(("payout", "correction"))
    )
    sums = {r[0]: int(r[1]) for r in conn.execute(refunded)}
    settled_ids = set(conn.scalars(settled))
    return {i: Dependents(sums.get(i, 0), i in settled_ids) for i in ref_ids}


def allocate_transfer_ids(conn: Connection, count: int) -> list[int]:
    """Ids for a batch, taken before its postings are written (postings come first)."""
    if conn.dialect.name == "postgresql":
        query = select(func.nextval(literal_column("'transfers_id_seq'"))).select_from(
            func.generate_series(1, count)
        )
        return [int(i) for i in conn.scalars(query)]
    # SQLite: the transaction holds the write lock (BEGIN IMMEDIATE), so max(id) is ours.
    # Plain SQL: built and compiled by SQLAlchemy, this cost ~5% of a payment's CPU, and
    # under the write lock.
    top = int(conn.exec_driver_sql(TOP_TRANSFER_ID).scalar_one())
    return list(range(top + 1, top + 1 + count))


TOP_TRANSFER_ID = "SELECT coalesce(max(id), 0) FROM transfers"


TRANSFER_COLUMNS = (
    "id",
    "kind",
    "initiator",
    "client_id",
    "key_id",
    "nonce",
    "order_json",
    "signature",
    "ref_id",
    "created_ms",
    "once_key",
)
POSTING_COLUMNS = ("transfer_id", "account_id", "currency", "amount")


def write_batch(
    conn: Connection,
    rows: Sequence[dict[str, Any]],
    posting_rows: Sequence[dict[str, Any]],
    deltas: dict[int, int],
    expectation: Expectation | None = None,
) -> None:
    """Check the expectation (PostgreSQL), write a batch's postings, transfers, log queue
    entries and balances, and commit: one round trip on PostgreSQL. Postings go first: the
    transfer row's insert checks they balance (see the migration)."""
    moved = {k: v for k, v in deltas.items() if v}
    queue_rows = [{"transfer_id": r["id"]} for r in rows]
    statements = [] if expectation is None else [_expect(expectation)]
    if rows:
        statements += [
            bulk.insert(conn, "postings", POSTING_COLUMNS, posting_rows),
            bulk.insert(conn, "transfers", TRANSFER_COLUMNS, rows),
            bulk.insert(conn, "log_queue", ("transfer_id",), queue_rows),
            *([bulk.add_to_balances(conn, moved)] if moved else []),
        ]
    try:
        bulk.run(conn, statements, commit=True)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == STALE:
            raise StaleBalances(str(exc.orig)) from exc
        raise


def _expect(expectation: Expectation) -> bulk.Statement:
    seen = [
        {"id": i, "balance": expectation.balances.get(i), "floor": expectation.floors.get(i)}
        for i in sorted(expectation.accounts)
    ]
    return (
        "SELECT sou_expect_balances(%(seen)s::json, %(keys)s::json)",
        {"seen": json.dumps(seen), "keys": json.dumps(sorted(expectation.keys))},
    )


# -- the log ---------------------------------------------------------------------------------


LOG_SIZE = "SELECT coalesce(max(tree_size), 0) FROM checkpoints"


def log_size(conn: Connection) -> int:
    """Leaves in the log: the size of the latest checkpoint, which each round writes."""
    return int(conn.exec_driver_sql(LOG_SIZE).scalar_one())


def sealing_inputs(
    conn: Connection, limit: int
) -> tuple[int, list[tuple[int, int | None, int | None]], set[bytes]]:
    """The log's size, the first entries waiting to be sealed, and the public keys the log
    registers for the node (not revoked), in one round trip."""
    size, queue, node_keys = bulk.fetch(
        conn,
        [
            (LOG_SIZE, None),
            (
                "SELECT id, transfer_id, key_event_id FROM log_queue ORDER BY id "
                f"LIMIT {int(limit)}",
                None,
            ),
            (
                "SELECT public_key FROM keys WHERE owner = 'node' AND revoked_ms IS NULL",
                None,
            ),
        ],
    )
    return int(size[0][0]), [tuple(row) for row in queue], {bytes(r[0]) for r in node_keys}


def seal(
    conn: Connection,
    size: int,
    queue_ids: Sequence[int],
    leaves: Sequence[dict[str, Any]],
    nodes: Sequence[dict[str, Any]],
    checkpoint: dict[str, Any],
) -> bool:
    """Append leaves, nodes and checkpoint and remove their entries from the queue, in one
    round trip; False if another sealer changed the log or the queue first (the caller
    then rolls back)."""
    where, params = bulk.among(conn, "id", queue_ids)
    statements = [
        *(
            [("SELECT pg_advisory_xact_lock(%(lock)s)", {"lock": SEALER_LOCK})]
            if bulk.postgres(conn)
            else []
        ),
        (LOG_SIZE, None),
        (f"DELETE FROM log_queue WHERE {where} RETURNING id", params),
        bulk.insert(conn, "log_leaves", ("idx", "transfer_id", "key_event_id", "hash"), leaves),
        *([bulk.insert(conn, "log_nodes", ("level", "idx", "hash"), nodes)] if nodes else []),
        bulk.insert(conn, "checkpoints", ("tree_size", "root", "note", "created_ms"), [checkpoint]),
    ]
    results = bulk.fetch(conn, statements)
    at = 1 if bulk.postgres(conn) else 0
    return int(results[at][0][0]) == size and len(results[at + 1]) == len(queue_ids)


LeafSource = tuple[int, int, str, bytes]  # id, created_ms, signed JSON, signature


def leaf_sources(
    conn: Connection, transfer_ids: Collection[int], event_ids: Collection[int]
) -> tuple[dict[int, LeafSource], dict[int, list[tuple[str, str, int]]], dict[int, LeafSource]]:
    """What the leaves of these transfers and key events are made of."""
    t_rows: dict[int, LeafSource] = {}
    legs: dict[int, list[tuple[str, str, int]]] = {i: [] for i in transfer_ids}
    if transfer_ids:
        where, params = bulk.among(conn, "id", transfer_ids)
        for row in conn.exec_driver_sql(
            f"SELECT id, created_ms, order_json, signature FROM transfers WHERE {where}", params
        ):
            t_rows[row[0]] = (row[0], row[1], row[2], bytes(row[3]))
        where, params = bulk.among(conn, "p.transfer_id", transfer_ids)
        for tid, code, currency, amount in conn.exec_driver_sql(
            "SELECT p.transfer_id, a.code, p.currency, p.amount FROM postings p "
            f"JOIN accounts a ON a.id = p.account_id WHERE {where}",
            params,
        ):
            legs[tid].append((code, currency, amount))
    e_rows: dict[int, LeafSource] = {}
    if event_ids:
        where, params = bulk.among(conn, "id", event_ids)
        for row in conn.exec_driver_sql(
            f"SELECT id, created_ms, event_json, signature FROM key_events WHERE {where}", params
        ):
            e_rows[row[0]] = (row[0], row[1], row[2], bytes(row[3]))
    return t_rows, legs, e_rows


def node_hash(conn: Connection, level: int, index: int) -> bytes | None:
    """A stored perfect subtree's hash (level 0: a leaf)."""
    if level == 0:
        found = conn.scalar(select(log_leaves.c.hash).where(log_leaves.c.idx == index))
    else:
        found = conn.scalar(
            select(log_nodes.c.hash).where(log_nodes.c.level == level, log_nodes.c.idx == index)
        )
    return None if found is None else bytes(found)


def leaf_index(conn: Connection, transfer_id: int) -> int | None:
    return conn.scalar(select(log_leaves.c.idx).where(log_leaves.c.transfer_id == transfer_id))


def checkpoint_notes(conn: Connection) -> list[tuple[int, str]]:
    query = select(checkpoints.c.tree_size, checkpoints.c.note).order_by(checkpoints.c.tree_size)
    return [(int(size), note) for size, note in conn.execute(query)]


def latest_checkpoint(conn: Connection) -> RowMapping | None:
    query = select(checkpoints).order_by(checkpoints.c.tree_size.desc()).limit(1)
    return conn.execute(query).mappings().first()


def active_operator_keys(conn: Connection) -> list[RowMapping]:
    """Keys of the node, of operator roles and of plugins that have not been revoked."""
    query = (
        select(keys.c.key_id, keys.c.owner, keys.c.public_key)
        .where(
            keys.c.revoked_ms.is_(None),
            (keys.c.owner == "node") | keys.c.owner.like("role:%") | keys.c.owner.like("plugin:%"),
        )
        .order_by(keys.c.owner, keys.c.key_id)
    )
    return list(conn.execute(query).mappings())


# -- the log, read for proofs ----------------------------------------------------------------


def checkpoint_note(conn: Connection, tree_size: int) -> str | None:
    """The signed note of the checkpoint of exactly `tree_size` leaves, if the log has one."""
    return conn.scalar(select(checkpoints.c.note).where(checkpoints.c.tree_size == tree_size))


def checkpoints_before(conn: Connection, before: int | None, limit: int) -> list[RowMapping]:
    """A page of checkpoints (size, note, time), newest first, smaller than `before`."""
    query = select(checkpoints.c.tree_size, checkpoints.c.note, checkpoints.c.created_ms)
    if before is not None:
        query = query.where(checkpoints.c.tree_size < before)
    query = query.order_by(checkpoints.c.tree_size.desc()).limit(limit)
    return list(conn.execute(query).mappings())


def leaf_state(conn: Connection, transfer_id: int) -> tuple[bool, int | None, bool]:
    """Whether the transfer is stored, its leaf index, and whether it waits in the log queue.
    One statement, so that a round sealing it meanwhile (queue entry out, leaf in) is seen
    before or after, never half-way, as a leaf the log lost."""
    stored = select(transfers.c.id).where(transfers.c.id == transfer_id).exists()
    leaf = select(log_leaves.c.idx).where(log_leaves.c.transfer_id == transfer_id)
    queued = select(log_queue.c.id).where(log_queue.c.transfer_id == transfer_id).exists()
    row = conn.execute(select(stored, leaf.scalar_subquery(), queued)).one()
    return bool(row[0]), (None if row[1] is None else int(row[1])), bool(row[2])
