"""Tampering with stored history makes `sou audit` fail and name what was touched.

DESIGN.md musts 2, 3 and 7: each test takes a realistic, sealed ledger (the demo village's
life: top-ups by card and at the exchange office, a Stripe settlement, a cash deposit,
payments, a refund, a reconversion paid out, a correction, later payments sealed in later
rounds), checks that the audit holds, then alters the database directly as an attacker with
database access would: on SQLite with every trigger dropped and foreign keys off, on
PostgreSQL as superuser with `session_replication_role = replica` (no triggers, no foreign
key checks). The audit is then run through the real command line, `sou audit --json`.

The village is built once per engine and copied for each test (a file copy on SQLite, a
template database on PostgreSQL), so every test starts from the same fresh ledger.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

import audits.log
import node.cli
from audits.audit import audit
from ledger import fee_rules
from ledger.canonical import canonical
from ledger.chart import member_account
from ledger.merkle import MemoryNodes
from ledger.operations import NODE, TREASURER
from ledger.sealer import Sealer
from ledger.service import Ledger
from ledger.signing import SigningKey, new_order
from node.demo import seed
from runtime import witness
from runtime.database import make_engine
from runtime.keystore import key_path, save_key
from runtime.node import Node
from runtime.settings import Settings
from tests.conftest import (
    NODE_KEY,
    ORIGIN,
    TREASURER_KEY,
    Template,
    close_spares,
    pg_copy,
    pg_database,
)
from tests.factories import register

INES, HUGO, LEA = member_account("ines"), member_account("hugo"), member_account("lea")
JULES, CAFE = member_account("jules"), member_account("cafe-de-la-place")
LIBRAIRIE = member_account("librairie-la-plume")
TRANSFERS = 31  # the demo's 26, then 5 more below
KEY_EVENTS = 13  # node, treasurer, exchange office, 10 members


@pytest.fixture(autouse=True)
def small_log_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit walks the log a chunk at a time: a chunk filling an aligned subtree is hashed
    a level at a time, any other leaf by leaf. With chunks of four leaves a small village
    goes through both, and every tampering must be found by either."""
    monkeypatch.setattr(audits.log, "CHUNK", 4)


# -- the village ---------------------------------------------------------------------------


