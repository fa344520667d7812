"""The treasurer's page of accounting exports, `/treasurer/exports`: a period (default: the
current year) and a download for each file the accountant reads, with a line on what each is
for. Each download (`/treasurer/exports/journal|beancount|fec?from=...&to=...`) is streamed,
a page of transfers at a time; a refusal (bad dates, no SIREN) shows the page again with
what was typed and why, and writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from audits.exports import service
from audits.exports.service import Books, Period
from members.access import MaybeMember, node_of, signed_in
from web.pages import page
from web.refusals import Refusal

router = APIRouter(include_in_schema=False)

DateText = Annotated[str, Query(alias="from", max_length=40)]
EndText = Annotated[str, Query(alias="to", max_length=40)]

# What each file is, and what it is for (msgids, French in exports.po).
FILES = {
    "journal": (
        "Journal (CSV)",
        "Every transfer of the period with its postings, in order: for a spreadsheet, or to "
        "check any figure line by line.",
    ),
    "beancount": (
        "Books (beancount)",
        "The association's books in double entry, units and euros: open them with Fava or "
        "check them with bean-check.",
    ),
    "fec": (
        "FEC",
        "The Fichier des écritures comptables of the euro side, in the format the tax "
        "administration asks for: for the accountant's software and a tax audit.",
    ),
}
MEDIA_TYPES = {"journal": "text/csv", "beancount": "text/plain", "fec": "text/plain"}


def _today(request: Request) -> datetime:
    return datetime.now(ZoneInfo(node_of(request).settings.timezone))


def _siren(request: Request) -> str:
    settings = node_of(request).plugin_settings("exports")
    return str(getattr(settings, "siren", "") or "")


def _exports_page(
    request: Request, start: str, end: str, status: int = 200, flash: str | None = None
) -> Response:
    year = _today(request).year
    context: dict[str, object] = {"flash": flash} if flash else {}
    return page(
        request,
        "exports/exports.html",
        status=status,
        start=start or f"{year}-01-01",
        end=end or f"{year}-12-31",
        files=FILES,
        siren=_siren(request),
        **context,
    )


@router.get("/treasurer/exports")
def exports(request: Request, p: MaybeMember, start: DateText = "", end: EndText = "") -> Response:
    """The period to export and the files to download."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    return _exports_page(request, start, end)


def _download(request: Request, p: MaybeMember, what: str, start: str, end: str) -> Response:
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    node = node_of(request)
    siren = _siren(request)
    try:
        period = Period.parse(start or None, end or None, _today(request).date())
        name = service.file_name(what, period, siren)
        books = Books(node.ledger.engine, node.ledger.chart.local, node.settings.timezone, siren)
        chunks = service.export(what, books, period)
    except Refusal as refusal:
        return _exports_page(request, start, end, refusal.status, refusal.text(request))
    charset = service.encoding(what)
    return StreamingResponse(
        (chunk.encode(charset, errors="replace") for chunk in chunks),
        media_type=f"{MEDIA_TYPES[what]}; charset={charset}",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/treasurer/exports/journal")
def journal(request: Request, p: MaybeMember, start: DateText = "", end: EndText = "") -> Response:
    """Every transfer of the period and its postings, as CSV."""
    return _download(request, p, "journal", start, end)


@router.get("/treasurer/exports/beancount")
def beancount(
    request: Request, p: MaybeMember, start: DateText = "", end: EndText = ""
) -> Response:
    """The period's books as a beancount file."""
    return _download(request, p, "beancount", start, end)


@router.get("/treasurer/exports/fec")
def fec(request: Request, p: MaybeMember, start: DateText = "", end: EndText = "") -> Response:
    """The period's FEC, named <SIREN>FEC<last day>.txt."""
    return _download(request, p, "fec", start, end)
