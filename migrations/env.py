"""Alembic environment: the schema of every part of the node is made only by migrations.

`sou init` and `sou migrate` pass an open connection; the `alembic` command line (for
writing new revisions) reads the database URL from the node's settings.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from ledger.models import metadata

config = context.config


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # A plugin's history is kept apart from the node's (runtime/plugins.py).
        version_table=config.attributes.get("version_table", "alembic_version"),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    from runtime.database import make_engine
    from runtime.settings import Settings

    engine = make_engine(
        config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url
    )
    with engine.connect() as conn:
        run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Sou migrations run online only: use `sou migrate`.")
run_online()
