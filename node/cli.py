"""`sou`: the node's command line. Every command documents itself with --help.

Exit codes: 0 success; 1 the audit found problems; 2 the command could not run (not
initialised, bad settings, database unreachable).
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.exc import SQLAlchemyError

from runtime.settings import Settings

if TYPE_CHECKING:
    from audits.audit import Report
    from runtime.node import Node
    from runtime.plugins import Plugins

app = typer.Typer(
    help="Sou: the node of a local complementary currency. Settings come from SOU_* "
    "environment variables or a sou.toml file (see sou.example.toml).",
    no_args_is_help=True,
    add_completion=False,
    # Help texts as Markdown: their paragraphs flow to the terminal's width (in Rich mode
    # the docstrings' own line breaks are kept, and cut lines short on a narrow terminal).
    rich_markup_mode="markdown",
)
err = Console(stderr=True)
EXIT_FINDINGS, EXIT_CANNOT_RUN = 1, 2


def _fail(message: str) -> typer.Exit:
    # Not cut into lines (a path stays whole, to copy), and printed as is, not as markup.
    err.print("[red]error:[/red]", escape(message), soft_wrap=True)
    return typer.Exit(EXIT_CANNOT_RUN)


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the bad setting
        raise _fail(f"bad settings: {exc}") from exc


@app.command()
def init(
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="Seed a demo village with residents, shops and signed transfers."
        ),
    ] = False,
) -> None:
    """Create the node: data directory, keys, database schema, the ledger's first entries.

    Does nothing (exit 0) if the node is already initialised; exit 2 if the database holds
    a ledger but the data directory has no keys (those of its node must be copied)."""
    from node.demo import Calendar, seed
    from runtime.keystore import key_path
    from runtime.node import init_node

    settings = _settings()
    # A demo village is told over the weeks before today: its node is set up on the first
    # day of that story, so that its keys are registered before what they sign.
    calendar = Calendar() if demo else None
    try:
        node = init_node(settings, clock=calendar or time.time)
    except FileExistsError:
        if not key_path(settings.keys_dir, "node").exists():
            raise _fail(
                f"this database already holds a ledger, but {settings.keys_dir} holds no node "
                "key: to serve it from here, copy the keys directory of the node that ran "
                f"`sou init` for it to {settings.keys_dir}"
            ) from None
        err.print(f"The node in {settings.data_dir} is already initialised; nothing to do.")
        return
    try:
        typer.echo(f"Initialised {settings.origin} ({settings.currency}) in {settings.data_dir}")
        typer.echo(f"  node key {node.node_key.key_id} (keys in {settings.keys_dir}, mode 0600)")
        if demo:
            typer.echo(f"Seeding the demo village {settings.village}:")
            seed(node, say=typer.echo, calendar=calendar)
            node.new_sealer().seal_all()
    finally:
        node.close()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date, the node's and each plugin's (also done by
    `init` and `serve`). Exit 2 if a plugin's migrations failed (that plugin is left out)."""
    from runtime import plugins as plugging
    from runtime.node import engine_for
    from runtime.node import migrate as run

    settings = _settings()
    engine = engine_for(settings)
    plugins = plugging.Plugins.discover(settings.disabled_plugins)
    try:
        run(engine)
        plugging.migrate(engine, plugins)
    finally:
        engine.dispose()
    failed = [p for p in plugins.found.values() if p.problem and p.problem.startswith("migrate")]
    if failed:
        raise _fail("; ".join(f"plugin {p.name}: {p.problem}" for p in failed))
    typer.echo("Schema is up to date.")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Web server processes (default: one per core)."),
    ] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = None,
) -> None:
    """Run the node's web server (http://127.0.0.1:8000 by default)."""
    import uvicorn

    from node.app import create_served_app
    from node.serving import LOG_CONFIG, connections_per_process, serve_balanced
    from runtime.keystore import KeyFileError
    from runtime.node import open_node

    settings = _settings()
    logging.config.dictConfig(LOG_CONFIG)
    try:
        node = open_node(settings)  # checked and migrated once, before any process serves
    except (RuntimeError, KeyFileError) as exc:
        raise _fail(str(exc)) from exc
    processes = workers or settings.workers or _default_workers()
    options: dict[str, Any] = {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_level": "info",
        "log_config": LOG_CONFIG,
        "access_log": settings.access_log if access_log is None else access_log,
        # Who the client is (login limits) and whether it came by https (Secure cookies):
        # from X-Forwarded-* only when the connection comes from a proxy the host named.
        "proxy_headers": bool(settings.trusted_proxies.strip()),
        "forwarded_allow_ips": settings.trusted_proxies,
    }
    if processes == 1:
        uvicorn.run(create_served_app(settings, node), **options)
        return
    node.close()
    # Each process opens its own node from the same settings (environment and file), with
    # its share of the database connections.
    os.environ["SOU_POOL_SIZE"] = str(connections_per_process(settings.pool_size, processes))
    host, port = options.pop("host"), options.pop("port")
    raise typer.Exit(serve_balanced(host, port, processes, options))


