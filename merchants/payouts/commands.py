"""`sou payouts list|batch|paid`: the treasurer's transfer files from the command line.

The same rules and tables as `/treasurer/payouts`. Exit codes a script can trust:
0 done; 1 nothing to do or refused (the reason on standard error: nothing ready, the batch
already paid with another reference, ...); 2 bad usage or could not run (a bad option, the
node not initialised or out of reach, no such treasurer).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from members.access import Member
    from merchants.payouts.service import Batch
    from runtime.node import Node

EXIT_OK, EXIT_REFUSED, EXIT_CANNOT_RUN = 0, 1, 2
err = Console(stderr=True)

payouts = typer.Typer(
    help="Transfer files paying the merchants' reconversions (SEPA pain.001).",
    no_args_is_help=True,
    add_completion=False,
)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of lines of text.")]
TreasurerId = Annotated[
    str,
    typer.Option(
        "--treasurer",
        envvar="SOU_TREASURER",
        help="The member id of the treasurer acting (recorded on the batch).",
    ),
]


def _fail(message: str, code: int = EXIT_CANNOT_RUN) -> typer.Exit:
    err.print("[red]error:[/red]", escape(message), soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def _node() -> Iterator[Node]:
    from runtime.node import open_node
    from runtime.settings import Settings

    try:
        node = open_node(Settings())
    except Exception as exc:  # not initialised, unreachable, keys that are not the log's
        raise _fail(str(exc)) from exc
    try:
        yield node
    finally:
        node.close()


def _treasurer(node: Node, member_id: str) -> Member:
    from members import service as members

    found = members.find_member(node, member_id)
    if found is None or found.role != "treasurer":
        raise _fail(f"{member_id} is not a treasurer of this node (--treasurer)")
    return found


def _refused(refusal: Any) -> typer.Exit:
    return _fail(refusal.message.format(**refusal.params), EXIT_REFUSED)


def _euros(cents: int) -> str:
    return f"{cents / 100:.2f} EUR"


def _batch_json(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "status": batch.status,
        "message_id": batch.message_id,
        "total": batch.total,
        "count": batch.count,
        "bank_ref": batch.bank_ref,
        "created_by": batch.created_by,
        "created_ms": batch.created_ms,
        "items": [vars(i) for i in batch.items],
    }


@payouts.command("list")
def list_payouts(as_json: AsJson = False) -> None:
    """List the reconversions ready for a file, those apart (why), and the latest files.

    Exit 0, or 1 when nothing is ready."""
    from merchants.payouts import service

    with _node() as node:
        queue = service.queue(node)
        batches = service.batches(node)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ready": [
                        {
                            "reconversion_id": r.reconversion.id,
                            "member": r.reconversion.member,
                            "amount": r.reconversion.net,
                            "iban": r.details.iban,
                            "bic": r.details.bic,
                            "holder": r.details.holder,
                        }
                        for r in queue.ready
                    ],
                    "apart": [
                        {
                            "reconversion_id": a.reconversion.id,
                            "member": a.reconversion.member,
                            "amount": a.reconversion.net,
                            "why": a.why,
                        }
                        for a in queue.apart
                    ],
                    "batches": [_batch_json(b) for b in batches],
                },
                ensure_ascii=False,
            )
        )
    else:
        typer.echo(f"Ready for a transfer file: {len(queue.ready)}.")
        for r in queue.ready:
            typer.echo(
                f"  reconversion {r.reconversion.id} {r.reconversion.member} "
                f"{_euros(r.reconversion.net)} {r.details.iban}"
            )
        typer.echo(f"Cannot be paid yet: {len(queue.apart)}.")
        for a in queue.apart:
            typer.echo(f"  reconversion {a.reconversion.id} {_euros(a.reconversion.net)}: {a.why}")
        for b in batches:
            ref = f" ({b.bank_ref})" if b.bank_ref else ""
            typer.echo(f"File {b.id}: {b.status}{ref}, {b.count} transfers, {_euros(b.total)}.")
    raise typer.Exit(EXIT_OK if queue.ready else EXIT_REFUSED)


@payouts.command("batch")
def make_batch(
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Where to write the pain.001 file ('-' for standard output)."
        ),
    ],
    treasurer: TreasurerId,
    request_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="This request's id (a UUID is fine): run again with the same id, it gives "
            "the same file back instead of a new one.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Make the transfer file of every reconversion ready and write it.

    The file is recorded as an unpaid batch. Exit 0, or 1 when nothing is ready or it is
    refused (the reason on stderr)."""
    from merchants.payouts import service
    from merchants.payouts.schemas import BatchCreate
    from web.refusals import Refusal

    if request_id is not None:
        try:
            BatchCreate(id=request_id)
        except ValueError:
            raise _fail("--id is 1 to 48 letters, digits or _.:- (a UUID is fine)") from None
    with _node() as node:
        acting = _treasurer(node, treasurer)
        try:
            made = service.make_batch(node, acting, request_id)
            _, xml = service.batch_file(node, made.batch.id)
        except Refusal as refusal:
            raise _refused(refusal) from None
    _write(output, xml)
    to_stderr = str(output) == "-"  # standard output holds the file
    if as_json:
        shown = {**_batch_json(made.batch), "replayed": made.replayed}
        typer.echo(json.dumps(shown), err=to_stderr)
    else:
        again = " (made before by this id)" if made.replayed else ""
        typer.echo(
            f"File {made.batch.id}{again}: {made.batch.count} transfers, "
            f"{_euros(made.batch.total)}, written to {output}.",
            err=to_stderr,
        )


def _write(output: Path, xml: bytes) -> None:
    if str(output) == "-":
        sys.stdout.buffer.write(xml)
        sys.stdout.flush()
        return
    try:
        output.write_bytes(xml)
    except OSError as exc:
        raise _fail(f"cannot write {output}: {exc}") from exc


@payouts.command("paid")
def mark_paid(
    batch_id: Annotated[int, typer.Argument(help="The batch (file) the bank executed.", min=1)],
    reference: Annotated[
        str, typer.Option("--reference", "-r", help="The bank's reference of the transfer.")
    ],
    treasurer: TreasurerId,
    as_json: AsJson = False,
) -> None:
    """Mark a batch paid with the bank's reference.

    Each of its reconversions is paid once. The same reference again finishes what is
    left; another one is refused (exit 1)."""
    from merchants.payouts import service
    from web.refusals import Refusal

    with _node() as node:
        acting = _treasurer(node, treasurer)
        try:
            service.pay_batch(node, acting, batch_id, reference)
            found = service.find_batch(node, batch_id)
        except Refusal as refusal:
            raise _refused(refusal) from None
    if as_json:
        typer.echo(json.dumps(_batch_json(found)))
    else:
        typer.echo(
            f"File {found.id} paid ({found.bank_ref}): {found.count} reconversions, "
            f"{_euros(found.total)}."
        )
