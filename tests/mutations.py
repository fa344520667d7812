"""Random single mutations of a sealed ledger's stored rows, for the audit's mutation sweep.

A `Village` is a snapshot of every table `ledger.models` declares, read once from a sealed
ledger. `plan` draws mutations from it, spread evenly over the tables and over four ways an
attacker with database access changes history: alter one field of one row, delete a row,
insert a copied or forged row, swap two rows' contents (reordering). Each mutation is a few
SQLAlchemy Core statements, applied later to a fresh copy of that ledger, and says what a
finding must name (the transfer, account, leaf or the table's check) or, when the change
means nothing the audit derives from signed data, why it is exempt.
"""

from __future__ import annotations

import itertools
import json
import random
import string
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Executable, Table, and_, inspect, select

from ledger import models
from ledger.canonical import canonical
from ledger.chart import SYSTEM_ACCOUNTS

OPS = ("alter", "delete", "insert", "swap")
PARKING = 10**9  # a value no row has, to exchange the values of a unique column through
UNUSED = 10**6  # ids and positions no row has

# Columns nothing signed says anything of, so no audit can derive them: changing one
# changes nothing a transfer, a key event or the log means.
UNSIGNED = {
    # When the node made the account row: accounts are opened by the node (at sign-up, or
    # by the first transfer naming them); no order or key event carries this time.
    ("accounts", "created_ms"): "when the row was made: no signed order or event says",
    # The node's clock when it signed the checkpoint; the signed note holds origin, size,
    # root and the previous size, not this time.
    ("checkpoints", "created_ms"): "not in the signed note: only the node's clock knows it",
}

Place = tuple[str, Any]  # ("transfer_id" | "account" | "leaf" | "check" | "mentions", value)


@dataclass(frozen=True)
class Mutation:
    table: str
    op: str
    row: str  # which row(s), by primary key
    column: str
    old: Any
    new: Any
    statements: tuple[Executable, ...] = field(repr=False)
    places: frozenset[Place] = frozenset()
    exempt: str | None = None  # why this changes nothing the audit derives from signed data

    def describe(self) -> str:
        change = f"{_show(self.old)} → {_show(self.new)}"
        return f"{self.table} {self.op} {self.row} {self.column}: {change}"

    def named_by(self, finding: Any) -> bool:
        """Whether a finding points at what this mutation touched."""
        return any(_names(finding, place) for place in self.places)


