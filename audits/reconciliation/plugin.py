"""The treasurer's reconciliation as a plugin: its API and page, its menu entry, its
settings, and `sou reconcile`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from fastapi import APIRouter
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import Connection

from audits.reconciliation import endpoints, pages, service
from runtime.hookspecs import BankConfirmation, MenuEntry, hookimpl

EXIT_OK, EXIT_UNMATCHED, EXIT_CANNOT_RUN = 0, 1, 2
err = Console(stderr=True)


class ReconciliationSettings(BaseSettings):
    """`SOU_RECONCILIATION_PAPER_IBAN`: the bank account holding the paper notes' euros; a
    statement of that IBAN goes to `reserve:paper`, any other to `reserve:digital`."""

    model_config = SettingsConfigDict(env_prefix="SOU_RECONCILIATION_", extra="ignore")
    paper_iban: str = ""


@hookimpl
def sou_settings() -> type[BaseSettings]:
    return ReconciliationSettings


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [MenuEntry(pages.PATH, "Bank reconciliation", frozenset({"treasurer"}), order=42)]


@hookimpl
def sou_bank_confirmations(
    conn: Connection, transfer_ids: Sequence[int]
) -> Sequence[BankConfirmation]:
    """The statement lines matched to these transfers, while the matches stand."""
    return service.bank_confirmations(conn, transfer_ids)


@hookimpl
def sou_commands(cli: typer.Typer) -> None:
    cli.command("reconcile")(reconcile)


def _fail(message: str) -> typer.Exit:
    err.print("[red]error:[/red]", escape(message), soft_wrap=True)
    return typer.Exit(EXIT_CANNOT_RUN)


def reconcile(
    file: Annotated[
        Path | None,
        typer.Argument(help="The statement: CAMT.053 XML, the bank's CSV, Stripe's CSV export."),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="camt, csv or stripe-csv (default: guessed from the file)."
        ),
    ] = None,
    account: Annotated[
        str | None,
        typer.Option(
            help="reserve:digital, reserve:paper or clearing:stripe (default: from the file)."
        ),
    ] = None,
    from_stripe: Annotated[
        bool, typer.Option("--stripe", help="Read Stripe's balance transactions by its API.")
    ] = False,
) -> None:
    """Import a bank statement or Stripe's balance and match it to the ledger's euros.

    Prints what is matched and what is not, on each side. Importing the same statement
    again adds nothing. Exit 0 when everything is matched, 1 when something is unmatched,
    2 when it could not run (unreadable file, node out of reach, Stripe not set up)."""
    from runtime.node import open_node
    from runtime.settings import Settings
    from web.refusals import Refusal

    if (file is None) == (not from_stripe):
        raise _fail("give a statement FILE, or --stripe (not both)")
    if format is not None and format not in service.FORMATS:
        raise _fail(f"--format must be one of {', '.join(service.FORMATS)}")
    try:
        data = file.read_bytes() if file is not None else b""
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc}") from exc
    try:
        node = open_node(Settings())
    except Exception as exc:
        raise _fail(str(exc)) from exc
    try:
        with _progress(enabled=err.is_terminal) as bar:
            task = bar.add_task("Importing", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            if from_stripe:
                done = service.import_stripe(node, progress=progress)
            else:
                assert file is not None
                fmt = format or service.guess_format(file.name, data)
                done = service.import_statement(
                    node, data, fmt, name=file.name, account=account, progress=progress
                )
    except Refusal as exc:
        raise _fail(exc.message.format(**exc.params)) from exc
    finally:
        node.close()
    _print(done)
    raise typer.Exit(EXIT_OK if done.view.all_matched else EXIT_UNMATCHED)


def _euros(cents: int) -> str:
    return f"{cents / 100:+.2f} EUR"


def _print(done: object) -> None:
    assert isinstance(done, service.Imported)
    view = done.view
    typer.echo(
        f"{done.account}: {done.read} lines read, {done.added} new, {done.matched} matched now."
    )
    typer.echo(f"Matched: {len(view.matched_lines)} lines, {_euros(view.matched_total)}.")
    for booked in view.matched_lines:
        if booked.batch:  # a transfer file the bank booked on one line
            line, transfers = (
                booked.line,
                ", ".join(str(m.movement.transfer_id) for m in booked.matches),
            )
            typer.echo(
                f"  line {line.id} {line.booked} {_euros(line.amount)} books "
                f"{len(booked.matches)} transfers: {transfers}"
            )
    typer.echo(
        f"Unmatched statement lines: {len(view.unmatched_lines)}, "
        f"{_euros(view.unmatched_lines_total)}."
    )
    for line in view.unmatched_lines:
        dup = " (duplicate line)" if line.duplicate else ""
        typer.echo(f"  line {line.id} {line.booked} {_euros(line.amount)} {line.label}{dup}")
    typer.echo(
        f"Unmatched ledger movements: {len(view.unmatched_movements)}, "
        f"{_euros(view.unmatched_movements_total)}."
    )
    for m in view.unmatched_movements:
        typer.echo(f"  transfer {m.transfer_id} {m.kind} {_euros(m.amount)}")
    for miss in view.near_misses:
        typer.echo(
            f"Near miss: line {miss.line.id} and transfer {miss.movement.transfer_id} "
            f"differ by {_euros(miss.difference)}."
        )
    if view.all_matched:
        typer.echo("Everything is matched.")


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