def _default_workers() -> int:
    """One per core: most of a request's time is spent in Python, which one process runs
    on one core at a time (on SQLite the processes take turns to write)."""
    return max(1, os.cpu_count() or 1)


@app.command()
def seal() -> None:
    """Seal every committed transfer into the Merkle log now and sign a checkpoint."""
    from ledger.sealer import SealingStopped

    node = _open()
    try:
        count = node.new_sealer().seal_all()
    except SealingStopped as exc:
        raise _fail(str(exc)) from exc
    finally:
        node.close()
    typer.echo(f"Sealed {count} entries.")


@app.command()
def audit(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Check everything again instead of resuming from the last clean audit's "
            "signed state.",
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option(help="Processes checking transfers (default: one per core).")
    ] = 0,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            help="A signed checkpoint kept elsewhere (by a resident, another node) that the log "
            "must still contain. Repeatable."
        ),
    ] = None,
) -> None:
    """Check the ledger: log, checkpoints, signatures, postings, balances, backing day by
    day, fees, escrows, and the ACPR watch.

    Resumes from the signed state the last clean audit left (what came before was checked
    then), unless --full. The run is recorded, for the treasurer's page. The checkpoint the
    node keeps in its data directory is always checked too. Exit 0 when everything holds
    (warnings are printed), 1 with the list of findings, 2 when the audit could not run."""
    from sqlalchemy import make_url

    from audits.audit import NoLedger, escrow_records_of
    from audits.service import run_audit
    from runtime import witness
    from runtime.database import make_engine, read_only
    from runtime.keystore import KeyFileError, key_path, load_key
    from runtime.node import is_initialised
    from web.refusals import Refusal

    # The audit opens the database read-only and never through the node, which would
    # migrate the schema and reopen missing system accounts: it reports what it finds.
    settings = _settings()
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise _fail(
            f"this node is not initialised: there is no database at {url.database}. Run "
            "`sou init`, or set SOU_DATA_DIR to the node's data directory"
        )
    engine = read_only(make_engine(settings.resolved_database_url, pool_size=2))
    recorder = make_engine(settings.resolved_database_url, pool_size=2)  # the run's record
    try:
        if not is_initialised(engine):
            raise _fail("this node is not initialised yet: run `sou init`")
        try:
            signing_key = load_key(key_path(settings.keys_dir, "node"))
            witnessed = witness.witnessed(settings.data_dir) + [
                path.read_text() for path in checkpoint or []
            ]
        except KeyFileError as exc:
            raise _fail(str(exc)) from exc
        except OSError as exc:
            raise _fail(f"cannot read a checkpoint: {exc}") from exc
        with _progress(enabled=sys.stderr.isatty()) as bar:
            task = bar.add_task("Auditing transfers", total=None)
            report, _ = run_audit(
                recorder,
                signing_key,
                full=full,
                reading=engine,
                workers=workers or os.cpu_count() or 1,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                witnessed=witnessed,
                by="cli",
                escrow_records=escrow_records_of(_plugins(settings)),
            )
    except NoLedger as exc:
        raise _fail(str(exc)) from exc
    except Refusal as exc:  # another audit is running
        raise _fail(exc.message.format(**exc.params)) from exc
    except SQLAlchemyError as exc:
        raise _fail(f"cannot read the database: {exc}") from exc
    finally:
        engine.dispose()
        recorder.dispose()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        _print_report(report)
    raise typer.Exit(0 if report.ok else EXIT_FINDINGS)


