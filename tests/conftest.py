"""Test databases: every database test runs on SQLite and on PostgreSQL.

Each test gets a fresh database copied from a template that the real Alembic migrations
built and `Ledger.create` started (node key and treasurer key registered), so tests are
isolated and fast. PostgreSQL comes from $SOU_TEST_POSTGRES (default: the local server,
user postgres). Where it is unreachable its tests are skipped with a message, except in CI
(CI=true), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ledger.service import Ledger
from ledger.signing import SigningKey
from node.database import make_engine
from node.runtime import migrate
from tests.factories import Book, register

PG_ADMIN = os.environ.get(
    "SOU_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ORIGIN = "test.sou.localhost/village"
NODE_KEY = SigningKey(bytes(range(32)))
TREASURER_KEY = SigningKey(bytes(range(1, 33)))


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


@contextmanager
def pg_database(name: str, template: str | None = None) -> Iterator[str]:
    """A PostgreSQL database for the duration of the block; its URL."""
    url = create_pg_database(name, template)
    try:
        yield url
    finally:
        drop_pg_database(name)


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
    with pg_database(f"{template.url}_{uuid.uuid4().hex[:8]}", template.url) as url:
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
