"""Reactions to ledger events: each posted transfer and key event, given to a handler in the
order of the Merkle log, at least once.

The events are read from the sealed log (a transfer becomes an event once sealed, about a
second after it commits), so every process and machine sees them in the same order. Each
reaction has a cursor in `event_cursors`: the number of log leaves it has been given. The
cursor moves on after each event handled; a handler that raises stops the delivery, and
the same event is given again next time. A crash between a handler's end and the cursor's
move gives that event again too: handlers must be idempotent (e.g. keyed on the
transfer id).

Run a reaction as a scheduled job (`reaction_job`): the job's lease makes one process at a
time its deliverer. The cursor only moves from where the deliverer found it, so even two
deliverers at once (a lease outlasted) never move it past an event unhandled.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from sqlalchemy import Connection, Engine, select, update

from ledger import repository as ledger_repo
from ledger.models import accounts, key_events, keys, log_leaves, postings, transfers
from ledger.sealer import LogDamaged
from runtime.jobs import NAME_CHARS, Job, JobRun, check_name, describe, insert_or_skip
from runtime.models import event_cursors

log = logging.getLogger(__name__)

JOB_PREFIX = "reactions."


@dataclass(frozen=True)
class TransferPosted:
    position: int  # the leaf's index in the log
    transfer_id: int
    kind: str  # payment, topup, pledge, release, ...
    created_ms: int
    postings: dict[str, int]  # account code -> amount in cents (debits negative)
    order: dict[str, Any]  # the signed order, as the log holds it


@dataclass(frozen=True)
class KeyChanged:
    position: int
    action: Literal["register", "revoke"]
    key_id: str
    owner: str  # member:<id>, role:<role>, node, plugin:<name>
    created_ms: int


LedgerEvent = TransferPosted | KeyChanged


@dataclass(frozen=True)
class Reaction:
    """`handle` is given each ledger event in log order, at least once. `history`: whether
    a reaction new to this database is first given the events already in the log, or
    only those sealed from now on."""

    name: str
    handle: Callable[[LedgerEvent], None]
    history: bool = True

    def __post_init__(self) -> None:
        check_name(self.name, "reaction")
        if len(JOB_PREFIX + self.name) > NAME_CHARS:
            raise ValueError(
                f"reaction name {self.name!r} is too long to name its job "
                f"(at most {NAME_CHARS - len(JOB_PREFIX)} characters)"
            )


class ReactionFailed(Exception):
    """A handler raised on the event at `position`: it is given that event again next time.
    `delivered` events were handled before it."""

    def __init__(self, name: str, position: int, delivered: int, cause: Exception) -> None:
        super().__init__(
            f"reaction {name} failed on the event at log position {position}: {describe(cause)}"
        )
        self.name, self.position, self.delivered = name, position, delivered


def read_events(conn: Connection, start: int, limit: int) -> list[LedgerEvent]:
    """The events of the log's leaves from position `start`, at most `limit`, in order.
    A leaf missing, or naming what is not stored, raises LogDamaged: nothing is delivered
    over a log that skips an entry."""
    leaves = conn.execute(
        select(log_leaves.c.idx, log_leaves.c.transfer_id, log_leaves.c.key_event_id)
        .where(log_leaves.c.idx >= start)
        .order_by(log_leaves.c.idx)
        .limit(limit)
    ).all()
    transfer_ids = [leaf.transfer_id for leaf in leaves if leaf.transfer_id is not None]
    event_ids = [leaf.key_event_id for leaf in leaves if leaf.key_event_id is not None]
    found_transfers = _transfers(conn, transfer_ids)
    found_key_events = _key_events(conn, event_ids)
    events: list[LedgerEvent] = []
    for expected, leaf in enumerate(leaves, start):
        if leaf.idx != expected:
            raise LogDamaged(f"the log has no leaf at position {expected}")
        made = (
            found_transfers.get(leaf.transfer_id)
            if leaf.transfer_id is not None
            else found_key_events.get(leaf.key_event_id)
        )
        if made is None:
            what = (
                f"transfer {leaf.transfer_id}"
                if leaf.transfer_id is not None
                else f"key event {leaf.key_event_id}"
            )
            raise LogDamaged(f"the log's leaf {leaf.idx} names {what}, which is not stored")
        events.append(made(leaf.idx))
    return events


def _transfers(conn: Connection, ids: list[int]) -> dict[int, Callable[[int], TransferPosted]]:
    if not ids:
        return {}
    legs: dict[int, dict[str, int]] = {i: {} for i in ids}
    for transfer_id, code, amount in conn.execute(
        select(postings.c.transfer_id, accounts.c.code, postings.c.amount)
        .join(accounts, accounts.c.id == postings.c.account_id)
        .where(postings.c.transfer_id.in_(ids))
    ):
        legs[transfer_id][code] = int(amount)
    rows = conn.execute(
        select(
            transfers.c.id, transfers.c.kind, transfers.c.created_ms, transfers.c.order_json
        ).where(transfers.c.id.in_(ids))
    )
    return {
        row.id: partial(
            TransferPosted,
            transfer_id=int(row.id),
            kind=row.kind,
            created_ms=int(row.created_ms),
            postings=legs[row.id],
            order=json.loads(row.order_json),
        )
        for row in rows
    }


def _key_events(conn: Connection, ids: list[int]) -> dict[int, Callable[[int], KeyChanged]]:
    if not ids:
        return {}
    rows = conn.execute(
        select(
            key_events.c.id,
            key_events.c.action,
            key_events.c.key_id,
            key_events.c.created_ms,
            keys.c.owner,
        )
        .join(keys, keys.c.key_id == key_events.c.key_id)
        .where(key_events.c.id.in_(ids))
    )
    return {
        row.id: partial(
            KeyChanged,
            action=row.action,
            key_id=row.key_id,
            owner=row.owner,
            created_ms=int(row.created_ms),
        )
        for row in rows
    }


def cursor(conn: Connection, name: str) -> int | None:
    """How many log leaves the reaction `name` has been given (None: never run here)."""
    found = conn.scalar(select(event_cursors.c.position).where(event_cursors.c.name == name))
    return None if found is None else int(found)


def deliver(engine: Engine, reaction: Reaction, *, limit: int = 500) -> int:
    """Give `reaction` the next events after its cursor, at most `limit`; return how many
    it handled. A handler that raises stops the delivery (logged with the reaction's name):
    that event is given again next time. One deliverer at a time: see `reaction_job`."""
    try:
        return _deliver(engine, reaction, limit, lambda: True)
    except ReactionFailed as failed:
        log.error("%s; it is given that event again next time", failed, exc_info=failed.__cause__)
        return failed.delivered


def reaction_job(
    reaction: Reaction, *, every_s: float = 1.0, lease_s: float = 60.0, limit: int = 500
) -> Job:
    """The job `reactions.<name>` that delivers `reaction`'s events, so that one process
    at a time does. A handler is started only while half the lease is left; a handler that
    raises fails the run (recorded with the error), and its event is given again at the
    next run."""

    def run(job_run: JobRun) -> str | None:
        delivered = _deliver(
            job_run.engine, reaction, limit, lambda: job_run.lease_left_s() > lease_s / 2
        )
        return f"{delivered} events delivered" if delivered else None

    return Job(JOB_PREFIX + reaction.name, every_s, run, lease_s)


def _deliver(engine: Engine, reaction: Reaction, limit: int, keep_going: Callable[[], bool]) -> int:
    start = _start(engine, reaction)
    with engine.connect().execution_options(sqlite_deferred=True) as conn:
        events = read_events(conn, start, limit)
    delivered = 0
    for event in events:
        if not keep_going():
            break
        try:
            reaction.handle(event)
        except Exception as exc:
            raise ReactionFailed(reaction.name, event.position, delivered, exc) from exc
        if not _move(engine, reaction.name, event.position):
            log.warning(
                "reaction %s: its cursor moved while it was handling the event at log "
                "position %d (another deliverer outside the job's lease); it stops here",
                reaction.name,
                event.position,
            )
            break
        delivered += 1
    return delivered


def _start(engine: Engine, reaction: Reaction) -> int:
    """The reaction's cursor, made if it has none (at the log's start, or its end)."""
    with engine.connect().execution_options(sqlite_deferred=True) as conn:
        found = cursor(conn, reaction.name)
    if found is not None:
        return found
    with engine.begin() as conn:
        position = 0 if reaction.history else ledger_repo.log_size(conn)
        conn.execute(
            insert_or_skip(conn, event_cursors),
            {"name": reaction.name, "position": position, "updated_ms": _now_ms()},
        )
        made = cursor(conn, reaction.name)
    assert made is not None
    return made


def _move(engine: Engine, name: str, handled: int) -> bool:
    """Move the cursor past the event at `handled`, if it still points at that event."""
    with engine.begin() as conn:
        moved = conn.execute(
            update(event_cursors)
            .where(event_cursors.c.name == name, event_cursors.c.position == handled)
            .values(position=handled + 1, updated_ms=_now_ms())
        ).rowcount
    return moved == 1


def _now_ms() -> int:
    return int(time.time() * 1000)  # shown only: when the cursor last moved
