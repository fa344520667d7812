"""The paper notes as a plugin: their API and pages, the menu entries of the treasurer and
the offices, and `sou notes print`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from fastapi import APIRouter
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from pos.notes import endpoints, pages
from runtime.hookspecs import MenuEntry, hookimpl

EXIT_CANNOT_RUN = 2  # as every `sou` command: the command could not do its work
err = Console(stderr=True)


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [
        MenuEntry("/notes", "Paper notes", frozenset({"treasurer"}), order=45),
        MenuEntry("/notes/office", "Paper notes", frozenset({"office"}), order=35),
    ]


@hookimpl
def sou_commands(cli: typer.Typer) -> None:
    notes = typer.Typer(
        help="Paper notes: print a series' sheets.", no_args_is_help=True, add_completion=False
    )
    notes.command("print")(print_notes)
    cli.add_typer(notes, name="notes")


def _fail(message: str) -> typer.Exit:
    err.print("[red]error:[/red]", escape(message), soft_wrap=True)
    return typer.Exit(EXIT_CANNOT_RUN)


def print_notes(
    series: Annotated[str, typer.Argument(help="The series to print, e.g. A.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="The PDF to write (`notes-<series>.pdf`).")
    ] = None,
    first: Annotated[int | None, typer.Option(help="The first serial to print (1).")] = None,
    last: Annotated[int | None, typer.Option(help="The last serial to print (all).")] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="Where phones reach the node (https://...), which the notes' codes lead to. "
            "Default: the public_url setting (SOU_PUBLIC_URL)."
        ),
    ] = None,
) -> None:
    """Write a series' notes as A4 sheets to print and cut: eight notes a page, each with
    its signed QR code, value, series and serial number.

    Exit 0 when written; 2 when it cannot be (no public address, unknown series, bad
    serials, the node or the file out of reach)."""
    from pos.notes import service
    from runtime.node import open_node
    from runtime.settings import Settings
    from web.refusals import Refusal

    try:
        settings = Settings()
    except Exception as exc:  # pydantic's message names the bad setting
        raise _fail(f"bad settings: {exc}") from exc
    origin = (url or settings.public_url).rstrip("/")
    if not origin:
        raise _fail(
            "the notes' codes need the address where phones reach the node: set "
            "SOU_PUBLIC_URL (public_url in sou.toml), or give --url https://..."
        )
    if not origin.startswith(("https://", "http://")):
        raise _fail(f"{origin!r} is not an address (https://...)")
    target = out or Path(f"notes-{series.upper()}.pdf")
    try:
        node = open_node(settings)
    except Exception as exc:
        raise _fail(str(exc)) from exc
    try:
        found = service.find_series(node, series.upper())
        total = (last or found.count) - (first or 1) + 1
        with _progress(enabled=err.is_terminal) as bar:
            task = bar.add_task(f"Notes of series {found.id}", total=max(total, 0))
            pdf = service.print_sheet(
                node,
                origin,
                found.id,
                first,
                last,
                progress=lambda done: bar.update(task, completed=done),
            )
        target.write_bytes(pdf)
    except Refusal as exc:
        raise _fail(exc.message.format(**exc.params)) from exc
    except OSError as exc:
        raise _fail(f"cannot write {target}: {exc}") from exc
    finally:
        node.close()
    pages_count = -(-total // 8)
    typer.echo(f"Wrote {total} notes of series {found.id} on {pages_count} pages to {target}.")


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
