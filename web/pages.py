"""What every feature's pages share: the templates, the anonymous CSRF cookie, the error
page and handlers, and the pages' helpers (login redirect, messages, dates, amounts typed
and shown).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, date, datetime
from functools import cache
from importlib.resources.abc import Traversable
from typing import Annotated, Any
from urllib.parse import quote

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_timezone
from babel.numbers import get_decimal_symbol, get_group_symbol
from fastapi import FastAPI, Form, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    nodes,
    pass_context,
    select_autoescape,
)
from jinja2.ext import InternationalizationExtension
from jinja2.runtime import Context
from markupsafe import Markup
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ledger.errors import LedgerError
from runtime.keystore import KeyFileError
from web.i18n import (
    LANG_COOKIE,
    LANGUAGES,
    Elidable,
    elided,
    first_day,
    gettext_for,
    language_of,
    money,
)
from web.refusals import Refusal, field_phrase, refusal_of, validation_reason
from web.schemas import NO_NUL, ONE_LINE

CSRF_COOKIE = "sou_csrf"
# What people type in an amount's field, read exactly as the pages' script reads it
# (`Sou.parseCents` in web/static/sou.js; tests/test_amounts_browser.py holds both to one
# table). First the spaces JavaScript's trim() removes around the text...
TRIMMED = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
TRIMMED += "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# ...then one unit after the figure ("12,50 €", "12.50 EUR", or the node's own unit, in
# any case), as people copy it from a receipt...
EURO_UNITS = ("€", "EUR")
# ...then the figure: digits, or groups of three after a space (plain, no-break or narrow
# no-break, as French writes "1 250"); then one decimal comma or point and digits. "12 50"
# is refused, never read as 1 250; so are signs, exponents and "12," alone. A page whose
# group separator is a comma (English) also reads "1,250.50", but "1,250" is refused: it
# would be 1.25 to a French reader.
SPACES = " \u00a0\u202f"
DECIMAL_MARKS = ".,"


@cache
def _typed_figure(group: str) -> re.Pattern[str]:
    def grouped(separators: str) -> str:
        return rf"[0-9]{{1,3}}(?:[{re.escape(separators)}][0-9]{{3}})+"

    own = group if len(group) == 1 and group not in "0123456789" + DECIMAL_MARKS else ""
    figure = rf"({grouped(SPACES + own)}|[0-9]+)(?:[.,]([0-9]+))?"
    if len(group) == 1 and group in DECIMAL_MARKS:
        other = DECIMAL_MARKS.replace(group, "")
        figure += rf"|({grouped(SPACES + group)}){re.escape(other)}([0-9]+)"
    return re.compile(f"(?:{figure})")


def _without_unit(text: str, unit: str) -> str:
    for known in (*EURO_UNITS, unit):
        if known and text[-len(known) :].upper() == known.upper():
            return text[: -len(known)].strip(TRIMMED)
    return text


def _parts(found: re.Match[str] | None) -> tuple[str | None, str | None]:
    """The whole part and the fraction of a figure, from whichever form matched."""
    if found is None:
        return None, None
    return (found[1], found[2]) if found[1] is not None else (found[3], found[4])


def parse_euros(text: str, unit: str = "", group: str = "") -> int:
    """Euros typed in a form as cents, exactly as the page's script reads them, with the
    node's `unit` and the page's `group` separator: more than 2 decimals, signs or anything
    else is refused, never rounded, and no float is involved. Zero and the largest amount
    are the service's to judge."""
    figure = _without_unit((text or "").strip(TRIMMED), unit)
    whole, fraction = _parts(_typed_figure(group).fullmatch(figure))
    digits = re.sub("[^0-9]", "", whole or "")
    # More than 15 digits is no amount anyone holds (and past 4,300 `int` refuses to read).
    if whole is None or len(digits) > 15 or (fraction is not None and len(fraction) > 2):
        raise Refusal(
            422, "bad_euros", "Write the amount in euros, like 20 or 20,50 (at most 2 decimals)."
        )
    return int(digits) * 100 + int((fraction or "").ljust(2, "0"))


def typed_euros(request: Request, text: str) -> int:
    """`parse_euros` of what a form's reader typed: the page's separators, the node's unit."""
    local = request.app.state.node.ledger.chart.local
    return parse_euros(text, local, number_format(request)["group"])


