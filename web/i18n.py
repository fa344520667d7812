"""French first, English too: gettext catalogues read with Babel, the language chosen per request.

The catalogue of a language is every `web/locale/<lang>/LC_MESSAGES/*.po` file (one per
feature, so that features do not edit one shared file), then those of the plugins that
bring their own (`add_catalogue`). Messages are written in English in
the code and templates; French is a translation like any other. The files are compiled in
memory at start: there is no build step. `pybabel extract -F babel.cfg` lists the msgids.
"""

from __future__ import annotations

import gettext
import re
from decimal import Decimal
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from io import BytesIO

from babel.core import Locale, negotiate_locale
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from starlette.requests import Request

LANGUAGES = ("fr", "en")
DEFAULT = "fr"
LANG_COOKIE = "sou_lang"


_CATALOGUES: list[Traversable] = [files("web") / "locale"]


def add_catalogue(locale: Traversable) -> None:
    """Add a plugin's translations (`<locale>/<lang>/LC_MESSAGES/*.po`), after the node's
    own: a message both translate keeps the node's."""
    if all(str(locale) != str(known) for known in _CATALOGUES):
        _CATALOGUES.append(locale)
        translations.cache_clear()


def _parts(lang: str) -> list[Traversable]:
    found: list[Traversable] = []
    for locale in _CATALOGUES:  # the node's own first: see `translations`
        folder = locale / lang / "LC_MESSAGES"
        if folder.is_dir():
            found += sorted((p for p in folder.iterdir() if p.name.endswith(".po")), key=str)
    return found


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalogue of one language (English, the source language, needs none)."""
    parts = _parts(lang)
    if lang == "en" or not parts:
        return gettext.NullTranslations()
    catalog = Catalog(locale=lang)
    for part in parts:  # one file per feature, one catalogue
        with part.open("rb") as po:
            for message in read_po(po, locale=lang):
                # The first translation of a message stands: the node's own, before any
                # plugin's, so that no plugin rewords what the node's pages say.
                if message.id and message.string and message.id not in catalog:
                    catalog[message.id] = _all_forms(message, catalog.num_plurals)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def _all_forms(message: Message, forms: int) -> Message:
    """A plural message with a form for each of the language's plurals. French has three
    (one, the millions, other) where most catalogues give two (one, other): gettext would
    answer the English for a count whose form is missing, so the last form given stands
    for the missing ones."""
    if isinstance(message.string, tuple | list):
        given = list(message.string)
        while given and not given[-1]:  # Babel leaves the forms a file lacks empty
            given.pop()
        if given:
            message.string = (*given, *[given[-1]] * (forms - len(given)))
    return message


# The day's figure in a written date: a 1 standing alone, before a space ("1 janv. 2026").
_FIRST_DAY = re.compile(r"(?<!\d)1(?=\s)")


def first_day(written: str, day: int, lang: str) -> str:
    """French writes the first of a month as an ordinal, « le 1er janvier », which Babel's
    patterns do not: in a French date of the first, the day's figure becomes « 1er »."""
    if day != 1 or not lang.startswith("fr"):
        return written
    return _FIRST_DAY.sub("1er", written, count=1)


# "de" before a name that starts with a vowel: a capital vowel, then a small letter ("de
# Inès", "de Œufs"; not "de AMAP", an acronym, nor "de Hugo": an h may be aspirated).
_DE_BEFORE_VOWEL = re.compile(r"\bde (?=[AEIOUÀÂÉÈÊËÎÏÔÛÙŒ][a-zàâçéèêëîïôûùœ])")


def elided(text: str, lang: str) -> str:
    """French elides « de » before a vowel, « d’Inès »: a message cannot do it itself for a
    name filled in later, so the filled sentence is mended."""
    return _DE_BEFORE_VOWEL.sub("d’", text) if lang.startswith("fr") else text


class Elidable(str):
    """A translated message whose `format` mends the filled sentence (`elided`)."""

    lang = DEFAULT

    def format(self, *args: object, **values: object) -> str:
        return elided(super().format(*args, **values), self.lang)


def language_of(request: Request) -> str:
    """The `?lang=` switch, then the cookie it sets, then Accept-Language, then French."""
    for choice in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if choice in LANGUAGES:
            return choice
    header = request.headers.get("accept-language", "")
    wanted = [part.split(";")[0].strip().replace("-", "_") for part in header.split(",")]
    return negotiate_locale([w for w in wanted if w], LANGUAGES, sep="_") or DEFAULT


def gettext_for(request: Request) -> gettext.NullTranslations:
    return translations(language_of(request))


def money(cents: int, lang: str, currency: str = "") -> str:
    """Cents as a reader expects them: 1 234,50 in French, 1,234.50 in English."""
    text = format_decimal(Decimal(cents).scaleb(-2), format="#,##0.00", locale=Locale.parse(lang))
    return f"{text} {currency}".strip()
