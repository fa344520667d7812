"""The treasurer's dashboard, the general assembly's PDF report, and the merchants' page
where they give or withdraw their consent to be named in it.

`GET /treasurer/dashboard?first=2026-01-01&last=2026-12-31` shows the period's figures as
charts (SVG drawn by the node) and tables; `GET /treasurer/dashboard/report.pdf` with the
same period (and `lang`) is the same report as a PDF. `GET /merchant/listing` says whether
the merchant's shop may be named; `POST /merchant/listing` (`listed` yes or no) answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from audits.reports import pdf, sections, service
from members.access import MaybeMember, Member, node_of, signed_in
from members.errors import BAD_FORM
from web.i18n import gettext_for, language_of
from web.pages import Text, done, page, say, when
from web.refusals import Refusal

router = APIRouter(include_in_schema=False)

Day = Annotated[str | None, Query(max_length=10)]
TREASURERS = ("treasurer",)  # as the other treasurer's pages: the admin has no seat here


def _writer(request: Request) -> sections.Writer:
    node = node_of(request)
    translations = gettext_for(request)
    return sections.Writer(
        translations.gettext,
        language_of(request),
        node.ledger.chart.local,
        lambda ms: when(request, ms),
        translations.ngettext,
    )


def _today(request: Request) -> datetime:
    return datetime.now(ZoneInfo(node_of(request).settings.timezone))


@router.get("/treasurer/dashboard")
def dashboard(request: Request, p: MaybeMember, first: Day = None, last: Day = None) -> Response:
    """The period's figures, charts and tables; a refused period says why, with the form."""
    treasurer = signed_in(request, p, *TREASURERS)
    if isinstance(treasurer, Response):
        return treasurer
    node = node_of(request)
    try:
        period = service.read_period(first, last, _today(request).date())
    except Refusal as refusal:
        return page(
            request,
            "reports/dashboard.html",
            status=refusal.status,
            flash=refusal.text(request),
            first=first or "",
            last=last or "",
            text=None,
        )
    text = sections.write(service.report(node, period), _writer(request), node.settings.village)
    return page(
        request,
        "reports/dashboard.html",
        first=period.first.isoformat(),
        last=period.last.isoformat(),
        text=text,
        svg=Markup,  # the charts' SVG, made by charts.py with every text escaped
    )


@router.get("/treasurer/dashboard/report.pdf")
def report_pdf(request: Request, p: MaybeMember, first: Day = None, last: Day = None) -> Response:
    """The general assembly's report as a PDF, in the page's language."""
    treasurer = signed_in(request, p, *TREASURERS)
    if isinstance(treasurer, Response):
        return treasurer
    node = node_of(request)
    period = service.read_period(first, last, _today(request).date())
    text = sections.write(service.report(node, period), _writer(request), node.settings.village)
    name = f"report-{period.first.isoformat()}-{period.last.isoformat()}.pdf"
    return Response(
        pdf.as_pdf(text),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- the merchant's consent -----------------------------------------------------------------------


def _listing_page(request: Request, merchant: Member, flash: str | None = None) -> Response:
    consent = service.consent_of(node_of(request), merchant)
    return page(
        request,
        "reports/listing.html",
        consent=consent,
        since=None if consent.recorded_ms is None else when(request, consent.recorded_ms),
        flash=flash,
    )


@router.get("/merchant/listing")
def listing(request: Request, p: MaybeMember, answered: str | None = None) -> Response:
    """Whether the merchant's shop may be named among the most active, and the form."""
    merchant = signed_in(request, p, "merchant")
    if isinstance(merchant, Response):
        return merchant
    flash = None
    if answered == "yes":
        flash = say(request, "Thank you: your shop may be named in the reports.")
    elif answered == "no":
        flash = say(request, "Done: your shop will not be named in the reports.")
    return _listing_page(request, merchant, flash)


@router.post("/merchant/listing")
def answer_listing(request: Request, p: MaybeMember, listed: Text = "") -> Response:
    """The merchant's answer: `listed` yes (they agree) or no (they withdraw)."""
    merchant = signed_in(request, p, "merchant")
    if isinstance(merchant, Response):
        return merchant
    if listed not in ("yes", "no"):
        raise BAD_FORM()
    service.answer_consent(node_of(request), merchant, listed == "yes")
    return done("/merchant/listing", answered=listed)
