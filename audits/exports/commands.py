"""`sou export journal|beancount|fec`: the accountant's files from the command line.

Exit codes: 0 written; 2 could not run (bad period, no SIREN for the FEC, not initialised,
database unreachable). Like `sou audit`, it opens the database read-only, never through the
node (which would migrate it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.exc import SQLAlchemyError

from web.refusals import Refusal

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from runtime.settings import Settings

err = Console(stderr=True)
EXIT_CANNOT_RUN = 2


class Export(StrEnum):
    journal = "journal"
    beancount = "beancount"
    fec = "fec"


def _fail(message: str) -> typer.Exit:
    err.print("[red]error:[/red]", escape(message), soft_wrap=True)
    return typer.Exit(EXIT_CANNOT_RUN)


def export(
    what: Annotated[
        Export,
        typer.Argument(
            help="journal: every transfer and its postings (CSV); beancount: the books for "
            "bean-check and Fava; fec: the Fichier des écritures comptables of the euro side."
        ),
    ],
    start: Annotated[
        str | None,
        typer.Option("--from", help="First day (YYYY-MM-DD); default: 1 January this year."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="Last day (YYYY-MM-DD); default: 31 December this year."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="The file to write ('-' for standard output); default: the "
            "export's own name in the working directory (the FEC's is `<SIREN>FEC<date>.txt`).",
        ),
    ] = None,
) -> None:
    """Write the accountant's export of a period: the journal, a beancount file or the FEC."""
    from audits.exports.service import Books, Period, encoding, file_name
    from audits.exports.service import export as run_export
    from audits.exports.settings import ExportSettings
    from runtime.settings import Settings

    try:
        settings, siren = Settings(), ExportSettings().siren
    except Exception as exc:  # pydantic's message names the bad setting
        raise _fail(f"bad settings: {exc}") from exc
    try:
        today = datetime.now(ZoneInfo(settings.timezone)).date()
        period = Period.parse(start, end, today)
        name = file_name(what.value, period, siren)
    except Refusal as refusal:
        raise _fail(refusal.message.format(**refusal.params)) from refusal
    engine, local = _open_ledger(settings)
    target = output or Path(name)
    books = Books(engine, local, settings.timezone, siren)
    try:
        with _progress(enabled=sys.stderr.isatty()) as bar:
            task = bar.add_task(f"Writing the {what.value}", total=None)
            chunks = run_export(
                what.value,
                books,
                period,
                lambda done, total: bar.update(task, completed=done, total=total),
            )
            _write(chunks, target, encoding(what.value))
    except SQLAlchemyError as exc:
        raise _fail(f"cannot read the database: {exc}") from exc
    except OSError as exc:
        raise _fail(f"cannot write {target}: {exc}") from exc
    finally:
        engine.dispose()
    if str(target) != "-":
        err.print(f"Wrote {escape(str(target))}.", soft_wrap=True)


def _write(chunks: Iterable[str], target: Path, charset: str) -> None:
    if str(target) == "-":
        for chunk in chunks:
            sys.stdout.buffer.write(chunk.encode(charset, errors="replace"))
        sys.stdout.flush()
        return
    # Written beside the target, then renamed: a run cut short leaves no half file.
    partial = target.with_name(target.name + ".part")
    with partial.open("wb") as out:
        for chunk in chunks:
            out.write(chunk.encode(charset, errors="replace"))
    partial.replace(target)


def _open_ledger(settings: Settings) -> tuple[Engine, str]:
    from sqlalchemy import make_url

    from ledger.repository import read_meta
    from runtime.database import make_engine, read_only
    from runtime.node import is_initialised

    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise _fail(
            f"this node is not initialised: there is no database at {url.database}. Run "
            "`sou init`, or set SOU_DATA_DIR to the node's data directory"
        )
    engine = read_only(make_engine(settings.resolved_database_url, pool_size=2))
    try:
        if not is_initialised(engine):
            raise _fail("this node is not initialised yet: run `sou init`")
        with engine.connect() as conn:
            local = read_meta(conn)["currency"]
    except SQLAlchemyError as exc:
        engine.dispose()
        raise _fail(f"cannot read the database: {exc}") from exc
    except typer.Exit:
        engine.dispose()
        raise
    return engine, local


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
