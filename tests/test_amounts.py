"""Amounts typed in the node's forms, as the server reads them (`parse_euros`): the table
the pages' script is held to as well (tests/typed_amounts.py, tests/test_amounts_browser.py),
and every amount the node writes reads back as itself.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.people import join, operator
from tests.test_office import _form_page, reading, state
from tests.typed_amounts import GROUP, LANGUAGES, LARGEST, TYPED, Typed, expected
from web.i18n import money
from web.pages import parse_euros
from web.refusals import Refusal


def read(text: str, unit: str, lang: str) -> int | None:
    try:
        return parse_euros(text, unit, GROUP[lang])
    except Refusal as refusal:
        assert refusal.status == 422 and refusal.code == "bad_euros", text
        return None


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("row", TYPED, ids=repr)
def test_the_server_reads_what_people_type(row: Typed, lang: str) -> None:
    assert read(row.text, row.unit, lang) == expected(row, lang)


@given(
    cents=st.integers(min_value=0, max_value=LARGEST),
    lang=st.sampled_from(LANGUAGES),
    currency=st.sampled_from(["SOU", "EUR", ""]),
)
def test_every_amount_the_node_writes_reads_back(cents: int, lang: str, currency: str) -> None:
    """What `money` writes (the pages' `page_money`: "1 234,50 SOU", "1,234.50 EUR"),
    typed back in a form of the same language, is the same amount."""
    assert read(money(cents, lang, currency), "SOU", lang) == cents


@pytest.mark.one_database
def test_the_office_form_reads_amounts_the_pages_way(site) -> None:
    """The page's language and the node's unit reach the form's reading: an English page
    groups thousands with commas; "12 50" is refused and nothing is written."""
    office, member = operator(site, "office"), join(site, "Camille")
    _page, ids = _form_page(office, "/office")
    fields = {"csrf": office.csrf, "action": "cash-in", "member": member.member["email"]}
    english = reading(office, "en")
    done = english.post(
        "/office", data={**fields, "id": ids["cash-in-form"], "amount": "1,250.50 sou"}
    )
    assert done.status_code == 200, done.text
    assert member.balance() == 125_050
    before = state(site)
    for typed in ("12 50", "1,250.50 USD"):
        refused = english.post("/office", data={**fields, "id": str(uuid.uuid4()), "amount": typed})
        assert refused.status_code == 422 and "at most 2 decimals" in refused.text, typed
    french = reading(office, "fr").post(
        "/office", data={**fields, "id": str(uuid.uuid4()), "amount": "1,250"}
    )
    assert french.status_code == 422  # three decimals in French, not one thousand
    assert state(site) == before
