"""The pages are fuzzed as the API is (schemathesis sees only the OpenAPI, and pages are not
in it): every page route the app serves, as an anonymous visitor and as each signed-in role,
gets generated path values (huge and negative numbers, any script, very long text,
percent-encoded junk), queries and, for forms, random fields with the right CSRF token so
that they reach the handler. No answer may be a 5xx: junk gets a 4xx or the page again.
Each caller sends theirs in a test of their own (on a node where all of them exist), so that
the cores of a run (pytest-xdist) share the callers.

The default run is short (`SOU_PAGE_FUZZ_EXAMPLES` examples per route and caller); a deep
run: `SOU_PAGE_FUZZ_EXAMPLES=100 .venv/bin/python -m pytest tests/test_pages_fuzz.py -q`.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.people import Person, join, operator

EXAMPLES = int(os.environ.get("SOU_PAGE_FUZZ_EXAMPLES", "2"))
SKIPPED = ("/api/", "/static", "/openapi.json", "/docs", "/redoc", "/stripe/")
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
ANONYMOUS_CSRF = "anonymous-csrf"
CALLERS = ("anonymous", "resident", "merchant", "office", "treasurer", "admin")

HUGE = [2**53, 2**53 + 1, 2**63, 2**64, 10**30, -1, 0, -(2**63)]
JUNK = ["%00", "%ff%fe", "%2e%2e", "%2F", "%25", "%u202e", "%C0%AF", "%"]
# Values a path segment, a query or a form field gets: numbers out of every range, text in
# any script (bidi and zero-width characters included), very long text, junk escapes.
VALUE = st.one_of(
    st.sampled_from(HUGE).map(str),
    st.integers().map(str),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), min_size=300, max_size=5_000),
    st.sampled_from(["", " ", "0", "1", "١٢٣", "²", "1e9", "1.5", "pay \u202e0001 SOU", "\u200b"]),
)
RAW_SEGMENT = st.one_of(st.sampled_from(JUNK), st.lists(st.sampled_from(JUNK)).map("".join))


def _page_routes(site: TestClient) -> list[tuple[str, str, list[str]]]:
    """(method, path, the names of its query and form fields) of every page route; the
    log-out routes last, so that the sessions they end serve the other routes first."""
    routes = []
    for route in iter_route_contexts(site.app.routes):  # type: ignore[attr-defined]
        path = route.path or ""
        if not path or path.startswith(SKIPPED):
            continue
        dependant = getattr(route, "dependant", None)
        names = sorted(_field_names(dependant)) if dependant is not None else []
        for method in sorted((route.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, path, names))
    return sorted(routes, key=lambda r: ("logout" in r[1] or "log-out" in r[1], r[1], r[0]))


def _field_names(dependant: Any) -> set[str]:
    names = {f.alias for f in (*dependant.query_params, *dependant.body_params)}
    for sub in dependant.dependencies:
        names |= _field_names(sub)
    return names


def _segment(value: str, raw: str | None) -> str:
    return raw if raw is not None else quote(value, safe="") or "x"


class Caller:
    """Someone sending the requests: their session cookie and CSRF token, or none."""

    def __init__(self, name: str, person: Person | None) -> None:
        self.name, self.person = name, person

    def headers(self, html: bool) -> dict[str, str]:
        accept = {"Accept": "text/html" if html else "application/json"}
        if self.person is None:
            cookie = f"sou_csrf={ANONYMOUS_CSRF}"
            return {"Cookie": cookie, "X-CSRF-Token": ANONYMOUS_CSRF, **accept}
        session = self.person.client.cookies.get("sou_session")
        cookie = f"sou_session={session}"
        return {"Cookie": cookie, "X-CSRF-Token": self.person.csrf, **accept}


def _callers(site: TestClient) -> list[Caller]:
    people: dict[str, Person | None] = {"anonymous": None}
    people["resident"] = join(site, "Resident")
    people["merchant"] = join(site, "Marchand", "merchant")
    for role in ("office", "treasurer", "admin"):
        people[role] = operator(site, role)
    assert tuple(people) == CALLERS
    return [Caller(name, person) for name, person in people.items()]


@pytest.mark.parametrize("name", CALLERS)
def test_no_page_answers_a_server_error(site: TestClient, name: str) -> None:
    client = TestClient(site.app, base_url=str(site.base_url), raise_server_exceptions=False)
    (caller,) = [caller for caller in _callers(site) if caller.name == name]
    for method, path, names in _page_routes(site):
        _edges(client, caller, method, path, names)
        _fuzz(client, caller, method, path, names)


def _edges(client: TestClient, caller: Caller, method: str, path: str, names: list[str]) -> None:
    """Every route, whatever the number of examples: each out-of-range number in each of
    its path values, then in all its query or form fields at once."""
    for n, edge in enumerate([str(2**53 + 1), str(2**63), "-1", "0", "9" * 5_000, "²"]):
        url = PARAM.sub(edge, path)
        _send(client, caller, method, url, dict.fromkeys(names, edge), html=n % 2 == 0)


def _send(client: TestClient, caller: Caller, method: str, url: str, sent: Any, html: bool) -> None:
    client.cookies.clear()
    headers = caller.headers(html)
    if method == "GET":
        answer = client.get(url, params=sent, headers=headers, follow_redirects=False)
    else:
        answer = client.request(method, url, data=sent, headers=headers, follow_redirects=False)
    assert answer.status_code < 500, (
        f"{caller.name} {method} {url[:200]} {repr(sent)[:300]} -> {answer.status_code}"
    )


def _fuzz(client: TestClient, caller: Caller, method: str, path: str, names: list[str]) -> None:
    params = PARAM.findall(path)
    fields = st.dictionaries(st.sampled_from(names) if names else VALUE, VALUE, max_size=6)
    fields = st.one_of(fields, st.dictionaries(VALUE, VALUE, max_size=3)) if names else fields

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        values=st.fixed_dictionaries({p: VALUE for p in params}),
        raw=st.fixed_dictionaries({p: st.none() | RAW_SEGMENT for p in params}),
        sent=fields,
        html=st.booleans(),
    )
    def one(values: dict[str, str], raw: dict[str, str | None], sent: Any, html: bool) -> None:
        url = PARAM.sub(lambda m: _segment(values[m[1]], raw[m[1]]), path)
        _send(client, caller, method, url, sent, html)

    one()
