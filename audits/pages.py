"""The treasurer's audit page, `/treasurer/audit`.

It shows the last audit (when, full or resumed, how long, what it checked), its findings by
severity in plain words (an emergency first), the ACPR watch and the backing, and the past
runs; two buttons start a run in the background ("check what is new", "full audit"), whose
progress `web/static/audit.js` follows through the API without reloading. Without
JavaScript the forms post here and the page comes back naming the run started.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from string import Formatter
from typing import Any

from babel import Locale
from babel.numbers import format_decimal, format_percent
from fastapi import APIRouter, Request
from fastapi.responses import Response

from audits import service
from audits.report import EMERGENCY, ERROR, WARNING
from members.access import MaybeMember, node_of, signed_in
from web.i18n import gettext_for, language_of
from web.pages import DoneId, Text, done, page, say, when
from web.refusals import Refusal, ledger_reason

router = APIRouter(include_in_schema=False)

# What each check means, for a treasurer who is no programmer (msgids, French in audit.po).
CHECK_WORDS = {
    "keys": "The register of keys (who may sign for whom) does not match its signed history.",
    "signature": "A movement's signature does not hold: it was not signed by its payer's key.",
    "signed": "A movement's signature does not hold: it was not signed by its payer's key.",
    "order": "A movement differs from the order its payer signed.",
    "postings": "A movement's entries do not balance, or are not those its order implies.",
    "balance": "An account's balance differs from the sum of its movements.",
    "account": "An account is not as the chart of accounts says it should be.",
    "backing": "Units in circulation exceeded the euros in reserve.",
    "log": "The public log of movements does not match the movements stored.",
    "checkpoint": "A signed checkpoint of the log does not match the log.",
    "acpr": "Payments are nearing the ceiling above which the ACPR supervises the currency.",
    "meta": "The ledger's identity or the previous audit's state is not as expected.",
    "escrow": "An escrow account does not hold what its module's records say.",
    "fees": "A fee rule, or a fee charged, is not as the rules in force say.",
    "paper": "The paper notes' accounts do not match the notes printed, sold and deposited.",
}
OTHER_CHECK = "The audit found something the ledger's data contradicts."
SEVERITIES = (EMERGENCY, ERROR, WARNING)  # the order the page shows them in
STATUS_WORDS = {
    "running": "Running",
    "ok": "Everything holds",
    "findings": "Findings",
    "failed": "Could not finish",
}
ACPR_WARNING_SHARE = 0.8


def _by(request: Request, started_by: str) -> str:
    if started_by.startswith("job:"):
        return say(request, "the schedule")
    if started_by.startswith("member:"):
        return say(request, "the treasurer")
    return say(request, "the command line")


def _percent(request: Request, share: float, decimals: int = 0) -> str:
    """A share as the reader writes it: "80 %" in French, "80%" in English."""
    lang = language_of(request)
    pattern = str(Locale.parse(lang).percent_formats[None].pattern)
    if decimals:
        pattern = pattern.replace("0", "0." + "0" * decimals, 1)  # "#,##0 %": one 0
    return format_percent(share, pattern, locale=lang)


def _said(tr: Callable[[str], str], lang: str, finding: dict[str, Any]) -> str:
    """A finding's line in the reader's language: its English template (a msgid) translated
    and filled with its values, a reason it quotes said by the ledger's code or by its own
    template. One kept without them (a run recorded before they were, a message the ledger
    wrote whole) is shown as it is, in English."""
    message = str(finding.get("message", ""))
    template, args = finding.get("template"), finding.get("args")
    if not isinstance(template, str) or not template or not isinstance(args, dict):
        return message
    reason = _reason_said(tr, lang, args)
    if reason is not None:
        args = {**args, "reason": reason[:1].lower() + reason[1:]}  # within the finding's line
    filled = _filled(tr(template), args)
    return message if filled is None else filled


def _reason_said(tr: Callable[[str], str], lang: str, args: dict[str, Any]) -> str | None:
    """The reason a finding quotes, in the reader's language: a ledger's refusal by its code,
    a checkpoint's by its template and values; None when it has neither (or its template
    cannot be filled), the English reason then standing."""
    code, field = args.get("reason_code"), args.get("reason_field")
    if isinstance(code, str) and isinstance(args.get("reason"), str):
        why = ledger_reason(code, args["reason"], field if isinstance(field, str) else None)
        return why.said(tr, lang).removesuffix(".")
    template, values = args.get("reason_template"), args.get("reason_args")
    if isinstance(template, str) and template and isinstance(values, dict):
        return _filled(tr(template), values)
    return None


def _filled(text: str, values: dict[str, Any]) -> str | None:
    """`text` with its {names} filled from `values`; None when it does not fit."""
    try:
        # Only plain {names}: the template comes from the stored run, and a field such as
        # {x.__class__} would read attributes.
        if any(
            name is not None and (not name.isidentifier() or spec or conversion)
            for _, name, spec, conversion in Formatter().parse(text)
        ):
            return None
        return text.format(**values)
    except (KeyError, IndexError, ValueError):
        return None


def _why_full(tr: Callable[[str], str], why: str) -> tuple[str, bool]:
    """Why a run asked to resume checked everything, in the reader's language, and whether
    it is an alarm (a state that could not be used) rather than a first audit."""
    for template in service.WHY_FULL:
        pattern = re.escape(template).replace(re.escape("{run}"), r"(?P<run>\d+)")
        found = re.fullmatch(pattern, why)
        if found:
            return tr(template).format(**found.groupdict()), template != service.NOTHING_TO_RESUME
    return why, True  # recorded by another version: as it is


def _checked(request: Request, report: dict[str, Any]) -> str:
    """What a run checked, each count in the reader's plural and digits ("1 point de
    contrôle", "102 416 mouvements")."""
    translations, lang = gettext_for(request), language_of(request)

    def counted(one: str, many: str, key: str) -> str:
        count = int(report.get(key) or 0)
        return translations.ngettext(one, many, count).format(n=format_decimal(count, locale=lang))

    counts = [
        counted("{n} movement", "{n} movements", "transfers"),
        counted("{n} key event", "{n} key events", "key_events"),
        counted("{n} entry of the log", "{n} entries of the log", "leaves"),
        counted("{n} checkpoint", "{n} checkpoints", "checkpoints"),
        counted("{n} account", "{n} accounts", "accounts"),
    ]
    return translations.gettext("Checked: {counts}.").format(counts=", ".join(counts))


