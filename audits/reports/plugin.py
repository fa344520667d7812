"""The treasurer's dashboard and report, the merchants' consent page, and `sou report`,
as a plugin."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from babel.dates import format_datetime
from fastapi import APIRouter
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn

from audits.reports import pages
from runtime.hookspecs import MenuEntry, hookimpl


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [pages.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [
        MenuEntry("/treasurer/dashboard", "Dashboard", frozenset({"treasurer"}), order=42),
        MenuEntry("/merchant/listing", "Named in reports", frozenset({"merchant"}), order=75),
    ]


@hookimpl
def sou_commands(cli: typer.Typer) -> None:
    cli.command("report")(write_report)


EXIT_SHORT, EXIT_CANNOT_RUN = 1, 2  # as every `sou` command
err = Console(stderr=True)


def write_report(
    first: Annotated[
        str | None, typer.Option(help="The period's first day, 2026-01-01 (twelve months back).")
    ] = None,
    last: Annotated[str | None, typer.Option(help="The period's last day (today).")] = None,
    lang: Annotated[str, typer.Option(help="The report's language: fr or en.")] = "fr",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="The PDF to write (`report-<first>-<last>.pdf`)."),
    ] = None,
) -> None:
    """Write the general assembly's report as a PDF: circulation and reserve per day, top-ups
    and reconversions, velocity, paper and digital units, the merchants who agreed to be
    named, the latest audit.

    Exit 0 when written; 1 when written but the reserve fell below the units in circulation
    on a day of the period; 2 when it cannot be (bad period or language, the node or the
    file out of reach)."""
    from audits.reports import pdf, sections, service
    from runtime.node import open_node
    from runtime.settings import Settings
    from web.i18n import LANGUAGES, translations
    from web.refusals import Refusal

    if lang not in LANGUAGES:
        raise _fail(f"{lang!r} is not a language of the report: {', '.join(LANGUAGES)}")
    try:
        settings = Settings()
        node = open_node(settings)
    except Exception as exc:  # pydantic's or the database's message says what is wrong
        raise _fail(str(exc)) from exc
    try:
        zone = ZoneInfo(settings.timezone)
        period = service.read_period(first, last, datetime.now(zone).date())
        catalogue = translations(lang)
        writer = sections.Writer(
            catalogue.gettext,
            lang,
            node.ledger.chart.local,
            lambda ms: _moment(datetime.fromtimestamp(ms / 1000, zone), lang),
            catalogue.ngettext,
        )
        figures = service.report(node, period)
        text = sections.write(figures, writer, settings.village)
        target = out or Path(f"report-{period.first}-{period.last}.pdf")
        with _progress(enabled=err.is_terminal) as bar:
            task = bar.add_task("Report", total=len(text.sections))
            target.write_bytes(pdf.as_pdf(text, lambda done, _: bar.update(task, completed=done)))
    except Refusal as exc:
        raise _fail(exc.message.format(**exc.params)) from exc
    except OSError as exc:
        raise _fail(f"cannot write the report: {exc}") from exc
    finally:
        node.close()
    typer.echo(f"Wrote the report from {period.first} to {period.last} to {target}.")
    short = [d.day for d in figures.days if d.euros < d.units]
    if short:
        err.print(f"[red]the reserve fell below the units in circulation on {short[0]}[/red]")
        raise typer.Exit(EXIT_SHORT)


def _fail(message: str) -> typer.Exit:
    err.print("[red]error:[/red]", escape(message), soft_wrap=True)
    return typer.Exit(EXIT_CANNOT_RUN)


def _progress(*, enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=err,
        transient=True,
        disable=not enabled,
    )


def _moment(moment: datetime, lang: str) -> str:
    from web.i18n import first_day

    return first_day(format_datetime(moment, "medium", locale=lang), moment.day, lang)