def _show(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()[:16] + ("…" if len(value) > 8 else "")
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _names(finding: Any, place: Place) -> bool:
    what, value = place
    if what == "any":  # a table this sweep knows no place in yet: any finding will do
        return True
    if what == "check":
        return bool(finding.check == value)
    if what == "mentions":
        return str(value) in finding.message
    if what == "leaf":  # a finding names one leaf, or a range of them in its message
        if finding.leaf == value:
            return True
        words = finding.message.replace(",", " ").replace(")", " ").split()
        for before, word in itertools.pairwise(words):
            if before == "leaves" and ".." in word:
                first, _, last = word.partition("..")
                if first.isdigit() and last.isdigit() and int(first) <= value <= int(last):
                    return True
        return False
    return bool(getattr(finding, what) == value)


# -- the sealed ledger, read once ----------------------------------------------------------


def _tables() -> dict[str, Table]:
    """The ledger's own tables (plugins declare theirs on the same metadata)."""
    return {t.name: t for t in vars(models).values() if isinstance(t, Table)}


class Village:
    """Every row of every ledger table, and the links the mutations need."""

    def __init__(self, conn: Connection) -> None:
        present = set(inspect(conn).get_table_names())
        # A table declared before its migration is chained (another engineer's, meanwhile)
        # is not in the database yet: nothing to mutate there.
        self.absent = sorted(set(_tables()) - present)
        self.tables = {name: t for name, t in _tables().items() if name in present}
        self.rows: dict[str, list[dict[str, Any]]] = {
            name: [dict(r) for r in conn.execute(select(t)).mappings()]
            for name, t in self.tables.items()
        }
        for rows in self.rows.values():
            for row in rows:
                for k, v in row.items():
                    if isinstance(v, memoryview):
                        row[k] = bytes(v)
        self.code = {a["id"]: a["code"] for a in self.rows["accounts"]}
        self.leaf_of_transfer = {
            r["transfer_id"]: r["idx"] for r in self.rows["log_leaves"] if r["transfer_id"]
        }
        self.leaf_of_event = {
            r["key_event_id"]: r["idx"] for r in self.rows["log_leaves"] if r["key_event_id"]
        }
        self.size = len(self.rows["log_leaves"])
        self.transfers_of_account: dict[int, set[int]] = defaultdict(set)
        for p in self.rows["postings"]:
            self.transfers_of_account[p["account_id"]].add(p["transfer_id"])

    def table_names(self) -> list[str]:
        return sorted(self.tables)

    # what a finding on a row must name
    def transfer_places(self, *tids: int) -> set[Place]:
        places: set[Place] = set()
        for tid in tids:
            places.add(("transfer_id", tid))
            places.add(("mentions", f"transfer {tid}"))
            if tid in self.leaf_of_transfer:
                places.add(("leaf", self.leaf_of_transfer[tid]))
        return places

    def account_places(self, *ids: int, with_transfers: bool = True) -> set[Place]:
        places: set[Place] = set()
        for aid in ids:
            if aid in self.code:
                places.add(("account", self.code[aid]))
            places.add(("account", f"#{aid}"))
            if with_transfers:  # a changed account row changes what its postings say
                places |= self.transfer_places(*self.transfers_of_account.get(aid, ()))
        return places

    def event_places(self, *eids: int) -> set[Place]:
        places: set[Place] = {("check", "keys")}
        for eid in eids:
            places.add(("mentions", f"key event {eid}"))
            if eid in self.leaf_of_event:
                places.add(("leaf", self.leaf_of_event[eid]))
        return places

    def used(self, aid: int) -> bool:
        """Whether signed history names the account (a posting), or the chart requires it."""
        return bool(self.transfers_of_account.get(aid)) or self.code.get(aid) in SYSTEM_ACCOUNTS


# -- drawing values ------------------------------------------------------------------------


def flip_char(rng: random.Random, text: str) -> str:
    if not text:
        return rng.choice(string.ascii_lowercase)
    at = rng.randrange(len(text))
    pool = string.digits if text[at].isdigit() else string.ascii_letters
    return text[:at] + rng.choice([c for c in pool if c != text[at]]) + text[at + 1 :]


def flip_bit(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return b"\x01"
    at = rng.randrange(len(data) * 8)
    changed = bytearray(data)
    changed[at // 8] ^= 1 << (at % 8)
    return bytes(changed)


def other_int(rng: random.Random, value: int | None, peers: list[Any]) -> int:
    value = value or 0
    choices = [value + 1, value - 1, value * 2 or 7, -value or -1]
    choices += [p for p in peers if isinstance(p, int) and not isinstance(p, bool)]
    return int(rng.choice([c for c in choices if c != value] or [value + 1]))


def _leaves_of(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves_of(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves_of(v, (*path, i))
    else:
        yield path, obj


def alter_json(rng: random.Random, text: str) -> str:
    """One value inside a signed JSON object changed (or the bytes made non-canonical)."""
    try:
        obj = json.loads(text)
    except ValueError:
        return flip_char(rng, text)
    if not isinstance(obj, dict) or rng.random() < 0.1:
        return text.replace(":", ": ", 1)  # the same object, other bytes than were signed
    path, value = rng.choice(list(_leaves_of(obj)))
    if isinstance(value, bool) or value is None:
        new: Any = not value
    elif isinstance(value, int):
        new = other_int(rng, value, [])
    elif isinstance(value, str):
        new = flip_char(rng, value)
    else:
        new = str(value)
    target = obj
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return canonical(obj).decode()


def alter_note(rng: random.Random, note: str) -> str:
    """One character of a signed checkpoint note changed (a line of its body, or its
    signature line)."""
    lines = note.split("\n")
    at = rng.choice([i for i, line in enumerate(lines) if line])
    lines[at] = flip_char(rng, lines[at])
    return "\n".join(lines)


# -- statements ----------------------------------------------------------------------------


def _where(table: Table, row: dict[str, Any]) -> Any:
    return and_(*(c == row[c.name] for c in table.primary_key.columns))


def _key(table: Table, row: dict[str, Any]) -> str:
    return ",".join(f"{c.name}={row[c.name]}" for c in table.primary_key.columns)


def update(table: Table, row: dict[str, Any], **values: Any) -> Executable:
    return table.update().where(_where(table, row)).values(**values)


def exchange(table: Table, column: str, a: Any, b: Any, parking: Any) -> tuple[Executable, ...]:
    """Swap the values `a` and `b` of a (unique) column through a parking value."""
    col = table.c[column]
    return tuple(
        table.update().where(col == old).values({column: new})
        for old, new in ((a, parking), (b, a), (parking, b))
    )


# -- the planner ---------------------------------------------------------------------------

Maker = Callable[["Planner"], Mutation | None]


class Planner:
    def __init__(self, village: Village, rng: random.Random) -> None:
        self.v, self.rng = village, rng

    def plan(self, count: int) -> list[Mutation]:
        """`count` distinct mutations, the tables and the ways taken in turn."""
        drawn: list[Mutation] = []
        seen: set[str] = set()
        tables = self.v.table_names()
        # Each round visits every table once, each with another way: a short plan (as on
        # PostgreSQL) still touches every table.
        ways = [(t, OPS[(i + j) % len(OPS)]) for j in range(len(OPS)) for i, t in enumerate(tables)]
        attempts = 0
        while len(drawn) < count and attempts < count * 50:
            table, op = ways[attempts % len(ways)]
            attempts += 1
            if attempts % len(ways) == 0:
                self.rng.shuffle(ways)
            mutation = MAKERS[op](self, table)
            if mutation is None and not self.v.rows[table]:  # an empty table (the log queue)
                mutation = self.insert(table)
            if mutation is None or mutation.describe() in seen:
                continue  # nothing to do there, or a mutation already drawn
            seen.add(mutation.describe())
            drawn.append(mutation)
        return drawn

    def pick(self, table: str) -> dict[str, Any] | None:
        rows = self.v.rows[table]
        return dict(self.rng.choice(rows)) if rows else None

    def places(self, table: str, *rows: dict[str, Any]) -> set[Place]:
        v = self.v
        places: set[Place] = set()
        for row in rows:
            if table == "transfers":
                places |= v.transfer_places(row["id"])
            elif table == "postings":
                places |= v.transfer_places(row["transfer_id"])
                places |= v.account_places(row["account_id"], with_transfers=False)
            elif table == "accounts":
                places |= v.account_places(row["id"])
                places.add(("account", row["code"]))
            elif table == "keys":
                places |= {("check", "keys"), ("mentions", f"key {row['key_id']}")}
            elif table == "key_events":
                places |= v.event_places(row["id"])
            elif table == "log_leaves":
                places.add(("leaf", row["idx"]))
                if row["transfer_id"] is not None:
                    places |= v.transfer_places(row["transfer_id"])
                if row["key_event_id"] is not None:
                    places.add(("mentions", f"key event {row['key_event_id']}"))
            elif table == "log_nodes":
                level, idx = row["level"], row["idx"]
                if level < 0 or idx < 0:  # a position no tree has: the log's check, anywhere
                    places.add(("check", "log"))
                    continue
                first, last = idx << level, ((idx + 1) << level) - 1
                places |= {("leaf", i) for i in range(first, min(last, v.size - 1) + 1)}
                if last >= v.size:  # over leaves the log does not have
                    places.add(("leaf", v.size))
            elif table == "checkpoints":
                places.add(("check", "checkpoint"))
            elif table == "ledger_meta":
                places.add(("check", "meta"))
            elif table == "log_queue":
                if row.get("transfer_id") is not None:
                    places |= v.transfer_places(row["transfer_id"])
                if row.get("key_event_id") is not None:
                    places.add(("mentions", f"key event {row['key_event_id']}"))
            else:
                places.add(("any", None))
        return places

    # -- alter one field of one row ---------------------------------------------------------

    def alter(self, table: str) -> Mutation | None:
        row = self.pick(table)
        if row is None:
            return None
        t = self.v.tables[table]
        column = self.rng.choice([c.name for c in t.columns])
        old = row[column]
        new = self.new_value(table, column, old)
        if new is None and not t.c[column].nullable:
            return None
        if new == old:
            return None  # the value it already had: means nothing, not counted
        changed = {**row, column: new}
        places = self.places(table, row, changed)
        if table == "accounts" and column == "id" and new in self.v.code:
            return None
        return Mutation(
            table,
            "alter",
            _key(t, row),
            column,
            old,
            new,
            (update(t, row, **{column: new}),),
            frozenset(places),
            self.exempt_alter(table, column, row, changed),
        )

    def new_value(self, table: str, column: str, old: Any) -> Any:
        rng, v = self.rng, self.v
        t = v.tables[table]
        col = t.c[column]
        peers = [r[column] for r in v.rows[table] if r[column] != old]
        if col.primary_key and column in ("id", "idx", "tree_size"):
            return old + rng.choice([UNUSED, UNUSED + 1, -UNUSED])  # a free id or position
        if column == "level":
            return rng.choice([old + 1, old + 2, old + 7, 0, -1])  # another level, same index
        if column in ("event_json", "order_json"):
            return alter_json(rng, old)
        if column == "note":
            return alter_note(rng, old)
        if isinstance(old, bool):
            return not old
        if isinstance(old, bytes):
            if peers and not col.unique and rng.random() < 0.3:
                return rng.choice(peers)
            return flip_bit(rng, old)
        if old is None:
            if col.nullable and peers and rng.random() < 0.7:
                return rng.choice(peers)
            return rng.randrange(1, 50)
        if isinstance(old, int):
            if col.nullable and rng.random() < 0.2:
                return None
            return other_int(rng, old, peers if column not in ("created_ms",) else [])
        if isinstance(old, str):
            if col.nullable and rng.random() < 0.2:
                return None
            if peers and rng.random() < 0.5:
                return rng.choice(peers)  # a value another row has: often collides, is refused
            return flip_char(rng, old)
        return None

    def exempt_alter(
        self, table: str, column: str, row: dict[str, Any], changed: dict[str, Any]
    ) -> str | None:
        if (table, column) in UNSIGNED:
            return UNSIGNED[(table, column)]
        if table != "accounts":
            return None
        unposted = not self.v.transfers_of_account.get(row["id"])
        if column == "id" and unposted:
            # A row number only postings refer to: no posting, nothing it changes.
            return "the id of an account no posting names: nothing signed refers to it"
        if column == "code" and not self.v.used(row["id"]):
            # An account no transfer posts to and the chart does not require: its name is
            # named by nothing signed (its balance and kind still are checked).
            return "the code of an account no posting names and the chart does not require"
        return None

    # -- delete a row -----------------------------------------------------------------------

    def delete(self, table: str) -> Mutation | None:
        row = self.pick(table)
        if row is None:
            return None
        t = self.v.tables[table]
        exempt = None
        if table == "accounts" and not self.v.used(row["id"]) and row["balance"] == 0:
            exempt = "an empty account no posting names and the chart does not require"
        return Mutation(
            table,
            "delete",
            _key(t, row),
            "*",
            "row",
            None,
            (t.delete().where(_where(t, row)),),
            frozenset(self.places(table, row)),
            exempt,
        )

    # -- insert a copied or forged row ------------------------------------------------------

    def insert(self, table: str) -> Mutation | None:
        made = INSERTS.get(table, Planner.insert_copy)(self, table)
        if made is None:
            return None
        row, how, exempt = made
        t = self.v.tables[table]
        return Mutation(
            table,
            "insert",
            _key(t, row),
            how,
            None,
            {k: _show(x) for k, x in row.items()},
            (t.insert().values(row),),
            frozenset(self.places(table, row)),
            exempt,
        )

    def _copy(self, table: str) -> dict[str, Any] | None:
        return self.pick(table)

    def insert_copy(self, table: str) -> Made | None:
        """Any other table: a row copied under a new primary key."""
        row = self._copy(table)
        if row is None:
            return None
        for column in self.v.tables[table].primary_key.columns:
            old = row[column.name]
            row[column.name] = old + UNUSED if isinstance(old, int) else flip_char(self.rng, old)
        return row, "copied row", None

    def insert_transfer(self, _table: str) -> Made | None:
        row = self._copy("transfers")
        if row is None:
            return None
        top = max(r["id"] for r in self.v.rows["transfers"])
        # A copy under a new id: the unique keys make a replay change its nonce and client id.
        row.update(id=top + self.rng.randint(1, 3), once_key=None)
        row.update(nonce=row["nonce"] + "x", client_id=row["client_id"] + "x")
        return row, "copied transfer", None

    def insert_posting(self, _table: str) -> Made | None:
        row = self._copy("postings")
        if row is None:
            return None
        others = [
            r["id"]
            for r in self.v.rows["transfers"]
            if r["id"] not in self.v.transfers_of_account[row["account_id"]]
        ]
        row["transfer_id"] = self.rng.choice(others)  # a leg added to another transfer
        return row, "copied posting", None

    def insert_account(self, _table: str) -> Made | None:
        members = [r for r in self.v.rows["accounts"] if r["code"].startswith("member:")]
        row = dict(self.rng.choice(members))
        row.update(
            id=UNUSED + self.rng.randint(1, 9), code=f"member:mallory{self.rng.randint(1, 99)}"
        )
        row["balance"] = self.rng.choice([0, 100, 5_000])
        exempt = (
            "a forged empty account no posting names: nothing signed is changed"
            if row["balance"] == 0
            else None
        )
        return row, "forged account", exempt

    def insert_key(self, _table: str) -> Made | None:
        row = self._copy("keys")
        if row is None:
            return None
        row.update(
            key_id=flip_char(self.rng, row["key_id"]),
            public_key=bytes(self.rng.randrange(256) for _ in range(32)),
        )
        return row, "forged key", None

    def insert_key_event(self, _table: str) -> Made | None:
        row = self._copy("key_events")
        if row is None:
            return None
        row["id"] = max(r["id"] for r in self.v.rows["key_events"]) + self.rng.randint(1, 3)
        return row, "copied key event", None

    def insert_leaf(self, _table: str) -> Made | None:
        row = self._copy("log_leaves")
        if row is None:
            return None
        row["idx"] = self.v.size + self.rng.choice([0, 0, 3])
        if row["transfer_id"] is not None:
            row["transfer_id"] = UNUSED + self.rng.randint(1, 9)
        else:
            row["key_event_id"] = UNUSED + self.rng.randint(1, 9)
        return row, "copied leaf naming nothing", None

    def insert_node(self, _table: str) -> Made | None:
        row = self._copy("log_nodes")
        if row is None:
            return None
        row["idx"] = (self.v.size >> row["level"]) + self.rng.randint(0, 3)  # beyond the log
        if any(
            (r["level"], r["idx"]) == (row["level"], row["idx"]) for r in self.v.rows["log_nodes"]
        ):
            return None
        return row, "copied node beyond the log", None

    def insert_checkpoint(self, _table: str) -> Made | None:
        row = self._copy("checkpoints")
        if row is None:
            return None
        row["tree_size"] = self.v.size + self.rng.randint(1, 5)
        return row, "copied checkpoint", None

    def insert_meta(self, _table: str) -> Made | None:
        row = self._copy("ledger_meta")
        if row is None:
            return None
        row["name"] = flip_char(self.rng, row["name"])
        return row, "copied entry", None

    def insert_queue(self, _table: str) -> Made | None:
        what = self.rng.choice(["sealed transfer", "sealed key event", "no transfer", "no event"])
        row: dict[str, Any] = {"id": UNUSED + self.rng.randint(1, 9), "transfer_id": None}
        row["key_event_id"] = None
        if what == "sealed transfer":
            row["transfer_id"] = self.rng.choice(list(self.v.leaf_of_transfer))
        elif what == "sealed key event":
            row["key_event_id"] = self.rng.choice(list(self.v.leaf_of_event))
        elif what == "no transfer":
            row["transfer_id"] = UNUSED + self.rng.randint(1, 9)
        else:
            row["key_event_id"] = UNUSED + self.rng.randint(1, 9)
        return row, f"entry naming a {what}", None

    # -- swap two rows' contents ------------------------------------------------------------

    def swap(self, table: str) -> Mutation | None:
        rows = self.v.rows[table]
        if len(rows) < 2:
            return None
        a, b = (dict(r) for r in self.rng.sample(rows, 2))
        t = self.v.tables[table]
        pk = [c.name for c in t.primary_key.columns]
        # Reordering: two rows exchange their keys (what refers to them stays where it was);
        # where the key is composite, or half the time for accounts, they exchange a value.
        keyed = (pk[0], "code")[table == "accounts"]
        if len(pk) == 1 and (table != "accounts" or self.rng.random() < 0.5):
            column = keyed
            statements = exchange(t, column, a[column], b[column], self._parking(a[column]))
        else:
            column = self.rng.choice([c.name for c in t.columns if not (c.primary_key or c.unique)])
            statements = (update(t, a, **{column: b[column]}), update(t, b, **{column: a[column]}))
        if a[column] == b[column]:
            return None  # the same value: nothing changes
        exempt = UNSIGNED.get((table, column))
        if (
            table == "accounts"
            and column == "code"
            and not (self.v.used(a["id"]) or self.v.used(b["id"]))
        ):
            exempt = "two accounts no posting names exchange their codes: nothing signed changes"
        return Mutation(
            table,
            "swap",
            f"{_key(t, a)} ⇄ {_key(t, b)}",
            column,
            a[column],
            b[column],
            statements,
            frozenset(self.places(table, a, b)),
            exempt,
        )

    def _parking(self, value: Any) -> Any:
        if isinstance(value, int):
            return PARKING
        if isinstance(value, bytes):
            return b"\xff" * len(value)
        return f"parking-{value}"[: max(len(value), 12)]


MAKERS: dict[str, Callable[[Planner, str], Mutation | None]] = {
    "alter": Planner.alter,
    "delete": Planner.delete,
    "insert": Planner.insert,
    "swap": Planner.swap,
}

Made = tuple[dict[str, Any], str, str | None]  # the row, what it is, why it is exempt
INSERTS: dict[str, Callable[[Planner, str], Made | None]] = {
    "transfers": Planner.insert_transfer,
    "postings": Planner.insert_posting,
    "accounts": Planner.insert_account,
    "keys": Planner.insert_key,
    "key_events": Planner.insert_key_event,
    "log_leaves": Planner.insert_leaf,
    "log_nodes": Planner.insert_node,
    "checkpoints": Planner.insert_checkpoint,
    "ledger_meta": Planner.insert_meta,
    "log_queue": Planner.insert_queue,
}


def plan(conn: Connection, seed: int, count: int) -> tuple[Village, list[Mutation]]:
    """The ledger `conn` reads, and `count` mutations of it drawn with `seed`."""
    village = Village(conn)
    return village, Planner(village, random.Random(seed)).plan(count)


def ledger_tables() -> Iterable[str]:
    return sorted(_tables())
