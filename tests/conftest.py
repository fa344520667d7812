"""Test databases: every database test runs on SQLite and on PostgreSQL.

Each test gets a fresh database copied from a template that the real Alembic migrations
built and `Ledger.create` started (node key and treasurer key registered), so tests are
isolated and fast. PostgreSQL comes from $SOU_TEST_POSTGRES (default: the local server,
user postgres). Where it is unreachable its tests are skipped with a message, except in CI
(CI=true), where that is a failure.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ledger.service import Ledger
from ledger.signing import SigningKey
from members import access
from members import service as members_service
from runtime.database import make_engine
from runtime.node import migrate
from tests.factories import Book, register

PG_ADMIN = os.environ.get(
    "SOU_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ORIGIN = "test.sou.localhost/village"
NODE_KEY = SigningKey(bytes(range(32)))
TREASURER_KEY = SigningKey(bytes(range(1, 33)))

# No time limit on a Hypothesis example: the suite asserts behaviour, not speed, and its
# workers share the cores (pytest-xdist), so an example that takes 5 ms alone may wait
# 300 ms for a core; Hypothesis would then call the test flaky.
hypothesis_settings.register_profile("sou", deadline=None)
hypothesis_settings.load_profile("sou")


# The node's password hasher (Argon2id at the library's recommended cost), before the
# suite swaps it for the lightest one: see `light_password_hashing`.
NODE_HASHER = access.hasher


@pytest.fixture(scope="session", autouse=True)
def light_password_hashing() -> Iterator[None]:
    """Argon2id at its lightest for the suite: at the node's cost each join and login takes
    ~0.1 s of CPU, and the suite makes thousands. A hash carries its own parameters, so
    logging in works either way; tests/test_members.py checks the node's cost."""
    access.hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    yield
    access.hasher = NODE_HASHER


class Clock:
    """The members' clock (`members.service.now_ms`), moved by the test: `clock.advance(s)`."""

    def __init__(self) -> None:
        self.ms = 1_800_000_000_000
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            return self.ms

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.ms += int(seconds * 1000)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    now = Clock()
    monkeypatch.setattr(members_service, "now_ms", now)
    return now


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `one_database` check what no database changes (a page's script, a
    picture decoded, a camera read): their PostgreSQL run is left out, said in the summary."""
    left_out = [
        item
        for item in items
        if item.get_closest_marker("one_database") is not None
        and "postgresql" in getattr(getattr(item, "callspec", None), "params", {}).values()
    ]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]


@dataclass
class Template:
    engine_name: str
    url: str


@cache
def _pg_admin() -> Engine:
    return create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def pg_url(name: str) -> str:
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def create_pg_database(name: str, template: str | None = None) -> str:
    """Create a PostgreSQL database, a copy of `template` if given; return its URL."""
    copy = f' TEMPLATE "{template}"' if template else ""
    with _pg_admin().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    return pg_url(name)


def drop_pg_database(name: str) -> None:
    with _pg_admin().connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Spares:
    """Copies of one template database, made ahead by a thread while the tests run: a copy
    takes PostgreSQL the better part of a second, most of it waiting on the disk, and nearly
    every PostgreSQL test wants one."""

    DEPTH = 2

    def __init__(self, template: str) -> None:
        self.template = template
        self.ready: queue.Queue[str] = queue.Queue(maxsize=self.DEPTH)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._fill, name=f"spares-{template}", daemon=True)
        self.thread.start()

    def _fill(self) -> None:
        while not self.stopping.is_set():
            name = f"{self.template}_{uuid.uuid4().hex[:8]}"
            try:
                create_pg_database(name, self.template)
            except Exception:
                return  # `take` makes its copies itself, and says what fails
            while True:
                try:
                    self.ready.put(name, timeout=0.2)
                    break
                except queue.Full:
                    if self.stopping.is_set():
                        drop_pg_database(name)
                        return

    def take(self) -> str:
        """The name of a fresh copy, now the caller's to drop."""
        try:
            return self.ready.get(timeout=0 if not self.thread.is_alive() else 30)
        except queue.Empty:
            name = f"{self.template}_{uuid.uuid4().hex[:8]}"
            create_pg_database(name, self.template)
            return name

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        while not self.ready.empty():
            _dropped.put(self.ready.get())


_spares: dict[str, Spares] = {}
_spares_lock = threading.Lock()


def spares(template: str) -> Spares:
    with _spares_lock:
        if template not in _spares:
            _spares[template] = Spares(template)
        return _spares[template]


def close_spares(template: str) -> None:
    with _spares_lock:
        found = _spares.pop(template, None)
    if found is not None:
        found.close()


@contextmanager
def pg_database(name: str, template: str | None = None) -> Iterator[str]:
    """A PostgreSQL database for the duration of the block; its URL."""
    url = create_pg_database(name, template)
    try:
        yield url
    finally:
        drop_pg_database(name)


@contextmanager
def pg_copy(template: str) -> Iterator[str]:
    """A fresh copy of a template database (one of its spares) for the duration of the
    block; its URL."""
    name = spares(template).take()
    try:
        yield pg_url(name)
    finally:
        _dropped.put(name)


def _drop_each() -> None:
    while True:
        name = _dropped.get()
        try:
            drop_pg_database(name)
        except Exception:  # a copy left behind costs some disk; a dead dropper, the run
            logging.getLogger(__name__).warning("could not drop %s", name, exc_info=True)
        finally:
            _dropped.task_done()


# Copies are dropped by threads too: a drop waits for a checkpoint of PostgreSQL (one or two
# seconds of disk), and drops that wait together are served by the same checkpoint. With one
# dropper the drops fall behind the tests, and the last test waits for all of them.
DROPPERS = 4
_dropped: queue.Queue[str] = queue.Queue()
for _n in range(DROPPERS):
    threading.Thread(target=_drop_each, name=f"dropper-{_n}", daemon=True).start()


