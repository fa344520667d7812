"""The public page /transparence and the verifier it hands out, open to everyone. The page is
French first, kept a few seconds by the visitor's browser (never by a shared cache: a page
holds its reader's menu and form token)."""

from __future__ import annotations

from babel.numbers import format_decimal
from fastapi import APIRouter, Request
from fastapi.responses import Response

from audits.transparency import service
from members.access import MaybeMember, node_of
from web.i18n import language_of
from web.pages import page, when

router = APIRouter(include_in_schema=False)


@router.get("/transparence")
def transparency(request: Request, p: MaybeMember) -> Response:
    """The units in circulation, the euros backing them, the latest signed checkpoint, the
    last clean audit, and how a resident checks all this without trusting the node."""
    figures = service.figures(node_of(request))
    response = page(
        request,
        "transparency/page.html",
        figures=figures,
        checkpoint_when=None
        if figures.checkpoint is None
        else when(request, figures.checkpoint.created_ms),
        audit_when=None if figures.audit is None else when(request, figures.audit.finished_ms),
        ratio=_percent(request, figures),
        verifier_sha256=service.VERIFIER_SHA256,
    )
    if p is None:  # a signed-in reader's page is theirs alone: the middleware says no-store
        response.headers["Cache-Control"] = f"private, max-age={service.FRESH_FOR_S}"
    return response


@router.get("/transparence/sou_verify.py")
def verifier() -> Response:
    """The node's own verifier (`ledger/verify.py`), one file a resident reads, then runs
    with PyNaCl alone: no package to install from a name anyone could register."""
    return Response(
        service.VERIFIER,
        media_type="text/x-python; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="sou_verify.py"'},
    )


def _percent(request: Request, figures: service.Figures) -> str | None:
    ratio = figures.ratio_percent
    if ratio is None:
        return None
    lang = language_of(request)
    # French sets a narrow no-break space before the percent sign.
    sign = "\u202f%" if lang == "fr" else "%"
    return format_decimal(ratio, format="#,##0.0", locale=lang) + sign