@app.command()
def operator(
    role: Annotated[str, typer.Argument(help="admin, treasurer or office.")],
    email: Annotated[str, typer.Argument(help="The operator's login.")],
    name: Annotated[str, typer.Option(help="The name shown on pages.")],
    office: Annotated[
        str | None, typer.Option(help="For office operators: the exchange office's id.")
    ] = None,
) -> None:
    """Create an operator who logs in on the pages: the first admin, a treasurer, an
    exchange-office operator (its till and role key are made with the first operator).

    The password is asked twice, or read from SOU_NEW_PASSWORD for scripts."""
    from members.service import create_operator
    from web.refusals import Refusal

    if role not in ("admin", "treasurer", "office"):
        raise _fail("the role is admin, treasurer or office")
    password = os.environ.get("SOU_NEW_PASSWORD") or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    node = _open()
    try:
        member = create_operator(
            node, display_name=name, email=email, password=password, role=role, office=office
        )
    except Refusal as exc:
        raise _fail(exc.message.format(**exc.params)) from exc
    finally:
        node.close()
    typer.echo(f"Created {role} {member.display_name} <{member.email}> (id {member.id}).")


def _plugins(settings: Settings) -> Plugins:
    """The active plugins, their settings read (an audit asks them what their escrows hold)."""
    from runtime.plugins import Plugins, make_settings

    plugins = Plugins.discover(settings.disabled_plugins)
    make_settings(plugins)
    return plugins


def _open() -> Node:
    from runtime.node import open_node

    try:
        return open_node(_settings())
    except Exception as exc:
        raise _fail(str(exc)) from exc


def _progress(*, enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not enabled,
    )


def _print_report(report: Report) -> None:
    since = "in full" if report.full else f"after transfer {report.resumed_from}"
    typer.echo(
        f"Audited {_count(report.transfers, 'transfer')} ({since}), "
        f"{_count(report.key_events, 'key event')}, "
        f"{_count(report.leaves, 'log leaf', 'log leaves')} ({report.unsealed} waiting to be "
        f"sealed), {_count(report.checkpoints, 'checkpoint')}, "
        f"{_count(report.accounts, 'account')} in {report.seconds:.2f} s."
    )
    if report.ok:
        typer.echo("All checks hold.")
    else:
        typer.echo(f"{_count(len(report.findings), 'finding')}:")
    for finding in report.findings:
        severity = "" if finding.severity == "error" else f"{finding.severity.upper()}: "
        typer.echo(f"  [{finding.check}] {severity}{finding.message}")


def _count(n: int, one: str, many: str | None = None) -> str:
    """A count and its noun: "1 checkpoint", "1,024 transfers"."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def build_cli(settings: Settings | None = None) -> typer.Typer:
    """`sou`, with the sub-commands the plugins add."""
    from runtime.plugins import Plugins

    try:
        disabled = (settings or Settings()).disabled_plugins
    except Exception:  # bad settings: the commands say so when they read them
        disabled = set()
    Plugins.discover(disabled).call("sou_commands", cli=app)
    return app


def main() -> None:
    build_cli()()


if __name__ == "__main__":
    main()
