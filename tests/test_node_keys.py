"""A node signs only with the keys its log registers, and the sealer says what stops it.

Several nodes may serve one database when they hold the same keys. A node started with
other keys (a `sou init` made elsewhere, pointed at the database) is refused before it
writes anything; a sealer given another key signs no checkpoint; a running node whose key
the log no longer registers answers 503 rather than sign. A damaged stored tree stops
sealing with a message naming the node, logged once. A sealing round that another process
won is normal and logs nothing above debug.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

import ledger.sealer as sealer_module
from ledger.canonical import canonical
from ledger.errors import InsufficientFunds
from ledger.models import checkpoints, key_events, log_leaves, log_queue, transfers
from ledger.posting import Posted
from ledger.sealer import Sealer, UnregisteredNodeKey
from ledger.service import Ledger, key_event
from ledger.signing import SigningKey
from node.cli import app as cli
from runtime.database import make_engine
from runtime.keystore import key_path, load_key, save_key
from runtime.node import KeysMismatch, open_node, role_key
from runtime.settings import Settings
from tests.conftest import NODE_KEY, ORIGIN
from tests.factories import Book, register
from tests.people import join, operator

runner = CliRunner()


def log_state(url: str) -> tuple[int, ...]:
    """Checkpoints, key events, queued and sealed entries, transfers: what a refused node
    must leave as they were."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            tables = (checkpoints, key_events, log_queue, log_leaves, transfers)
            return tuple(int(conn.scalar(select(func.count()).select_from(t)) or 0) for t in tables)
    finally:
        engine.dispose()


def env_of(settings: Settings) -> dict[str, str]:
    return {"SOU_DATA_DIR": str(settings.data_dir), "SOU_DATABASE_URL": settings.database_url}


def serve_once(settings: Settings) -> subprocess.CompletedProcess[str]:
    """`sou serve` as an operator starts it, expected to stop at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOU_")}
    env.update(env_of(settings), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "node.cli", "serve", "--workers", "1", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def said(output: str) -> str:
    """What a command printed, whatever the terminal's width made of its lines."""
    return " ".join(output.split())


def a_stranger_key(settings: Settings, owner: str) -> SigningKey:
    """Replace the key file of `owner` with a key of another node's making."""
    path = key_path(settings.keys_dir, owner)
    path.unlink()
    stranger = SigningKey.generate()
    save_key(path, stranger, owner)
    return stranger


# -- a node whose keys are not the log's ---------------------------------------------------


def test_a_node_with_another_node_key_is_refused_and_writes_nothing(
    node_settings: Settings,
) -> None:
    url = node_settings.resolved_database_url
    registered = load_key(key_path(node_settings.keys_dir, "node"))
    stranger = a_stranger_key(node_settings, "node")
    before = log_state(url)

    with pytest.raises(KeysMismatch) as refused:
        open_node(node_settings)
    message = str(refused.value)
    assert str(key_path(node_settings.keys_dir, "node")) in message
    assert stranger.key_id in message and registered.key_id in message
    assert (
        "Copy the keys directory of the node that ran `sou init` for this database into "
        f"{node_settings.keys_dir}"
    ) in message

    sealing = runner.invoke(cli, ["seal"], env=env_of(node_settings))
    assert sealing.exit_code == 2, sealing.output
    assert stranger.key_id in said(sealing.output) and "Traceback" not in sealing.output
    served = serve_once(node_settings)
    assert served.returncode == 2, served.stderr
    assert "Traceback" not in served.stderr
    assert f"{key_path(node_settings.keys_dir, 'node')} holds the key {stranger.key_id}" in said(
        served.stderr
    )
    assert log_state(url) == before  # no checkpoint, no key event, nothing sealed


def test_a_node_with_another_role_key_is_refused(node_settings: Settings) -> None:
    registered = role_key(node_settings, "role:treasurer")
    stranger = a_stranger_key(node_settings, "role:treasurer")
    with pytest.raises(KeysMismatch) as refused:
        open_node(node_settings)
    assert f"holds the key {stranger.key_id}, but the log of this database registers " in str(
        refused.value
    )
    assert f"registers {registered.key_id} as the role:treasurer key" in str(refused.value)


def test_commands_in_a_data_directory_without_keys_exit_2_and_say_why(
    node_settings: Settings,
) -> None:
    shutil.rmtree(node_settings.keys_dir)
    expected = (
        f"no key file at {key_path(node_settings.keys_dir, 'node')}: this data directory "
        "holds no node. Run `sou init` to make a new node, or copy the keys directory"
    )
    sealing = runner.invoke(cli, ["seal"], env=env_of(node_settings))
    assert sealing.exit_code == 2 and expected in said(sealing.output), sealing.output
    served = serve_once(node_settings)
    assert served.returncode == 2 and expected in said(served.stderr), served.stderr
    assert "Traceback" not in served.stderr
    # `sou init` finds the database's ledger: it makes no keys of its own, and says so.
    made = runner.invoke(cli, ["init"], env=env_of(node_settings))
    assert made.exit_code == 2 and "copy the keys directory" in said(made.output), made.output
    assert not key_path(node_settings.keys_dir, "node").exists()