def _build_village(url: str, data_dir: Path) -> None:
    """The demo village's life on the ledger at `url`, sealed in several rounds."""
    engine = make_engine(url)
    try:
        save_key(key_path(data_dir / "keys", TREASURER), TREASURER_KEY, TREASURER)
        settings = Settings(data_dir=data_dir, database_url=url)
        # The fee rule a node records as it opens: the reconversions are checked against it.
        fee_rules.record(
            engine,
            NODE_KEY,
            ORIGIN,
            settings.reconversion_fee_bps,
            settings.reconversion_cause_share,
            0,
        )
        village = seed(Node(settings, engine, Ledger(engine), NODE_KEY), say=lambda _: None)
        sealer = Sealer(engine, NODE_KEY, ORIGIN, max_leaves=8)  # several checkpoints
        sealer.seal_all()
        with engine.connect() as conn:
            lunch = _find(conn, "payment", memo="Déjeuner")
        village.sign(TREASURER, "correction", ref=lunch, memo="Payé deux fois en caisse")
        for payer, payee, cents, memo in (
            (HUGO, member_account("boulangerie-du-lavoir"), 250, "Pain au chocolat"),
            (JULES, LIBRAIRIE, 700, "Carte postale et journal"),
        ):
            village.sign(
                payer,
                "payment",
                to=payee,
                amount=cents,
                currency="SOU",
                memo=memo,
                **{"from": payer},
            )
        village.sign(
            NODE,
            "topup",
            to=LEA,
            amount=2_000,
            currency="SOU",
            source="card",
            rule="stripe",
            ext="pi_demo_lea_2",
        )
        sealer.seal_all()
        # The last payment of the day, sealed alone in the last round.
        village.sign(
            LEA,
            "payment",
            to=CAFE,
            amount=330,
            currency="SOU",
            memo="Café et croissant",
            **{"from": LEA},
        )
        sealer.seal_all()
        report = audit(engine, node_public_key=NODE_KEY.public_key)
        assert report.ok, report.findings
        assert (report.transfers, report.key_events) == (TRANSFERS, KEY_EVENTS)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_village(sqlite_template: Template, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("village")
    path = folder / "village.db"
    shutil.copyfile(sqlite_template.url, path)
    _build_village(f"sqlite:///{path}", folder / "data")
    return path


@pytest.fixture(scope="session")
def pg_village(pg_template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"{pg_template.url}_village_{uuid.uuid4().hex[:6]}"
    with pg_database(name, pg_template.url) as url:
        _build_village(url, tmp_path_factory.mktemp("village") / "data")
        yield name
        close_spares(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def village_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh copy of the sealed village; the URL to reach it."""
    if request.param == "sqlite":
        path = tmp_path / "sou.db"
        shutil.copyfile(request.getfixturevalue("sqlite_village"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_village")
    with pg_copy(template) as url:
        yield url


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The node's data directory, holding the node key file as `sou init` leaves it."""
    path = tmp_path / "node"
    save_key(key_path(path / "keys", "node"), NODE_KEY, "node")
    return path


# -- the attacker and the auditor ----------------------------------------------------------


@contextmanager
def attacker(url: str) -> Iterator[Connection]:
    """One transaction with the database's own protections off (for good), then committed."""
    engine = create_engine(url, poolclass=NullPool)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _no_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA foreign_keys=OFF")

    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # triggers off, and every CHECK dropped
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                checks = conn.execute(
                    text(
                        "SELECT conrelid::regclass::text, conname FROM pg_constraint "
                        "WHERE contype = 'c' AND connamespace = 'public'::regnamespace"
                    )
                ).all()
                assert checks, "the migrations made no CHECK constraint"
                for table, name in checks:
                    conn.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            else:
                triggers = conn.scalars(
                    text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                ).all()
                assert triggers, "the migration made no triggers"
                for name in triggers:
                    conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
            yield conn
    finally:
        engine.dispose()


def sou_audit(data_dir: Path, url: str) -> tuple[int, dict[str, Any]]:
    """`sou audit --json` on the node: its exit code and its report."""
    result = CliRunner().invoke(
        node.cli.app,
        ["audit", "--json"],
        env={
            "SOU_DATA_DIR": str(data_dir),
            "SOU_DATABASE_URL": url,
            "SOU_CONFIG": str(data_dir / "no-such.toml"),
        },
    )
    assert result.exit_code in (0, 1), (result.exit_code, result.output, result.exception)
    return result.exit_code, json.loads(result.stdout)


def tampered(data_dir: Path, url: str, tamper: Callable[[Connection], None]) -> dict[str, Any]:
    """Check the audit holds, alter the database with `tamper`, and return the audit's
    report, which must fail."""
    engine = make_engine(url)
    try:
        before = audit(engine, node_public_key=NODE_KEY.public_key)
        with engine.connect() as conn:  # the checkpoint the running node kept on disk
            latest = conn.scalar(text("SELECT note FROM checkpoints ORDER BY tree_size DESC"))
    finally:
        engine.dispose()
    assert before.ok, before.findings
    witness.path_in(data_dir).write_text(latest)
    with attacker(url) as conn:
        tamper(conn)
    code, report = sou_audit(data_dir, url)
    assert (code, report["ok"]) == (1, False), report
    assert report["findings"], report
    return report


def named(report: dict[str, Any], check: str | None = None) -> set[int]:
    """Transfer ids the findings name (of one kind of check, if given)."""
    return {
        f["transfer_id"]
        for f in report["findings"]
        if "transfer_id" in f and (check is None or f["check"] == check)
    }


def report_leaf(report: dict[str, Any], transfer_id: int) -> int:
    return int(next(f["leaf"] for f in report["findings"] if f.get("transfer_id") == transfer_id))


def checks_on(report: dict[str, Any], transfer_id: int) -> set[str]:
    return {f["check"] for f in report["findings"] if f.get("transfer_id") == transfer_id}


# -- reading and writing the village as the attacker ---------------------------------------


def _find(conn: Connection, kind: str, **fields: Any) -> int:
    """The id of the one transfer of `kind` whose signed order has these fields."""
    found = [
        row.id
        for row in conn.execute(
            text("SELECT id, order_json FROM transfers WHERE kind = :kind ORDER BY id"),
            {"kind": kind},
        )
        if fields.items() <= json.loads(row.order_json).items()
    ]
    assert len(found) == 1, (kind, fields, found)
    return int(found[0])


def book_novel(conn: Connection) -> int:
    """Inès buys a novel and a notebook at the bookshop: 22.90."""
    return _find(conn, "payment", memo="Roman et carnet")


def account_id(conn: Connection, code: str) -> int:
    return int(conn.scalar(text("SELECT id FROM accounts WHERE code = :c"), {"c": code}))


def leaf_of(conn: Connection, transfer_id: int) -> int:
    return int(
        conn.scalar(text("SELECT idx FROM log_leaves WHERE transfer_id = :t"), {"t": transfer_id})
    )


def legs(conn: Connection, transfer_id: int) -> dict[str, int]:
    return {
        r.code: r.amount
        for r in conn.execute(
            text(
                "SELECT a.code, p.amount FROM postings p JOIN accounts a ON a.id = p.account_id "
                "WHERE p.transfer_id = :t"
            ),
            {"t": transfer_id},
        )
    }


def set_leg(conn: Connection, transfer_id: int, code: str, amount: int) -> None:
    conn.execute(
        text("UPDATE postings SET amount = :x WHERE transfer_id = :t AND account_id = :a"),
        {"x": amount, "t": transfer_id, "a": account_id(conn, code)},
    )


def add_to_balance(conn: Connection, code: str, delta: int) -> None:
    """What a careful attacker does after changing postings: make balances agree."""
    conn.execute(
        text("UPDATE accounts SET balance = balance + :d WHERE code = :c"), {"d": delta, "c": code}
    )


def swap(conn: Connection, table: str, column: str, a: int, b: int, parking: int) -> None:
    """Exchange the values `a` and `b` of a unique column, through a parking value."""
    for old, new in ((a, parking), (b, a), (parking, b)):
        conn.execute(
            text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old"),
            {"new": new, "old": old},
        )


def top_transfer(conn: Connection) -> int:
    return int(conn.scalar(text("SELECT max(id) FROM transfers")))


def forge_payment(conn: Connection, key: SigningKey, transfer_id: int, cents: int) -> None:
    """A payment from Inès to Hugo signed by `key`, written with its postings and
    balances, and queued for the sealer as if the node had accepted it."""
    fields: dict[str, Any] = {"from": INES, "to": HUGO, "amount": cents, "currency": "SOU"}
    order = new_order("payment", key, ORIGIN, memo="Remboursement", **fields)
    conn.execute(
        text(
            "INSERT INTO postings (transfer_id, account_id, currency, amount) VALUES "
            "(:t, :payer, 'SOU', :debit), (:t, :payee, 'SOU', :credit)"
        ),
        {
            "t": transfer_id,
            "payer": account_id(conn, INES),
            "payee": account_id(conn, HUGO),
            "debit": -cents,
            "credit": cents,
        },
    )
    conn.execute(
        text(
            "INSERT INTO transfers (id, kind, initiator, client_id, key_id, nonce, order_json, "
            "signature, ref_id, created_ms) VALUES (:id, 'payment', :initiator, :client_id, "
            ":key_id, :nonce, :order_json, :signature, NULL, :created_ms)"
        ),
        {
            "id": transfer_id,
            "initiator": INES,
            "client_id": order["id"],
            "key_id": key.key_id,
            "nonce": order["nonce"],
            "order_json": canonical(order).decode(),
            "signature": key.sign_bytes(canonical(order)),
            "created_ms": (order["expires"] - 60) * 1000,
        },
    )
    conn.execute(text("INSERT INTO log_queue (transfer_id) VALUES (:t)"), {"t": transfer_id})
    add_to_balance(conn, INES, -cents)
    add_to_balance(conn, HUGO, cents)


# -- the untouched ledger, and a node that cannot be audited -------------------------------


def test_untouched_village_audits_clean(village_url: str, data_dir: Path) -> None:
    code, report = sou_audit(data_dir, village_url)
    assert (code, report["ok"], report["findings"]) == (0, True, [])
    assert (report["transfers"], report["key_events"]) == (TRANSFERS, KEY_EVENTS)
    assert (report["leaves"], report["unsealed"]) == (TRANSFERS + KEY_EVENTS, 0)
    assert report["checkpoints"] >= 3
    assert report["accounts"] > 20


def test_audit_cannot_run_on_a_node_not_initialised(empty_db_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        node.cli.app,
        ["audit", "--json"],
        env={
            "SOU_DATA_DIR": str(tmp_path / "nothing-here"),
            "SOU_DATABASE_URL": empty_db_url,
            "SOU_CONFIG": str(tmp_path / "no-such.toml"),
        },
    )
    assert result.exit_code == 2, result.output
    assert "not initialised" in result.output
    assert result.stdout == ""  # no report at all, not an empty one


def test_audit_cannot_run_without_the_node_key(village_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        node.cli.app,
        ["audit", "--json"],
        env={
            "SOU_DATA_DIR": str(tmp_path / "keyless"),
            "SOU_DATABASE_URL": village_url,
            "SOU_CONFIG": str(tmp_path / "no-such.toml"),
        },
    )
    assert result.exit_code == 2, result.output
    assert "no key file" in result.output


def test_audit_with_another_nodes_key_finds_the_log_is_not_ours(
    village_url: str, tmp_path: Path
) -> None:
    """A database swapped for another node's (or a node key swapped in the database)."""
    other = tmp_path / "other"
    save_key(key_path(other / "keys", "node"), SigningKey(bytes(range(2, 34))), "node")
    code, report = sou_audit(other, village_url)
    assert code == 1
    messages = [f["message"] for f in report["findings"]]
    assert "key event 1: the log does not start with the trusted node key" in messages
    assert {f["check"] for f in report["findings"]} >= {"keys", "checkpoint"}


# -- postings ------------------------------------------------------------------------------


def test_one_posting_amount_changed(village_url: str, data_dir: Path) -> None:
    tid = 0

    def tamper(conn: Connection) -> None:
        nonlocal tid
        tid = book_novel(conn)
        set_leg(conn, tid, LIBRAIRIE, 22_900)

    report = tampered(data_dir, village_url, tamper)
    assert named(report) == {tid}
    assert checks_on(report, tid) == {"postings", "log"}
    assert f"transfer {tid}: postings do not sum to zero (SOU +20610)" in [
        f["message"] for f in report["findings"]
    ]
    assert {f.get("account") for f in report["findings"]} >= {LIBRAIRIE}


@pytest.mark.parametrize("balances", ["left", "made to agree"])
def test_both_legs_changed_so_the_transfer_still_sums_to_zero(
    village_url: str, data_dir: Path, balances: str
) -> None:
    tid = 0

    def tamper(conn: Connection) -> None:
        nonlocal tid
        tid = book_novel(conn)
        assert legs(conn, tid) == {INES: -2_290, LIBRAIRIE: 2_290}
        set_leg(conn, tid, INES, -229)
        set_leg(conn, tid, LIBRAIRIE, 229)
        if balances == "made to agree":
            add_to_balance(conn, INES, 2_061)
            add_to_balance(conn, LIBRAIRIE, -2_061)

    report = tampered(data_dir, village_url, tamper)
    assert named(report) == {tid}
    assert checks_on(report, tid) == {"postings", "log"}
    wrong = [f["message"] for f in report["findings"] if f["check"] == "postings"]
    assert wrong == [
        f"transfer {tid}: postings {INES} -229, {LIBRAIRIE} +229 differ from "
        f"those its order implies {INES} -2290, {LIBRAIRIE} +2290"
    ]
    touched = {f.get("account") for f in report["findings"]} - {None}
    assert touched == (set() if balances == "made to agree" else {INES, LIBRAIRIE})


def test_a_posting_moved_to_another_account(village_url: str, data_dir: Path) -> None:
    tid = 0

    def tamper(conn: Connection) -> None:
        nonlocal tid
        tid = book_novel(conn)
        conn.execute(
            text(
                "UPDATE postings SET account_id = :hugo WHERE transfer_id = :t "
                "AND account_id = :shop"
            ),
            {"hugo": account_id(conn, HUGO), "shop": account_id(conn, LIBRAIRIE), "t": tid},
        )
        add_to_balance(conn, LIBRAIRIE, -2_290)
        add_to_balance(conn, HUGO, 2_290)

    report = tampered(data_dir, village_url, tamper)
    assert named(report) == {tid}
    assert checks_on(report, tid) == {"postings", "log"}
    assert (
        f"transfer {tid}: postings {HUGO} +2290, {INES} -2290 differ from those its "
        f"order implies {INES} -2290, {LIBRAIRIE} +2290"
        in [f["message"] for f in report["findings"]]
    )


# -- signatures and orders -----------------------------------------------------------------


def test_one_byte_of_a_signature_changed(village_url: str, data_dir: Path) -> None:
    tid = 0

    def tamper(conn: Connection) -> None:
        nonlocal tid
        tid = book_novel(conn)
        signature = bytearray(
            conn.scalar(text("SELECT signature FROM transfers WHERE id = :t"), {"t": tid})
        )
        signature[17] ^= 0x01
        conn.execute(
            text("UPDATE transfers SET signature = :s WHERE id = :t"),
            {"s": bytes(signature), "t": tid},
        )

    report = tampered(data_dir, village_url, tamper)
    assert named(report) == {tid}
    assert checks_on(report, tid) == {"signature", "log"}
    assert f"transfer {tid}: the signature does not match the stored order" in [
        f["message"] for f in report["findings"]
    ]


def test_the_signed_order_changed_and_its_postings_rebalanced(
    village_url: str, data_dir: Path
) -> None:
    tid = 0

    def tamper(conn: Connection) -> None:
        nonlocal tid
        tid = book_novel(conn)
        order = conn.scalar(text("SELECT order_json FROM transfers WHERE id = :t"), {"t": tid})
        assert '"amount":2290,' in order
        conn.execute(
            text("UPDATE transfers SET order_json = :o WHERE id = :t"),
            {"o": order.replace('"amount":2290,', '"amount":229,'), "t": tid},
        )
        set_leg(conn, tid, INES, -229)
        set_leg(conn, tid, LIBRAIRIE, 229)
        add_to_balance(conn, INES, 2_061)
        add_to_balance(conn, LIBRAIRIE, -2_061)

    report = tampered(data_dir, village_url, tamper)
    assert named(report) == {tid}
    assert checks_on(report, tid) == {"signature", "log"}
    assert {f.get("account") for f in report["findings"]} == {None}  # balances agree


@pytest.mark.parametrize("in_key_table", [False, True], ids=["unknown-key", "key-row-added"])
def test_a_forged_transfer_signed_by_a_key_that_is_not_registered(
    village_url: str, data_dir: Path, in_key_table: bool
) -> None:
    """Mallory signs a payment from Inès to Hugo with her own key and writes it in, with
    balances that agree, queued for the sealer as if the node had accepted it. With
    `key-row-added` she also registers her key to Inès in the key table (no signed key
    event can do that for her)."""
    mallory = SigningKey(bytes(range(100, 132)))
    tid = 0

    def tamper(conn: Connection) -> None:
        nonlocal tid
        tid = top_transfer(conn) + 1
        if in_key_table:
            conn.execute(
                text(
                    "INSERT INTO keys (key_id, owner, public_key, registered_ms) "
                    "VALUES (:k, :o, :p, 0)"
                ),
                {"k": mallory.key_id, "o": INES, "p": mallory.public_key},
            )
        forge_payment(conn, mallory, tid, 1_000)

    report = tampered(data_dir, village_url, tamper)
    assert named(report) == {tid}
    assert checks_on(report, tid) == {"signature"}
    assert f"transfer {tid}: signed by unknown key {mallory.key_id}" in [
        f["message"] for f in report["findings"]
    ]
    assert report["unsealed"] == 1
    key_findings = [f["message"] for f in report["findings"] if f["check"] == "keys"]
    assert key_findings == (
        [f"key {mallory.key_id} differs from its signed key events"] if in_key_table else []
    )


def test_a_keys_public_key_changed(village_url: str, data_dir: Path) -> None:
    """Inès's registered key replaced by Mallory's, which then signs a payment from Inès:
    both the key row and the forged transfer are reported."""
    mallory = SigningKey(bytes(range(100, 132)))
    kid, tid = "", 0

    def tamper(conn: Connection) -> None:
        nonlocal kid, tid
        kid = conn.scalar(text("SELECT key_id FROM keys WHERE owner = :o"), {"o": INES})
        conn.execute(
            text("UPDATE keys SET public_key = :p WHERE key_id = :k"),
            {"p": mallory.public_key, "k": kid},
        )
        tid = top_transfer(conn) + 1
        # Mallory's key, under the stolen key id: the order names Inès's key.
        impostor = SigningKey(mallory.seed)
        impostor.key_id = kid
        forge_payment(conn, impostor, tid, 1_000)

    report = tampered(data_dir, village_url, tamper)
    assert f"key {kid} differs from its signed key events" in [
        f["message"] for f in report["findings"] if f["check"] == "keys"
    ]
    assert named(report) == {tid}
    assert checks_on(report, tid) == {"signature"}


# -- accounts ------------------------------------------------------------------------------


def test_a_stored_balance_changed(village_url: str, data_dir: Path) -> None:
    def tamper(conn: Connection) -> None:
        add_to_balance(conn, HUGO, 50_000)

    report = tampered(data_dir, village_url, tamper)
    assert [(f["check"], f.get("account")) for f in report["findings"]] == [("balance", HUGO)]
    assert "stored balance 51780, history gives 1780" in report["findings"][0]["message"]


def _widen(conn: Connection) -> None:
    """Inès's wallet allowed to go below zero in its row."""
    conn.execute(
        text("UPDATE accounts SET may_go_negative = :t WHERE code = :c"), {"t": True, "c": INES}
    )


def test_a_wallet_row_allowed_to_go_negative_is_reported(village_url: str, data_dir: Path) -> None:
    report = tampered(data_dir, village_url, _widen)
    assert [(f["check"], f.get("account")) for f in report["findings"]] == [("account", INES)]
    assert "may go below zero in its row" in report["findings"][0]["message"]


@pytest.mark.parametrize("column", ["kind", "currency"])
def test_an_account_row_differing_from_the_chart_is_reported(
    village_url: str, data_dir: Path, column: str
) -> None:
    value = {"kind": "issuance", "currency": "EUR"}[column]

    def tamper(conn: Connection) -> None:
        conn.execute(
            text(f"UPDATE accounts SET {column} = :v WHERE code = :c"), {"v": value, "c": HUGO}
        )

    report = tampered(data_dir, village_url, tamper)
    assert ("account", HUGO) in [(f["check"], f.get("account")) for f in report["findings"]]


def test_a_wallet_row_allowed_to_go_negative_lets_no_payment_overdraw(village_url: str) -> None:
    """What an account may do comes from the chart: the live node refuses the overdraft
    whatever the row says, and writes nothing."""
    engine = make_engine(village_url)
    try:
        ledger = Ledger(engine)
        ines = register(ledger, NODE_KEY, INES)  # her new phone, as sign-up registers it
        with attacker(village_url) as conn:
            _widen(conn)
        balance = ledger.balance(INES)
        order = new_order("payment", ines, ORIGIN, to=HUGO, amount=balance + 100_000)
        order.update({"from": INES, "currency": "SOU"})
        outcome = Ledger(engine).post([ines.sign(order)])[0]
        assert getattr(outcome, "code", None) == "insufficient_funds", outcome
        assert ledger.balance(INES) == balance
    finally:
        engine.dispose()


# -- removing history ----------------------------------------------------------------------


def test_a_transfer_deleted_with_its_postings(village_url: str, data_dir: Path) -> None:
    tid = 0

    def tamper(conn: Connection) -> None:
        nonlocal tid
        tid = book_novel(conn)
        conn.execute(text("DELETE FROM postings WHERE transfer_id = :t"), {"t": tid})
        conn.execute(text("DELETE FROM transfers WHERE id = :t"), {"t": tid})
        add_to_balance(conn, INES, 2_290)
        add_to_balance(conn, LIBRAIRIE, -2_290)

    report = tampered(data_dir, village_url, tamper)
    assert named(report) == {tid}
    assert [f["message"] for f in report["findings"] if f.get("transfer_id") == tid] == [
        f"leaf {report_leaf(report, tid)}: transfer {tid} is missing"
    ]


def test_a_log_leaf_deleted_from_the_middle(village_url: str, data_dir: Path) -> None:
    idx = 0

    def tamper(conn: Connection) -> None:
        nonlocal idx
        idx = leaf_of(conn, book_novel(conn))
        conn.execute(text("DELETE FROM log_leaves WHERE idx = :i"), {"i": idx})

    report = tampered(data_dir, village_url, tamper)
    assert ("log", idx, f"leaf {idx} is missing") in [
        (f["check"], f.get("leaf"), f["message"]) for f in report["findings"]
    ]


def test_a_deleted_log_leaf_names_its_transfer(village_url: str, data_dir: Path) -> None:
    tid = 0

    def tamper(conn: Connection) -> None:
        nonlocal tid
        tid = book_novel(conn)
        conn.execute(text("DELETE FROM log_leaves WHERE transfer_id = :t"), {"t": tid})

    report = tampered(data_dir, village_url, tamper)
    assert tid in named(report)


def test_the_last_log_leaf_deleted(village_url: str, data_dir: Path) -> None:
    tid = 0

    def tamper(conn: Connection) -> None:
        nonlocal tid
        tid = top_transfer(conn)
        conn.execute(text("DELETE FROM log_leaves WHERE transfer_id = :t"), {"t": tid})

    report = tampered(data_dir, village_url, tamper)
    assert tid in named(report)
    messages = [f["message"] for f in report["findings"]]
    assert f"transfer {tid} is neither in the log nor waiting for it" in messages
    size = TRANSFERS + KEY_EVENTS
    assert f"the log has {size - 1} leaves but the latest checkpoint signs {size}" in messages


def test_the_last_log_leaf_deleted_names_only_its_transfer(
    village_url: str, data_dir: Path
) -> None:
    tid = 0

    def tamper(conn: Connection) -> None:
        nonlocal tid
        tid = top_transfer(conn)
        conn.execute(text("DELETE FROM log_leaves WHERE transfer_id = :t"), {"t": tid})

    report = tampered(data_dir, village_url, tamper)
    assert named(report) == {tid}


# -- reordering history --------------------------------------------------------------------


def test_two_log_leaves_swapped(village_url: str, data_dir: Path) -> None:
    first = second = 0

    def tamper(conn: Connection) -> None:
        nonlocal first, second
        first = _find(conn, "payment", memo="Panier de légumes")
        second = _find(conn, "payment", memo="Bande dessinée")
        swap(conn, "log_leaves", "idx", leaf_of(conn, first), leaf_of(conn, second), 10**9)

    report = tampered(data_dir, village_url, tamper)
    reorder = [f for f in report["findings"] if "not in the order they were sealed" in f["message"]]
    assert len(reorder) == 2, report
    # Each finding names the smallest subtree that changed, by its leaves and transfers.
    for tid in (first, second):
        assert any(f"{tid}" in f["message"].split("transfers ")[1] for f in reorder), reorder
    assert {f["check"] for f in report["findings"]} == {"log", "checkpoint"}


def test_two_log_leaves_swapped_and_the_tree_rebuilt(village_url: str, data_dir: Path) -> None:
    """The attacker also recomputes every stored node (hashing needs no secret): only the
    signed checkpoints can tell, from the first one whose tree holds a moved leaf."""
    moved, broken = 0, []

    def tamper(conn: Connection) -> None:
        nonlocal moved, broken
        first = leaf_of(conn, _find(conn, "payment", memo="Panier de légumes"))
        second = leaf_of(conn, _find(conn, "payment", memo="Bande dessinée"))
        moved = min(first, second)
        broken = [
            int(size)
            for size in conn.scalars(
                text("SELECT tree_size FROM checkpoints WHERE tree_size > :m ORDER BY tree_size"),
                {"m": moved},
            )
        ]
        swap(conn, "log_leaves", "idx", first, second, 10**9)
        hashes = [bytes(h) for h in conn.scalars(text("SELECT hash FROM log_leaves ORDER BY idx"))]
        conn.execute(text("DELETE FROM log_nodes"))
        conn.execute(
            text("INSERT INTO log_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
            [
                {"l": level, "i": idx, "h": digest}
                for level, idx, digest in MemoryNodes.from_leaves(hashes).items()
                if level > 0
            ],
        )

    report = tampered(data_dir, village_url, tamper)
    assert {f["check"] for f in report["findings"]} == {"checkpoint"}
    messages = [f["message"] for f in report["findings"]]
    witnessed = f"the log's first {broken[-1]} leaves are not those of the checkpoint witnessed"
    assert [m for m in messages if m.startswith(witnessed)] == [messages.pop()]
    for message, size in zip(messages, broken, strict=True):
        assert message.startswith(
            f"checkpoint {size}: the log no longer has the tree this checkpoint signed"
        )
    assert f"leaves {moved}" not in messages[0]  # the range starts at an intact checkpoint
    assert messages[0].endswith(f"..{broken[0] - 1})")
    assert broken  # every checkpoint from the first moved leaf on, and only those
    assert named(report) == set()  # leaves and nodes agree: no transfer can be pointed at


def test_two_transfers_ids_swapped(village_url: str, data_dir: Path) -> None:
    """History reordered: two payments exchange their ids (postings follow them); each log
    leaf now points at the other payment."""
    first = second = 0

    def tamper(conn: Connection) -> None:
        nonlocal first, second
        first = _find(conn, "payment", memo="Panier de légumes")
        second = _find(conn, "payment", memo="Bande dessinée")
        for table, column in (("transfers", "id"), ("postings", "transfer_id")):
            swap(conn, table, column, first, second, 10**9)

    report = tampered(data_dir, village_url, tamper)
    assert named(report) == {first, second}
    assert checks_on(report, first) == checks_on(report, second) == {"log"}


# -- checkpoints ---------------------------------------------------------------------------


def _flip_in_signature(note: str) -> str:
    body, signature = note.rsplit(" ", 1)
    changed = "A" if signature[10] != "A" else "B"
    return f"{body} {signature[:10]}{changed}{signature[11:]}"


@pytest.mark.parametrize("what", ["note signature", "root", "note root", "deleted"])
def test_a_checkpoint_changed(village_url: str, data_dir: Path, what: str) -> None:
    size = 0

    def tamper(conn: Connection) -> None:
        nonlocal size
        size = int(
            conn.scalar(
                text(
                    "SELECT max(tree_size) FROM checkpoints WHERE "
                    "tree_size < (SELECT max(tree_size) FROM checkpoints)"
                )
            )
        )
        row = conn.execute(
            text("SELECT root, note FROM checkpoints WHERE tree_size = :s"), {"s": size}
        ).one()
        if what == "note signature":
            changes = {"note": _flip_in_signature(row.note), "root": row.root}
        elif what == "root":
            changes = {"note": row.note, "root": bytes(32)}
        elif what == "note root":  # the root line of the signed text
            lines = row.note.split("\n")
            lines[2] = "A" * 43 + "="
            changes = {"note": "\n".join(lines), "root": row.root}
        else:
            conn.execute(text("DELETE FROM checkpoints WHERE tree_size > :s"), {"s": size})
            return
        conn.execute(
            text("UPDATE checkpoints SET note = :note, root = :root WHERE tree_size = :s"),
            {**changes, "s": size},
        )

    report = tampered(data_dir, village_url, tamper)
    assert {f["check"] for f in report["findings"]} == {"checkpoint"}
    messages = {f["message"] for f in report["findings"]}
    if what == "deleted":  # the latest checkpoint, which the node also keeps on disk
        leaves = TRANSFERS + KEY_EVENTS
        assert messages == {
            f"the log has {leaves} leaves but the latest checkpoint signs {size}",
            f"the checkpoint of size {leaves} kept outside the database is no longer stored in it",
        }
    else:
        (message,) = messages
        assert message.startswith(f"checkpoint {size}: ")


# -- what the audit does not see -----------------------------------------------------------


def test_a_forged_transfer_with_id_zero(village_url: str, data_dir: Path) -> None:
    mallory = SigningKey(bytes(range(100, 132)))

    def tamper(conn: Connection) -> None:
        forge_payment(conn, mallory, 0, 1_000)
        add_to_balance(conn, INES, 1_000)  # leave the stored balances as they were
        add_to_balance(conn, HUGO, -1_000)
        conn.execute(text("DELETE FROM log_queue WHERE transfer_id = 0"))

    report = tampered(data_dir, village_url, tamper)
    assert 0 in named(report)


def test_a_replayed_payment(village_url: str, data_dir: Path) -> None:
    tid = 0

    def tamper(conn: Connection) -> None:
        nonlocal tid
        original = _find(conn, "payment", memo="Deux cafés")  # Hugo, 3.80 at the café
        tid = top_transfer(conn) + 1
        drop_unique_constraints_of_transfers(conn)
        conn.execute(
            text(
                "INSERT INTO transfers (id, kind, initiator, client_id, key_id, nonce, "
                "order_json, signature, ref_id, created_ms) SELECT :t, kind, initiator, "
                "client_id, key_id, nonce, order_json, signature, ref_id, created_ms "
                "FROM transfers WHERE id = :o"
            ),
            {"t": tid, "o": original},
        )
        conn.execute(
            text(
                "INSERT INTO postings (transfer_id, account_id, currency, amount) SELECT :t, "
                "account_id, currency, amount FROM postings WHERE transfer_id = :o"
            ),
            {"t": tid, "o": original},
        )
        conn.execute(text("INSERT INTO log_queue (transfer_id) VALUES (:t)"), {"t": tid})
        add_to_balance(conn, HUGO, -380)
        add_to_balance(conn, CAFE, 380)

    report = tampered(data_dir, village_url, tamper)
    assert tid in named(report)


def drop_unique_constraints_of_transfers(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "ALTER TABLE transfers DROP CONSTRAINT uq_transfers_client_id, "
            "DROP CONSTRAINT uq_transfers_nonce"
        )
        return
    # SQLite cannot drop a UNIQUE constraint: rebuild the table without it.
    conn.exec_driver_sql("PRAGMA legacy_alter_table = ON")
    conn.exec_driver_sql("CREATE TABLE transfers_copy AS SELECT * FROM transfers")
    conn.exec_driver_sql("DROP TABLE transfers")
    conn.exec_driver_sql("ALTER TABLE transfers_copy RENAME TO transfers")


def test_the_last_sealing_round_removed(village_url: str, data_dir: Path) -> None:
    tid = 0

    def tamper(conn: Connection) -> None:
        nonlocal tid
        tid = top_transfer(conn)
        assert legs(conn, tid) == {LEA: -330, CAFE: 330}
        size = leaf_of(conn, tid)  # the tree size before the last round
        assert (
            conn.scalar(text("SELECT count(*) FROM checkpoints WHERE tree_size = :s"), {"s": size})
            == 1
        )
        conn.execute(text("DELETE FROM postings WHERE transfer_id = :t"), {"t": tid})
        conn.execute(text("DELETE FROM transfers WHERE id = :t"), {"t": tid})
        conn.execute(text("DELETE FROM log_leaves WHERE idx >= :s"), {"s": size})
        conn.execute(text("DELETE FROM checkpoints WHERE tree_size > :s"), {"s": size})
        for level, idx in conn.execute(text("SELECT level, idx FROM log_nodes")).all():
            if (idx + 1) << level > size:  # a subtree covering a removed leaf
                conn.execute(
                    text("DELETE FROM log_nodes WHERE level = :l AND idx = :i"),
                    {"l": level, "i": idx},
                )
        add_to_balance(conn, LEA, 330)
        add_to_balance(conn, CAFE, -330)

    report = tampered(data_dir, village_url, tamper)
    size = TRANSFERS + KEY_EVENTS
    # The transfer is gone without a trace in the database; the kept checkpoint tells.
    assert [f["message"] for f in report["findings"]] == [
        f"a checkpoint of size {size} was witnessed but the log has only {size - 1} leaves: "
        "entries were removed"
    ]


# -- the log's stored tree, older checkpoints, key rows --------------------------------------


def test_a_stored_log_node_deleted(village_url: str, data_dir: Path) -> None:
    """The 32 first leaves' subtree: receipts and sealing read it, so the audit says so."""

    def tamper(conn: Connection) -> None:
        conn.execute(text("DELETE FROM log_nodes WHERE level = 5 AND idx = 0"))

    report = tampered(data_dir, village_url, tamper)
    assert [(f["check"], f["message"]) for f in report["findings"]] == [
        (
            "log",
            "the log's stored node at level 5, index 0 (over leaves 0..31) is missing: "
            "receipts and sealing need it",
        )
    ]


def test_an_older_checkpoint_deleted(village_url: str, data_dir: Path) -> None:
    """Each signed checkpoint names the one signed before it: none can go unseen."""
    sizes: list[int] = []

    def tamper(conn: Connection) -> None:
        sizes.extend(conn.scalars(text("SELECT tree_size FROM checkpoints ORDER BY tree_size")))
        conn.execute(text("DELETE FROM checkpoints WHERE tree_size = :s"), {"s": sizes[1]})

    report = tampered(data_dir, village_url, tamper)
    assert len(sizes) >= 4  # the village is sealed in several rounds
    assert [(f["check"], f["message"]) for f in report["findings"]] == [
        (
            "checkpoint",
            f"checkpoint {sizes[2]} was signed after checkpoint {sizes[1]}, "
            "which is no longer stored",
        )
    ]


@pytest.mark.parametrize("column", ["registered_ms", "revoked_ms"])
def test_a_key_rows_times_changed(village_url: str, data_dir: Path, column: str) -> None:
    kid = ""

    def tamper(conn: Connection) -> None:
        nonlocal kid
        kid = conn.scalar(text("SELECT key_id FROM keys WHERE owner = :o"), {"o": HUGO})
        conn.execute(text(f"UPDATE keys SET {column} = 1 WHERE key_id = :k"), {"k": kid})

    report = tampered(data_dir, village_url, tamper)
    assert [(f["check"], f["message"]) for f in report["findings"]] == [
        ("keys", f"key {kid} differs from its signed key events")
    ]


# -- what the node reads to open: the audit reads it, and writes nothing -----------------------


def test_a_system_account_deleted_is_reported_and_not_made_again(
    village_url: str, data_dir: Path
) -> None:
    def tamper(conn: Connection) -> None:
        conn.execute(text("DELETE FROM accounts WHERE code = 'notes:stock'"))

    report = tampered(data_dir, village_url, tamper)
    assert [(f["check"], f["message"]) for f in report["findings"]] == [
        ("account", "system account notes:stock is missing")
    ]
    engine = create_engine(village_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert (
                conn.scalar(text("SELECT count(*) FROM accounts WHERE code = 'notes:stock'")) == 0
            )
    finally:
        engine.dispose()
    code, again = sou_audit(data_dir, village_url)  # the same, the second time too
    assert (code, again["findings"]) == (1, report["findings"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            "UPDATE ledger_meta SET value = 'elsewhere.example/other' WHERE name = 'origin'",
            "ledger_meta: the origin is 'elsewhere.example/other', but the node key's signed "
            f"registration names '{ORIGIN}'",
        ),
        (
            "UPDATE ledger_meta SET value = 'EUSKO' WHERE name = 'currency'",
            "ledger_meta: the currency is 'EUSKO', but the ledger's orders and accounts are in "
            "'SOU'",
        ),
        (
            "DELETE FROM ledger_meta WHERE name = 'origin'",
            "ledger_meta: the origin is None, but the node key's signed registration names "
            f"'{ORIGIN}'",
        ),
        (
            "DELETE FROM ledger_meta",
            "ledger_meta: the origin is None, but the node key's signed registration names "
            f"'{ORIGIN}'",
        ),
        (
            "INSERT INTO ledger_meta (name, value) VALUES ('max_amount', '99999999')",
            "ledger_meta: unexpected entry 'max_amount'",
        ),
    ],
)
def test_ledger_meta_altered_is_a_finding_naming_it(
    village_url: str, data_dir: Path, change: str, expected: str
) -> None:
    def tamper(conn: Connection) -> None:
        conn.execute(text(change))

    report = tampered(data_dir, village_url, tamper)
    assert expected in [f["message"] for f in report["findings"] if f["check"] == "meta"]
    # The rest is audited with what is signed: no finding on transfers or the log.
    assert {f["check"] for f in report["findings"]} == {"meta"}
