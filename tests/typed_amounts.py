"""Amounts as people type them in a form, and the cents the node reads: one table for the
server (`parse_euros` in web/pages.py, tests/test_office.py) and for the pages' script
(`Sou.parseCents` in web/static/sou.js, tests/test_amounts_browser.py), which must read
alike. The node's unit is SOU unless a row names another.
"""

from __future__ import annotations

from typing import NamedTuple

from babel.numbers import get_group_symbol

LANGUAGES = ("fr", "en")
LARGEST = 2**53 - 1  # the largest amount the pages' script reads exactly
GROUP = {lang: get_group_symbol(lang) for lang in LANGUAGES}  # U+202F in French, "," in English


class Typed(NamedTuple):
    text: str
    fr: int | None  # the cents read on a French page; None: refused
    en: int | None  # on an English page
    unit: str = "SOU"


def alike(text: str, cents: int | None, unit: str = "SOU") -> Typed:
    return Typed(text, cents, cents, unit)


TYPED = [
    alike("20", 2_000),
    alike("20,5", 2_050),
    alike("20,50", 2_050),
    alike(" 20.05 ", 2_005),
    alike("0,01", 1),
    alike("007", 700),
    alike("10000", 1_000_000),
    # a space groups thousands, whichever space: plain, no-break, narrow no-break
    alike("2 000", 200_000),
    alike("1 250,50", 125_050),
    alike("1\u00a0250,10", 125_010),
    alike("1\u202f000", 100_000),
    alike("10\u00a0000,00", 1_000_000),
    alike("1 234 567,89", 123_456_789),
    # a unit after the figure: euros, or the node's own, in any case, spaced or not
    alike("20 €", 2_000),
    alike("12,50 €", 1_250),
    alike("12.50 €", 1_250),
    alike("12,50\u00a0€", 1_250),
    alike("12,50€", 1_250),
    alike("20 EUR", 2_000),
    alike("12,50 eUr", 1_250),
    alike("12,50 SOU", 1_250),
    alike("12,50 sou", 1_250),
    alike("12,50 EUSKO", 1_250, unit="EUSKO"),
    alike("12,50 SOU", None, unit="EUSKO"),  # another node's unit
    alike("12,50 USD", None),
    alike("12,50 € €", None),
    alike("€", None),
    alike("EUR", None),
    alike("SOU", None),
    alike("12 50 €", None),
    alike("-12 €", None),
    alike("€ 12", None),
    # spaces around, as JavaScript's trim() removes them
    alike("\ufeff12\u2003", 1_200),
    alike("\t12,50 SOU\n", 1_250),
    # zero is read: refusing it is the form's business
    alike("0", 0),
    alike("0,00", 0),
    # refused: ambiguous, signed, too precise, not decimal digits, not a number
    alike("12 50", None),  # a space only groups thousands: never 1 250
    alike("1 00", None),
    alike("12 ,50", None),
    alike("20.505", None),
    alike("12.345", None),
    alike("12,", None),
    alike(",5", None),
    alike("-1", None),
    alike("+20", None),
    alike("1e3", None),
    alike("0x10", None),
    alike("2.000,50", None),
    alike("douze", None),
    alike("", None),
    alike("   ", None),
    alike("١٢", None),
    alike("٣", None),
    alike("Infinity", None),
    alike("9" * 16, None),  # no amount anyone holds (and 5,000 digits once made a 500)
    alike("9" * 5_000, None),
    # an English page's comma groups thousands before a decimal point, as it writes them;
    # without one, "1,250" could be 1.25 (French) or 1 250 (English): refused on both
    Typed("1,000.50", None, 100_050),
    Typed("1,234,567.89", None, 123_456_789),
    Typed("1 234,567.89", None, 123_456_789),
    alike("1,250", None),
    alike("20,505", None),
    alike("1,234,567", None),
    alike("1,234,56", None),
    alike("1,000,50", None),
    alike("1,2345", None),
    alike("12,50", 1_250),  # a decimal comma on an English page still reads 12.50
    alike("1,25", 125),
]


def expected(row: Typed, lang: str) -> int | None:
    return row.fr if lang == "fr" else row.en