def _grouped(
    report: dict[str, Any] | None, tr: Callable[[str], str], lang: str
) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {severity: [] for severity in SEVERITIES}
    for finding in (report or {}).get("findings", []):
        shown = {**finding, "said": _said(tr, lang, finding)}
        groups.setdefault(finding.get("severity", ERROR), []).append(shown)
    return groups


def _audit_page(request: Request, status: int = 200, **extra: Any) -> Response:
    node = node_of(request)
    with node.engine.connect() as conn:
        last = service.latest_run(conn)
        report = service.run_of(conn, last.id)[1] if last else None
        running = service.running_run(conn, service.settings_of(node).stale_after_s)
        past = service.runs(conn, 20)
    watch = last.watch if last else None
    tr = gettext_for(request).gettext  # the script fills the messages' {names}
    return page(
        request,
        "audit/audit.html",
        status=status,
        last=last,
        why_full=_why_full(tr, last.why_full) if last and last.why_full else None,
        report=report,
        checked=_checked(request, report) if report else None,
        findings=_grouped(report, tr, language_of(request)),
        watch=watch,
        acpr_near=watch is not None and watch.acpr_share >= ACPR_WARNING_SHARE,
        running=running,
        past=past,
        check_words=CHECK_WORDS,
        other_check=OTHER_CHECK,
        status_words=STATUS_WORDS,
        by=lambda started_by: _by(request, started_by),
        when=lambda ms: when(request, ms),
        percent=lambda share, decimals=0: _percent(request, share, decimals),
        seconds=lambda s: format_decimal(s, "0.0", locale=language_of(request)),
        data={
            "running": running.id if running else None,
            "messages": {
                "progress": tr("Checked {done} of {total} movements…"),
                "starting": tr("Starting…"),
                "ok": tr("Finished: everything holds."),
                "findings": tr("Finished with findings: show the result to read them."),
                "failed": tr("The audit could not finish."),
                "reload": tr("Show the result"),
            },
        },
        **extra,
    )


@router.get("/treasurer/audit")
def audit_page(request: Request, p: MaybeMember, started: DoneId = None) -> Response:
    """The last audit, its findings and figures, the past runs; buttons to start one."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    flash = say(request, "Audit {run} started.", run=started) if started else None
    return _audit_page(request, flash=flash)


@router.post("/treasurer/audit")
def start_audit(request: Request, p: MaybeMember, full: Text = "") -> Response:
    """One of the page's buttons: `full` "yes" for a full audit, else what is new."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    try:
        run_id = service.start_in_background(
            node_of(request), f"member:{treasurer.id}", full=full == "yes"
        )
    except Refusal as refusal:
        return _audit_page(request, refusal.status, flash=refusal.text(request))
    return done("/treasurer/audit", started=run_id)