def test_a_running_node_whose_key_the_log_revoked_answers_503_and_signs_nothing(
    node: Any, site: Any
) -> None:
    camille = join(site, "Camille")
    # What the request path signs is looked at here (the sealer's own check is below): the
    # sealer thread is stopped first, lest a round it began before the revocation commit
    # after `before` is read.
    node.sealer.stop()
    # The node key is revoked by another process (as after a leak: it signs its own end).
    key = node.node_key
    event = key_event(
        "revoke", origin=node.ledger.origin, owner="node", public_key=key.public_key, signer=key
    )
    Ledger(node.engine).revoke_key(event, key.sign_bytes(canonical(event)))
    node._signers.clear()  # as KEY_CHECK_S later
    before = log_state(node.settings.resolved_database_url)

    answer = camille.post("/api/v1/me/keys", json={"public_key": "A" * 43, "label": "tablet"})
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "node_keys_not_registered"
    assert log_state(node.settings.resolved_database_url) == before


def test_a_role_key_file_changed_under_a_running_node_signs_nothing(node: Any, site: Any) -> None:
    louis, office = join(site, "Louis"), operator(site, "office")
    node.new_sealer().seal_all()  # what the joins queued: the sealer thread would seal it
    stranger = a_stranger_key(node.settings, "role:office:mairie")
    node._signers.clear()
    before = log_state(node.settings.resolved_database_url)

    body = {"id": str(uuid.uuid4()), "member": louis.id, "amount": 2_000}
    office.extra_headers["Accept-Language"] = "fr"
    answer = office.post("/api/v1/office/cash-ins", json=body)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "node_keys_not_registered"
    assert "Ce nœud ne peut pas signer" in answer.json()["message"]
    assert log_state(node.settings.resolved_database_url) == before
    assert stranger.key_id not in answer.text  # the details are for the operator's log


# -- the sealer's own check ------------------------------------------------------------------


def test_a_sealer_given_another_key_signs_nothing(
    book: Book, engine: Engine, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob = book.member("alice", 1_000), book.member("bob")
    assert isinstance(book.post(book.payment(alice, bob, 300)), Posted)
    before = log_state(db_url)
    stranger = SigningKey.generate()
    sealer = Sealer(engine, stranger, ORIGIN)

    with pytest.raises(UnregisteredNodeKey, match=f"node key {stranger.key_id} is not"):
        sealer.seal()
    caplog.set_level(logging.DEBUG, logger="ledger.sealer")
    for _ in range(5):  # as the background threads run it, a few times a second
        assert sealer.seal_in_background() is None
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]  # once, not every round
    assert NODE_KEY.key_id in loud[0].getMessage()
    assert log_state(db_url) == before
    assert Sealer(engine, NODE_KEY, ORIGIN).seal_all() > 0  # the log's own key seals it


def test_a_sealer_whose_key_the_log_revoked_signs_nothing(book: Book, engine: Engine) -> None:
    successor = SigningKey.generate()
    register(book.ledger, NODE_KEY, "node", successor)
    event = key_event(
        "revoke", origin=ORIGIN, owner="node", public_key=NODE_KEY.public_key, signer=NODE_KEY
    )
    book.ledger.revoke_key(event, NODE_KEY.sign_bytes(canonical(event)))
    with pytest.raises(UnregisteredNodeKey, match=f"registers \\({successor.key_id}\\)"):
        Sealer(engine, NODE_KEY, ORIGIN).seal()
    assert Sealer(engine, successor, ORIGIN).seal_all() > 0


# -- a damaged stored tree -------------------------------------------------------------------


@contextmanager
def attacker(url: str) -> Iterator[Connection]:
    """One transaction with the database's own protections off (as in test_tamper.py)."""
    engine = create_engine(url, poolclass=NullPool)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _no_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA foreign_keys=OFF")

    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            else:
                for name in conn.scalars(
                    text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                ).all():
                    conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
            yield conn
    finally:
        engine.dispose()