def problem(request: Request, refusal: Refusal) -> Response:
    body = {"error": refusal.code, "message": refusal.text(request), **refusal.params}
    headers = {"Content-Language": language_of(request)}
    if refusal.status == 429 and "retry_after" in refusal.params:
        headers["Retry-After"] = str(refusal.params["retry_after"])
    if wants_html(request):
        page = render(request, "error.html", refusal=refusal, message=body["message"])
        return HTMLResponse(page, status_code=refusal.status, headers=headers)
    return JSONResponse(body, status_code=refusal.status, headers=headers)


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/stripe/")) and "text/html" in (
        request.headers.get("accept", "")
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal) -> Response:
        return problem(request, exc)

    @app.exception_handler(LedgerError)
    async def _ledger(request: Request, exc: LedgerError) -> Response:
        return problem(request, refusal_of(exc))

    @app.exception_handler(KeyFileError)
    async def _keys(request: Request, exc: KeyFileError) -> Response:
        # A key the node would sign with is not the log's (`Node.signing_key` logged which
        # and what to copy): nothing was signed; the same request works once it is put right.
        refusal = Refusal(
            503,
            "node_keys_not_registered",
            "This node cannot sign right now: its keys are not those its log registers, or "
            "cannot be read. Its operator has been told; try again later.",
        )
        return problem(request, refusal)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        refusal = Refusal(
            422,
            "invalid_request",
            "The field {field} is not valid: {reason}.",
            field=field_phrase(first.get("loc", ())[1:]),
            reason=validation_reason(dict(first)),
        )
        return problem(request, refusal)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {
            404: "There is nothing at this address.",
            405: "This method is not allowed here.",
        }
        message = messages.get(exc.status_code, str(exc.detail))
        response = problem(request, Refusal(exc.status_code, "http_error", message))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(_allowed(request))
        return response


def _allowed(request: Request) -> list[str]:
    """Every method the path answers: Starlette's 405 names only its first route's."""
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]


class _Translating(InternationalizationExtension):
    """Jinja's {% trans %}, its filled sentence mended as the reader's language writes it
    (`elided`: « d’Inès »)."""

    def _make_node(self, *args: Any, **kwargs: Any) -> nodes.Output:
        made = super()._make_node(*args, **kwargs)
        return nodes.Output([nodes.Filter(made.nodes[0], "elided", [], [], None, None)])


@pass_context
def _elided(context: Context, text: Any) -> Any:
    lang = str(context.get("lang", ""))
    if isinstance(text, Markup):
        return Markup(elided(str(text), lang))
    return elided(str(text), lang)