def pytest_sessionfinish() -> None:
    _dropped.join()


def _pg_reachable() -> str | None:
    try:
        with _pg_admin().connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]


def _start_ledger(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    ledger = Ledger.create(engine, origin=ORIGIN, currency="SOU", node_key=NODE_KEY)
    register(ledger, NODE_KEY, "role:treasurer", TREASURER_KEY)
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("template") / "template.db"
    _start_ledger(f"sqlite:///{path}")
    return Template("sqlite", str(path))


@pytest.fixture(scope="session")
def pg_template() -> Iterator[Template]:
    problem = _pg_reachable()
    if problem:
        message = f"PostgreSQL unreachable at {PG_ADMIN}: {problem}"
        if IN_CI:
            pytest.fail(f"{message} (CI requires PostgreSQL)", pytrace=False)
        pytest.skip(f"{message}; PostgreSQL tests skipped")
    name = f"sou_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with pg_database(name) as url:
        _start_ledger(url)
        yield Template("postgresql", name)
        close_spares(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated and started ledger database; the URL to reach it."""
    if request.param == "sqlite":
        template: Template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "sou.db"
        shutil.copyfile(template.url, path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    with pg_copy(template.url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it, as a new node finds it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("pg_template")  # skips or fails when PostgreSQL is absent
    with pg_database(f"sou_empty_{os.getpid()}_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url, pool_size=8)
    yield engine
    engine.dispose()


@pytest.fixture
def book(engine: Engine) -> Book:
    """The ledger of the test database, with helpers to make members and sign orders."""
    return Book(Ledger(engine), NODE_KEY, {"role:treasurer": TREASURER_KEY})


# -- the node with its web app ---------------------------------------------------------------

PASSWORD = "correct horse battery"
OPERATORS = {  # made in the node template: role -> (email, office)
    "admin": ("admin@village.test", None),
    "treasurer": ("tresorier@village.test", None),
    "office": ("mairie@village.test", "mairie"),
}


@dataclass
class NodeTemplate:
    engine_name: str
    url: str  # a file path (SQLite) or a database name (PostgreSQL)
    data_dir: Path


def _start_node(url: str, data_dir: Path) -> None:
    from members import service
    from runtime.node import init_node
    from runtime.settings import Settings

    node = init_node(Settings(data_dir=data_dir, database_url=url, origin=ORIGIN))
    for role, (email, office) in OPERATORS.items():
        service.create_operator(
            node,
            display_name=role.title(),
            email=email,
            password=PASSWORD,
            role=role,
            office=office,
        )
    node.close()


@pytest.fixture(scope="session")
def sqlite_node_template(tmp_path_factory: pytest.TempPathFactory) -> NodeTemplate:
    root = tmp_path_factory.mktemp("node-template")
    path = root / "sou.db"
    _start_node(f"sqlite:///{path}", root / "data")
    return NodeTemplate("sqlite", str(path), root / "data")


@pytest.fixture(scope="session")
def pg_node_template(
    pg_template: Template, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeTemplate]:
    root = tmp_path_factory.mktemp("pg-node-template")
    name = f"sou_node_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with pg_database(name) as url:
        _start_node(url, root / "data")
        yield NodeTemplate("postgresql", name, root / "data")
        close_spares(name)


# Tests sign people up by the dozen from one address: tests/test_logins.py checks the ceiling.
JOINS = 1_000_000


@pytest.fixture(params=["sqlite", "postgresql"])
def node_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Settings of a fresh, initialised node (keys, database, the three operators), on
    SQLite and on PostgreSQL. Tests may change settings before opening the node."""
    from runtime.settings import Settings

    data_dir = tmp_path / "data"
    if request.param == "sqlite":
        template: NodeTemplate = request.getfixturevalue("sqlite_node_template")
        shutil.copytree(template.data_dir, data_dir)
        shutil.copyfile(template.url, tmp_path / "sou.db")
        url = f"sqlite:///{tmp_path / 'sou.db'}"
        yield Settings(data_dir=data_dir, database_url=url, join_address_ceiling=JOINS)
        return
    template = request.getfixturevalue("pg_node_template")
    shutil.copytree(template.data_dir, data_dir)
    with pg_copy(template.url) as url:
        yield Settings(data_dir=data_dir, database_url=url, join_address_ceiling=JOINS)


@pytest.fixture
def node(node_settings: Any) -> Iterator[Any]:
    """The opened node (not started: tests that need the poster use `site`)."""
    from runtime.node import open_node

    opened = open_node(node_settings)
    yield opened
    opened.close()


@pytest.fixture
def site(node: Any) -> Iterator[Any]:
    """The web app over `node`, started (poster and sealer running), as a test client."""
    from fastapi.testclient import TestClient

    from node.app import create_app

    with TestClient(create_app(node.settings, node), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def live_app(node: Any) -> Any:
    """The app over `node` that `live_site` serves and `village` calls in-process: one app,
    whose routes FastAPI builds once (on an app's first request, a few tenths of a second)."""
    from node.app import create_app

    return create_app(node.settings, node)


@pytest.fixture
def live_site(live_app: Any) -> Iterator[str]:
    """The app over `node` served by uvicorn on a free port; its base URL."""
    from tests.live import serving

    with serving(live_app) as base_url:
        yield base_url


@pytest.fixture
def village(live_app: Any, live_site: str) -> Any:
    """The live node seen through the API in-process, for people who need no browser: a
    client of the very app being served, without a second lifespan."""
    from fastapi.testclient import TestClient

    return TestClient(live_app, base_url="http://127.0.0.1")