DAMAGES = {
    "is missing": "DELETE FROM log_nodes WHERE level = :level AND idx = 0",
    "holds 2 bytes, not a hash": (
        "UPDATE log_nodes SET hash = :two WHERE level = :level AND idx = 0"
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_stored_tree_stops_sealing_with_a_message_naming_the_node(
    node: Any, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(3):  # with the template's key events: six leaves or more
        register(node.ledger, node.node_key, f"member:m{n}")
    assert node.new_sealer().seal_all() >= 6
    register(node.ledger, node.node_key, "member:late")  # waits to be sealed
    url = node.settings.resolved_database_url
    sealed = log_state(url)[3]
    # The leftmost whole subtree of the sealed leaves: the next leaf's path always reads it,
    # however many key events the node's plugins registered in the template.
    level = sealed.bit_length() - 1
    with attacker(url) as conn:
        conn.execute(text(DAMAGES[damage]), {"two": b"\x01\x02", "level": level})
    before = log_state(url)

    sealing = runner.invoke(cli, ["seal"], env=env_of(node.settings))
    assert sealing.exit_code == 2, sealing.output
    assert f"node (level {level}, index 0) {damage}" in said(sealing.output)
    assert "Run `sou audit`" in said(sealing.output) and "Traceback" not in sealing.output
    caplog.set_level(logging.DEBUG, logger="ledger.sealer")
    sealer = node.new_sealer()
    for _ in range(5):
        assert sealer.seal_in_background() is None
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in loud] == [
        f"sealing stopped: the log's stored tree is damaged: node (level {level}, index 0) "
        f"{damage}; "
        "nothing is sealed or proved over it until it is restored. Run `sou audit` to see what "
        "else changed"
    ]
    assert not loud[0].exc_info  # the message says it all: no traceback
    assert log_state(url) == before  # nothing repaired, nothing signed


def test_a_round_a_stray_row_refuses_logs_the_databases_error_once(
    book: Book, engine: Engine, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sealer = Sealer(engine, NODE_KEY, ORIGIN)
    sealer.seal_all()
    with engine.connect() as conn:
        size = int(conn.scalar(select(func.max(checkpoints.c.tree_size))) or 0)
    with attacker(db_url) as conn:  # a leaf where the next round will put its first one
        conn.execute(
            text("INSERT INTO log_leaves (idx, key_event_id, hash) VALUES (:idx, :e, :h)"),
            {"idx": size, "e": 10**9, "h": bytes(32)},
        )
    alice, bob = book.member("alice", 1_000), book.member("bob")
    assert isinstance(book.post(book.payment(alice, bob, 300)), Posted)
    before = log_state(db_url)

    caplog.set_level(logging.DEBUG, logger="ledger.sealer")
    for _ in range(3):  # not taken for a round another sealer won
        assert sealer.seal_in_background() is None
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1 and loud[0].exc_info is not None, [r.getMessage() for r in loud]
    assert isinstance(loud[0].exc_info[1], IntegrityError)
    assert "log_leaves" in str(loud[0].exc_info[1])
    assert log_state(db_url) == before


# -- a lost round is normal --------------------------------------------------------------------


@pytest.fixture
def busy_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each statement sent a moment after the one before, as from a process whose threads
    share the processor: the database's answer to an earlier statement of a pipeline is
    there to read when the next one is sent (psycopg then sees a failure inside the
    pipeline, not at its end)."""
    execute = psycopg.Cursor.execute

    def after_a_moment(self: psycopg.Cursor[Any], *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.02)
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", after_a_moment)


def _writes_first(other: Sealer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next round to sign a checkpoint has read the queue and computed its leaves when
    `other` (another process, the node's sealing thread) seals one leaf before it writes."""
    signing = sealer_module.sign_checkpoint

    def other_seals_first(*args: Any, **kwargs: Any) -> str:
        monkeypatch.setattr(sealer_module, "sign_checkpoint", signing)
        assert other.seal().leaves == 1
        return signing(*args, **kwargs)

    monkeypatch.setattr(sealer_module, "sign_checkpoint", other_seals_first)


@pytest.mark.usefixtures("busy_client")
def test_a_sealing_round_another_sealer_won_logs_nothing_above_debug(
    book: Book, engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob = book.member("alice", 1_000), book.member("bob")
    first, other = Sealer(engine, NODE_KEY, ORIGIN), Sealer(engine, NODE_KEY, ORIGIN)
    first.seal_all()
    assert isinstance(book.post(book.payment(alice, bob, 300)), Posted)
    _writes_first(other, monkeypatch)
    caplog.set_level(logging.DEBUG)
    lost = first.seal_in_background()
    assert lost is not None and lost.leaves == 0

    assert [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG] == []
    assert any("another sealer sealed" in r.getMessage() for r in caplog.records)
    assert first.seal_all() == 0  # nothing was lost either


def test_sealing_all_goes_on_past_a_round_another_sealer_won(
    book: Book, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's sealing thread may write first, having read the queue before the latest
    payment came: `sou seal` (and any caller of seal_all) still leaves nothing queued."""
    alice, bob = book.member("alice", 1_000), book.member("bob")
    first, thread = Sealer(engine, NODE_KEY, ORIGIN), Sealer(engine, NODE_KEY, ORIGIN, max_leaves=1)
    first.seal_all()
    for amount in (100, 200):
        assert isinstance(book.post(book.payment(alice, bob, amount)), Posted)
    _writes_first(thread, monkeypatch)  # `first` read both payments; the thread, only one
    assert first.seal_all() == 1
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(log_queue)) == 0


@pytest.mark.usefixtures("busy_client")
def test_a_batch_judged_again_after_another_process_moved_a_balance_logs_nothing(
    book: Book, caplog: pytest.LogCaptureFixture
) -> None:
    payer, shop = book.member("payer", 1_000), book.member("shop")
    other = Book(Ledger(book.ledger.engine), NODE_KEY, book.keys)
    assert isinstance(book.post(book.payment(payer, shop, 100)), Posted)
    assert isinstance(other.post(other.payment(payer, shop, 850)), Posted)
    caplog.set_level(logging.DEBUG)
    assert isinstance(book.post(book.payment(payer, shop, 100)), InsufficientFunds)
    assert [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG] == []
