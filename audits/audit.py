"""The audit: re-derive everything the ledger claims from what is stored, and say what differs.

Checked: every key event (signature, authority), every transfer (signature by a key of
the right owner, not revoked, postings exactly those its order implies, zero sum), every
stored balance against replayed postings, no forbidden negative balance, the backing
invariant, and the Merkle log (every leaf recomputed from its transfer, every stored node
from the leaves, every checkpoint's root and signature). Transfers are checked in ranges,
by worker processes when there are many, all reading one database snapshot, while this
process checks the rest.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

import nacl.exceptions
import nacl.signing
from sqlalchemy import Connection, Engine, and_, func, inspect, or_, select, tuple_

from audits.checks import KeyState
from audits.fees import check_fees
from audits.log import LogAudit, Place
from audits.paper import Paper, check_paper
from audits.report import (
    EMERGENCY,
    AuditState,
    Finding,
    Report,
    finding,
    finding_template,
)
from audits.transfers import TransferAudit, shared_snapshot
from audits.watch import watch
from ledger import repository as repo
from ledger.canonical import canonical, unb64
from ledger.chart import EUR, RULES, SYSTEM_ACCOUNTS, Chart, backing, kind_of
from ledger.checkpoint import verifier_key
from ledger.errors import LedgerError
from ledger.leaves import key_event_leaf
from ledger.merkle import Frontier, leaf_hash
from ledger.models import accounts as accounts_table
from ledger.models import key_events
from ledger.models import keys as keys_table
from ledger.models import postings as postings_table
from ledger.models import transfers as transfers_table
from ledger.operations import NODE
from ledger.service import may_change_keys
from runtime.plugins import Plugins, version_table

log = logging.getLogger(__name__)

__all__ = ["AuditState", "Finding", "NoLedger", "Report", "audit"]

Progress = Callable[[int, int], None]
# Plugin name -> what its records say each of its escrow accounts holds (None: unreadable).
EscrowRecords = Callable[[Connection], Mapping[str, Mapping[str, int] | None]]


def audit(
    engine: Engine,
    *,
    node_public_key: bytes | None = None,
    witnessed: Sequence[str] = (),
    workers: int | None = None,
    progress: Progress | None = None,
    since: AuditState | None = None,
    now_ms: int | None = None,
    escrow_records: EscrowRecords | None = None,
) -> Report:
    """Audit the ledger in `engine`'s database, as of one snapshot.

    `node_public_key` is the key the operator trusts (from the node's key file); without
    it, the genesis key event's key is used. `witnessed` are signed checkpoints kept
    outside the database (by the node, by residents): the log must still contain each.
    `workers` processes (default: one per core) check the transfers of a large ledger:
    their Ed25519 signatures are most of the work. `since`: the state a previous clean
    audit left (its signature checked by the caller): only what came after it is checked,
    the rest is taken from it. The report's `state` is what the next audit may resume from,
    when nothing but warnings was found. `escrow_records` reads, in the audit's snapshot,
    what each plugin's records say its escrow accounts hold (`sou_escrow_holdings`)."""
    started = time.perf_counter()
    report = Report()
    with _snapshot(engine) as conn:
        source = shared_snapshot(conn)  # before anything else is read
        origin, chart = _identity(conn, report)
        if since is not None and since.origin != origin:
            report.findings.append(
                finding("meta", "the previous audit's state is of another ledger: checked anew")
            )
            since = None
        report.full = since is None
        report.resumed_from = since.last_transfer if since else None
        after = since.last_transfer if since else None  # None: from the start
        keys, event_leaves = _replay_keys(conn, origin, node_public_key, report)
        node_key = node_public_key or next(
            (k.public_key for k in keys.values() if k.owner == NODE), None
        )
        verifier = verifier_key(origin, node_key) if node_key else ""
        replays = Report()  # reported after the transfers, as they always were
        start = Frontier()
        if since is not None:
            start = Frontier(since.tree_size, [bytes.fromhex(h) for h in since.frontier])
        with TransferAudit(
            conn, source, chart.local, origin, keys, workers or os.cpu_count() or 1, progress, after
        ) as checking:
            # While worker processes check the transfers, this one checks all that does not
            # need their sums, so that little is left once they are done.
            _check_replays(conn, replays, after)
            checking.poll()
            place = Place(
                event_leaves, checking.checked, after, checking.leaf_of if since else None
            )
            the_log = LogAudit(conn, start, origin, verifier, witnessed, place)
            the_log.walk(checking.poll)
            carried = Paper.from_state(since.paper) if since and since.paper is not None else None
            paper = check_paper(conn, chart.local, report, carried, after)
            checking.poll()
            if node_key:
                check_fees(conn, origin, node_key, after, report)
            watched = watch(conn, chart, since, after, report, now_ms)
            transfers = checking.result()
            frontier = the_log.finish(transfers, report)
            last = checking.last
        report.transfers = transfers.count
        report.findings.extend(transfers.findings)
        report.findings.extend(replays.findings)
        sums = dict(since.balances) if since else {}
        for code, amount in transfers.sums.items():
            sums[code] = sums.get(code, 0) + amount
        _check_accounts(conn, chart, sums, report)
        if escrow_records is not None:
            _check_escrows(escrow_records(conn), sums, report)
    report.seconds = time.perf_counter() - started
    report.findings.sort(key=lambda f: (f.transfer_id or 0, f.check, f.message))
    if report.ok:
        report.state = AuditState(
            origin=origin,
            last_transfer=last,
            tree_size=frontier.size,
            frontier=[h.hex() for h in frontier.hashes],
            balances=sums,
            paper=paper.to_state(),
            **watched,
        )
    return report


def escrow_records_of(plugins: Plugins) -> EscrowRecords:
    """What the active plugins' records say their escrows hold, read on the audit's
    connection, each plugin in a savepoint (one failing leaves the snapshot usable). A
    plugin whose migrations never ran on this database holds nothing here and is skipped;
    one whose records cannot be read is named in the result with None."""
    hook = plugins.manager.hook.sou_escrow_holdings

    def read(conn: Connection) -> dict[str, Mapping[str, int] | None]:
        implemented = {i.plugin_name: i.function for i in hook.get_hookimpls()}
        found: dict[str, Mapping[str, int] | None] = {}
        for plugin in plugins.active():
            holdings = implemented.get(plugin.name)
            if holdings is None or not _migrated(conn, plugin.name):
                continue
            try:
                with conn.begin_nested():
                    held = cast(Mapping[str, int], holdings(conn=conn))
                    found[plugin.name] = dict(held)
            except Exception:
                log.exception("plugin %s could not say what its escrows hold", plugin.name)
                found[plugin.name] = None
        return found

    return read


def _migrated(conn: Connection, plugin: str) -> bool:
    return inspect(conn).has_table(version_table(plugin))


class NoLedger(Exception):
    """The database holds no ledger at all (not a damaged one: that is a finding)."""


META_NAMES = ("origin", "currency")


def _identity(conn: Connection, report: Report) -> tuple[str, Chart]:
    """The log's origin and the local currency, from what is signed: the node key's own
    registration names the origin, the orders name the currency. `ledger_meta`, which the
    node reads them from, must say the same."""
    meta = repo.read_meta(conn)
    first_event = conn.scalar(select(key_events.c.event_json).order_by(key_events.c.id).limit(1))
    if first_event is None and not meta:
        raise NoLedger("this database holds no ledger yet: run `sou init`")
    signed_origin = _json_field(first_event, "node")
    origin = signed_origin or meta.get("origin") or ""
    if meta.get("origin") != origin:
        report.findings.append(
            finding(
                "meta",
                "ledger_meta: the origin is {stored}, but the node key's signed registration "
                "names {signed}",
                stored=repr(meta.get("origin")),
                signed=repr(origin),
            )
        )
    candidates = [_signed_currency(conn), _issuance_currency(conn), meta.get("currency")]
    currency = next((c for c in candidates if c and _is_local_currency(c)), "SOU")
    if meta.get("currency") != currency:
        report.findings.append(
            finding(
                "meta",
                "ledger_meta: the currency is {stored}, but the ledger's orders and accounts "
                "are in {currency}",
                stored=repr(meta.get("currency")),
                currency=repr(currency),
            )
        )
    for name in sorted(meta.keys() - set(META_NAMES)):
        report.findings.append(
            finding("meta", "ledger_meta: unexpected entry {name}", name=repr(name))
        )
    return origin, Chart(currency)


def _json_field(text: str | None, name: str) -> str | None:
    try:
        value = json.loads(text or "null")
    except ValueError:
        return None
    found = value.get(name) if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def _signed_currency(conn: Connection) -> str | None:
    """The first currency other than the euro named by a stored order."""
    t = transfers_table
    for text in conn.scalars(select(t.c.order_json).order_by(t.c.id).limit(200)):
        currency = _json_field(text, "currency")
        if currency is not None and currency != EUR:
            return currency
    return None


def _issuance_currency(conn: Connection) -> str | None:
    a = accounts_table
    found = conn.scalar(select(a.c.currency).where(a.c.code == "issuance:digital"))
    return str(found) if found is not None else None


def _is_local_currency(code: str | None) -> bool:
    try:
        Chart(code or "")
    except ValueError:
        return False
    return True


def _snapshot(engine: Engine) -> Connection:
    """One connection, one read transaction: everything is checked as of one moment while
    the node keeps taking payments (WAL on SQLite, REPEATABLE READ on PostgreSQL)."""
    conn = engine.connect()
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ")
    return conn.execution_options(sqlite_deferred=True)


# -- keys ----------------------------------------------------------------------------------


def _replay_keys(
    conn: Connection, origin: str, trusted: bytes | None, report: Report
) -> tuple[dict[str, KeyState], dict[int, bytes]]:
    """Rebuild the key registry from the signed key events; compare it with the table."""
    keys: dict[str, KeyState] = {}
    leaves: dict[int, bytes] = {}
    for row in conn.execute(select(key_events).order_by(key_events.c.id)).mappings():
        report.key_events += 1
        problem = _apply_key_event(row, keys, origin, trusted)
        if problem:
            report.findings.append(problem)
        leaves[row["id"]] = leaf_hash(
            key_event_leaf(row["id"], row["created_ms"], row["event_json"], row["signature"])
        )
    for row in conn.execute(select(keys_table)).mappings():
        state = keys.get(row["key_id"])
        stored = KeyState(
            row["owner"], bytes(row["public_key"]), row["revoked_ms"], row["registered_ms"]
        )
        if state != stored:
            report.findings.append(
                finding("keys", "key {key} differs from its signed key events", key=row["key_id"])
            )
    for missing in keys.keys() - {r for r in conn.scalars(select(keys_table.c.key_id))}:
        report.findings.append(
            finding("keys", "key {key} is missing from the key table", key=missing)
        )
    return keys, leaves


def _apply_key_event(
    row: Any, keys: dict[str, KeyState], origin: str, trusted: bytes | None
) -> Finding | None:
    eid = row["id"]
    try:
        event = json.loads(row["event_json"])
        public_key = unb64(event["public_key"])
        kid, owner, action = event["key"], event["owner"], event["action"]
    except (ValueError, KeyError, TypeError):
        return finding("keys", "key event {event}: unreadable event", event=eid)
    if canonical(event).decode() != row["event_json"] or event.get("node") != origin:
        return finding("keys", "key event {event}: not a canonical event of this node", event=eid)
    if (kid, action, event["signer"]) != (row["key_id"], row["action"], row["signer_key_id"]):
        return finding(
            "keys", "key event {event}: stored columns differ from the signed event", event=eid
        )
    genesis = not keys
    if genesis:  # the node key registers itself first
        if owner != NODE or event["signer"] != kid or (trusted and public_key != trusted):
            return finding(
                "keys",
                "key event {event}: the log does not start with the trusted node key",
                event=eid,
            )
        signer = KeyState(owner, public_key, None, row["created_ms"])
    else:
        signer = keys.get(event["signer"])  # type: ignore[assignment]
        if signer is None or signer.revoked_ms is not None:
            return finding(
                "keys", "key event {event}: signed by an unknown or revoked key", event=eid
            )
        if not may_change_keys(signer.owner, owner):
            return finding(
                "keys",
                "key event {event}: a key of {signer} may not change keys of {owner}",
                event=eid,
                signer=signer.owner,
                owner=owner,
            )
    if not _verifies(signer.public_key, row["event_json"].encode(), row["signature"]):
        return finding("keys", "key event {event}: bad signature", event=eid)
    if action == "register":
        keys[kid] = KeyState(owner, public_key, None, row["created_ms"])
    elif kid in keys:
        keys[kid] = replace(keys[kid], revoked_ms=row["created_ms"])
    return None


def _verifies(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, bytes(signature))
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


# -- transfers -----------------------------------------------------------------------------

# -- what must happen once ------------------------------------------------------------------


# Transfers that give back (part of) the one they reference, at most all of it: refunds of
# a payment; releases and refunds of an escrow payment (a plugin's escrow holds exactly
# what its payments brought and its rules have not yet paid out).
GIVING_BACK = ("refund", "escrow_release", "escrow_refund")


def _check_replays(conn: Connection, report: Report, after: int | None = None) -> None:
    """An order is posted once (key + nonce, initiator + client id), a transfer is paid out
    or corrected once, and refunds and escrow releases never exceed their payment. The
    database's unique keys say so too, but an audit does not take the schema's word for it.
    Resumed after transfer `after`, only what involves a later transfer is looked at."""
    t, p = transfers_table, postings_table
    once = (
        (
            (t.c.key_id, t.c.nonce),
            finding_template("transfer {transfer} replays transfer {first} (same key and nonce)"),
            None,
        ),
        (
            (t.c.initiator, t.c.client_id),
            finding_template("transfer {transfer} replays transfer {first} (same client id)"),
            None,
        ),
        (
            (t.c.ref_id,),
            finding_template("transfer {transfer} settles transfer {first} a second time"),
            ("payout", "correction"),
        ),
    )
    for columns, message, kinds in once:
        query = select(t.c.id, *columns).order_by(t.c.id)
        if kinds:
            query = query.where(t.c.kind.in_(kinds), t.c.ref_id.is_not(None))
        if after is None:
            dupes = select(*columns).group_by(*columns).having(func.count() > 1)
            if kinds:
                dupes = dupes.where(t.c.kind.in_(kinds))
            rows = list(conn.execute(query.where(tuple_(*columns).in_(dupes))))
        else:
            rows = _sharing_with_new(conn, query, columns, kinds, after)
        first: dict[tuple[Any, ...], int] = {}
        for row in rows:
            key = tuple(row[1:])
            if key in first:
                shown = first[key] if kinds is None else key[0]
                report.findings.append(
                    finding("order", message, transfer=row.id, first=shown, transfer_id=row.id)
                )
            else:
                first[key] = row.id
    refunded: Any = select(t.c.ref_id).where(t.c.kind.in_(GIVING_BACK))
    if after is not None:  # the payments given back since, looked up one by one
        refunded = list(
            conn.scalars(refunded.where(t.c.id > after, t.c.ref_id.is_not(None)).distinct())
        )
        if not refunded:
            _check_card_reversals(conn, report, after)
            return
    paid = (  # of the payments refunded only: summing every transfer's costs a scan
        select(p.c.transfer_id, func.sum(p.c.amount).label("paid"))
        .where(p.c.amount > 0, p.c.transfer_id.in_(refunded))
        .group_by(p.c.transfer_id)
        .subquery()
    )
    fixes = t.alias("fixes")
    corrected = (
        select(fixes.c.id).where(fixes.c.ref_id == t.c.id, fixes.c.kind == "correction").exists()
    )
    refunds = (
        select(t.c.ref_id, func.sum(p.c.amount), func.max(t.c.id), paid.c.paid)
        .join(p, p.c.transfer_id == t.c.id)
        .join(paid, paid.c.transfer_id == t.c.ref_id)
        .where(t.c.kind.in_(GIVING_BACK), p.c.amount > 0, ~corrected)
        .group_by(t.c.ref_id, paid.c.paid)
    )
    if after is not None:
        refunds = refunds.where(t.c.ref_id.in_(refunded))
    for ref, refunded, last, amount in conn.execute(refunds):
        if refunded > amount:
            report.findings.append(
                finding(
                    "order",
                    "transfer {transfer}: what was given back of transfer {ref} (refunds, escrow "
                    "releases) adds up to {given}, more than its {amount}",
                    transfer=last,
                    ref=ref,
                    given=refunded,
                    amount=amount,
                    transfer_id=last,
                )
            )
    _check_card_reversals(conn, report, after)


def _sharing_with_new(
    conn: Connection, query: Any, columns: tuple[Any, ...], kinds: Any, after: int
) -> list[Any]:
    """The rows of `query` (id, then `columns`) whose `columns` a transfer after `after`
    shares with another: each new transfer looks for a twin through the index on
    `columns` (grouping the whole table would read all of it for a handful of new ones)."""
    new, other = transfers_table.alias("new"), transfers_table.alias("other")
    twin = select(other.c.id).where(
        *(other.c[c.name] == new.c[c.name] for c in columns), other.c.id != new.c.id
    )
    found = select(*(new.c[c.name] for c in columns)).where(new.c.id > after, twin.exists())
    if kinds:
        twin = twin.where(other.c.kind.in_(kinds))
        found = select(*(new.c[c.name] for c in columns)).where(
            new.c.id > after, new.c.kind.in_(kinds), twin.exists()
        )
    keys = sorted({tuple(row) for row in conn.execute(found.distinct())})
    target = columns[0] if len(columns) == 1 else tuple_(*columns)
    rows: list[Any] = []
    for start in range(0, len(keys), LOOKUPS):
        batch = keys[start : start + LOOKUPS]
        values = [k[0] for k in batch] if len(columns) == 1 else batch
        rows += conn.execute(query.where(target.in_(values))).all()
    return sorted(rows, key=lambda row: row[0])


LOOKUPS = 500  # values per IN list


def _check_card_reversals(conn: Connection, report: Report, after: int | None) -> None:
    """Card reversals and write-offs of one top-up never give back more than it issued:
    a reversal counts by the units it returns, a write-off by the euros it puts back."""
    t, p, a = transfers_table, postings_table, accounts_table
    issued = (
        select(p.c.transfer_id, func.sum(-p.c.amount).label("issued"))
        .join(a, a.c.id == p.c.account_id)
        .where(a.c.code == "issuance:digital")
        .group_by(p.c.transfer_id)
        .subquery()
    )
    reversals = (
        select(t.c.ref_id, func.sum(p.c.amount), func.max(t.c.id), issued.c.issued)
        .join(p, p.c.transfer_id == t.c.id)
        .join(a, a.c.id == p.c.account_id)
        .join(issued, issued.c.transfer_id == t.c.ref_id)
        .where(
            or_(
                and_(t.c.kind == "card_reversal", a.c.code == "issuance:digital"),
                and_(t.c.kind == "card_write_off", a.c.code == "reserve:digital"),
            )
        )
        .group_by(t.c.ref_id, issued.c.issued)
    )
    if after is not None:
        reversing = ("card_reversal", "card_write_off")
        again = select(t.c.ref_id).where(t.c.id > after, t.c.kind.in_(reversing)).distinct()
        refs = [ref for ref in conn.scalars(again) if ref is not None]
        if not refs:
            return
        reversals = reversals.where(t.c.ref_id.in_(refs))
    for ref, reversed_, last, amount in conn.execute(reversals):
        if reversed_ > amount:
            report.findings.append(
                finding(
                    "order",
                    "transfer {transfer}: card reversals and write-offs of top-up {ref} add up "
                    "to {given}, more than its {amount}",
                    transfer=last,
                    ref=ref,
                    given=reversed_,
                    amount=amount,
                    transfer_id=last,
                )
            )


# -- accounts and backing ------------------------------------------------------------------


def _check_account_row(row: Any, chart: Chart, report: Report) -> None:
    """Every stored attribute of an account is what the chart says of its code."""
    code = row["code"]
    expected = {
        "kind": kind_of(code).value,
        "currency": chart.currency_of(code),
        "may_go_negative": chart.may_go_negative(code),
    }
    for column, value in expected.items():
        found = bool(row[column]) if column == "may_go_negative" else row[column]
        if found == value:
            continue
        if column == "may_go_negative" and found:
            said = finding(
                "account",
                "account {code} may go below zero in its row, which the chart forbids",
                account=code,
                code=code,
            )
        else:
            said = finding(
                "account",
                "account {code}: its row says {column} {found}, the chart {expected}",
                account=code,
                code=code,
                column=column,
                found=repr(found),
                expected=repr(value),
            )
        report.findings.append(said)


def _check_accounts(conn: Connection, chart: Chart, sums: dict[str, int], report: Report) -> None:
    stored = {r["code"]: r for r in repo.all_accounts(conn)}
    report.accounts = len(stored)
    for code in SYSTEM_ACCOUNTS:
        if code not in stored:
            report.findings.append(
                finding("account", "system account {code} is missing", account=code, code=code)
            )
    for code in sorted(stored.keys() | sums.keys()):
        row, replayed = stored.get(code), sums.get(code, 0)
        if row is None:
            report.findings.append(
                finding("balance", "postings to unknown account {code}", account=code, code=code)
            )
            continue
        if row["balance"] != replayed:
            report.findings.append(
                finding(
                    "balance",
                    "account {code}: stored balance {stored}, history gives {replayed}",
                    account=code,
                    code=code,
                    stored=row["balance"],
                    replayed=replayed,
                )
            )
        try:
            rule = RULES[kind_of(code)]
        except LedgerError:
            report.findings.append(
                finding("account", "{code} is outside the chart", account=code, code=code)
            )
            continue
        if replayed < 0 and not rule.may_go_negative:
            report.findings.append(
                finding(
                    "balance",
                    "account {code} is below zero ({replayed})",
                    account=code,
                    code=code,
                    replayed=replayed,
                )
            )
        _check_account_row(row, chart, report)
    held = backing({code: sums.get(code, 0) for code in stored})
    report.watch.backing, report.watch.outstanding = held.reserve, held.outstanding
    if held.reserve < held.outstanding:
        report.findings.append(
            finding(
                "backing",
                "{outstanding} {local} cents outstanding but only {reserve} {eur} cents in reserve",
                outstanding=held.outstanding,
                local=chart.local,
                reserve=held.reserve,
                eur=EUR,
                severity=EMERGENCY,
            )
        )


def _check_escrows(
    records: Mapping[str, Mapping[str, int] | None], sums: dict[str, int], report: Report
) -> None:
    """Each plugin's escrow accounts hold exactly what its own records say: what its
    operations took in, less what they released and refunded."""
    for plugin, holdings in sorted(records.items()):
        if holdings is None:
            report.findings.append(
                finding("escrow", "the records of plugin {plugin} could not be read", plugin=plugin)
            )
            continue
        prefix = f"escrow:{plugin}:"
        for code in sorted({c for c in sums if c.startswith(prefix)} | set(holdings)):
            held, recorded = sums.get(code, 0), holdings.get(code, 0)
            if held != recorded:
                report.findings.append(
                    finding(
                        "escrow",
                        "account {code} holds {held}, but the records of plugin {plugin} say "
                        "{recorded}",
                        account=code,
                        code=code,
                        held=held,
                        plugin=plugin,
                        recorded=recorded,
                    )
                )