# The node's templates, then the plugins' (`add_templates`), found by name in that order.
_LOADERS: list[BaseLoader] = [PackageLoader("web", "templates")]
templates = Environment(
    loader=ChoiceLoader(_LOADERS),
    autoescape=select_autoescape(("html",)),
    extensions=[_Translating],
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["elided"] = _elided


def add_templates(folder: Traversable) -> None:
    """Let pages render a plugin's templates too (a name the node uses stays the node's)."""
    path = str(folder)
    known = {str(getattr(loader, "searchpath", [""])[0]) for loader in _LOADERS}
    if path not in known:
        _LOADERS.append(FileSystemLoader(path))


def menu_of(request: Request, member: Any) -> list[Any]:
    """The menu entries the plugins give this member's role (and finer rules), in order."""
    entries = getattr(request.app.state, "menu", ())
    if member is None:  # a visitor: the public pages' links
        return [e for e in entries if "visitor" in e.roles]
    settings = request.app.state.node.settings
    at_counter = getattr(request.state, "scope", None) == "pos"  # a paired counter device
    return [
        e
        for e in entries
        if member.role in e.roles
        and (e.counter or not at_counter)
        and (e.shown is None or e.shown(member, settings))
    ]


def csrf_token(request: Request) -> str:
    """The token forms must send back: the session's, or the anonymous cookie's."""
    session = getattr(request.state, "session_csrf", None)
    if session:
        return str(session)
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = secrets.token_urlsafe(24)
        request.state.new_csrf = token
    return str(token)


def render(request: Request, name: str, **context: Any) -> str:
    lang = language_of(request)
    tr = gettext_for(request)
    node = request.app.state.node
    me = getattr(request.state, "member", None)

    def said(message: str) -> Elidable:  # `_("... {name}").format(name=...)` elides too
        text = Elidable(tr.gettext(message))
        text.lang = lang
        return text

    return templates.get_template(name).render(
        request=request,
        lang=lang,
        languages=LANGUAGES,
        gettext=said,
        ngettext=tr.ngettext,
        _=said,
        csrf=csrf_token(request),
        village=node.settings.village,
        origin=node.ledger.origin,
        residents_may_reconvert=node.settings.residents_may_reconvert,
        currency=node.ledger.chart.local,
        money=lambda cents, cur=node.ledger.chart.local: money(cents, lang, cur),
        me=me,
        menu=menu_of(request, me),
        **context,
    )


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page, setting the anonymous CSRF and language cookies when new. A `flash`
    message reads as a refusal when the status is one (4xx), as a success otherwise."""
    if "flash" in context:
        context.setdefault("flash_kind", "error" if status >= 400 else "ok")
    response = HTMLResponse(render(request, name, **context), status_code=status)
    new_csrf = getattr(request.state, "new_csrf", None)
    secure = request.url.scheme == "https"
    if new_csrf:
        response.set_cookie(CSRF_COOKIE, new_csrf, httponly=True, samesite="lax", secure=secure)
    chosen = request.query_params.get("lang")
    if chosen in LANGUAGES:
        response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, samesite="lax")
    return response


# -- what the pages' handlers share ----------------------------------------------------------

# A field of a posted form, as typed (a NUL character in it: a 422).
Text = Annotated[str, Form(pattern=NO_NUL)]
# The id a page is sent back with after a success, naming what was done (see `done`).
DoneId = Annotated[int | None, Query(ge=1, le=2**53)]
# The id a page's address names (a receipt's transfer...): out of the ids' range, a 422.
PathId = Annotated[int, Path(ge=1, le=2**53)]
# An id typed in a form, read as digits by the page (`int()` of a longer one would
# refuse 4300 digits and more with a ValueError, a 500): 2**53 has 16 digits.
MAX_ID_DIGITS = 16
# A name a page's address holds (a member id, a shop's slug, a note's series): one line of at
# most 200 characters, else a 422 (PostgreSQL refuses even to compare a NUL byte).
PathName = Annotated[str, Path(min_length=1, max_length=200, pattern=ONE_LINE)]


def to_login(request: Request, back: str | None = None) -> RedirectResponse:
    """Send an anonymous visitor to the login page, coming back to `back` afterwards (this
    page, with its query, by default)."""
    here = back or request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)


def done(path: str, **what: int | str) -> RedirectResponse:
    """Back to the page after a success, naming what was done (the page says it)."""
    query = "&".join(f"{name}={quote(str(value), safe='')}" for name, value in what.items())
    return RedirectResponse(f"{path}?{query}", status_code=303)


def say(request: Request, message: str, **values: Any) -> str:
    """A message of the page in the reader's language, its `{name}`s filled."""
    lang = language_of(request)
    return elided(gettext_for(request).gettext(message).format(**values), lang)


def say_counted(request: Request, one: str, many: str, n: int, **values: Any) -> str:
    """A message that counts `n` ({n} in it), in the reader's plural."""
    said = gettext_for(request).ngettext(one, many, n).format(n=n, **values)
    return elided(said, language_of(request))


# Where the reader names no region for the page's language, the village's neighbours: an
# English reader in France is more likely British or European than American.
DEFAULT_REGIONS = {"en": "en_GB", "fr": "fr_FR"}


def reader_locale(request: Request) -> Locale:
    """The page's language with the reader's region when Accept-Language names one for it
    ("en-US" → en_US), else its neighbours' (en_GB): dates are written as they read them."""
    lang = language_of(request)
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().replace("-", "_")
        if tag.lower().startswith(f"{lang}_"):
            try:
                return Locale.parse(tag)
            except (ValueError, UnknownLocaleError):
                continue
    return Locale.parse(DEFAULT_REGIONS.get(lang, lang))


def when(request: Request, ms: int) -> str:
    """A moment as people of the page's language write it, in the node's time zone, to the
    minute: "3 Dec 2026, 15:04", "3 déc. 2026, 15:04"; "Dec 3, 2026, 3:04 PM" for en-US."""
    zone = get_timezone(request.app.state.node.settings.timezone)
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    locale = reader_locale(request)
    local = moment.astimezone(zone)
    written_day = first_day(format_date(local, "medium", locale=locale), local.day, str(locale))
    written_time = format_time(moment, "short", tzinfo=zone, locale=locale)
    pattern = locale.datetime_formats["medium"]
    return str(pattern).replace("{1}", written_day).replace("{0}", written_time)


def day(request: Request, moment: date) -> str:
    """A day as people of the page's language write it: 31 décembre 2026, 31 December 2026."""
    locale = reader_locale(request)
    return first_day(format_date(moment, "long", locale=locale), moment.day, str(locale))


def public_origin(request: Request) -> str:
    """Where people's phones reach the node ("https://sou.example.org"): the setting, or
    else the address this request came to (the proxy's, behind one that says so)."""
    configured = request.app.state.node.settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


def page_money(request: Request, cents: int, currency: str | None = None) -> str:
    """Cents as the page's reader writes them: "20,50 SOU" in French (the local unit unless
    another currency is named)."""
    local = request.app.state.node.ledger.chart.local
    return money(cents, language_of(request), currency or local)


def number_format(request: Request) -> dict[str, str]:
    """Separators for the scripts that write amounts the way the server does."""
    lang = language_of(request)
    return {"decimal": get_decimal_symbol(lang), "group": get_group_symbol(lang)}
