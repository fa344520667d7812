"""The residents' pages as the server renders them: languages, login, CSRF, forms, assets.

What the pages' scripts do (device key, signing, checking a receipt) is tested in a real
browser in `test_browser.py`; here every page is read as HTML from the TestClient.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from jinja2.ext import babel_extract

from ledger.canonical import b64
from tests.conftest import OPERATORS, PASSWORD, Clock
from tests.people import Person, fund, join, new_client, operator
from web.i18n import translations

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "web" / "locale" / "fr" / "LC_MESSAGES"
HTML = {"Accept": "text/html"}
ANONYMOUS_PAGES = ("/", "/join", "/login")
MEMBER_PAGES = ("/wallet", "/send", "/keys")
FR = translations("fr")
BAD_ROLE = (
    "This role cannot be chosen here: one joins as a resident or as a merchant with a trade; "
    "an operator works at the exchange office, as treasurer or as admin."
)


def french(msgid: str) -> str:
    """The French of a message, insisting it has one (a missing one would pass silently)."""
    text = FR.gettext(msgid)
    assert text != msgid or msgid in ("Reconversion", "Correction", "Date"), msgid
    return text


def node_of(site: TestClient) -> Any:
    return site.app.state.node  # type: ignore[attr-defined]


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def form_token(client: TestClient, path: str) -> str:
    """Open a form page as a browser would (it sets the CSRF cookie) and read its token."""
    answer = client.get(path, headers=HTML)
    assert answer.status_code == 200, answer.text
    return csrf_in(answer.text)


def flash_of(html: str) -> str:
    found = re.search(r'<p class="flash error"[^>]*>([^<]*)</p>', html)
    assert found, "no refusal shown"
    return found.group(1)


def sign_up(client: TestClient, **fields: str) -> Any:
    body = {
        "display_name": "Camille Dupont",
        "email": "camille@village.test",
        "password": PASSWORD,
        "role": "resident",
        **fields,
    }
    body["csrf"] = form_token(client, "/join")
    return client.post("/join", data=body, headers=HTML, follow_redirects=False)


# -- the catalogues --------------------------------------------------------------------------

# Python files whose refusals and labels are msgids, and the templates, covered by core.po
# and wallet.po.
PYTHON_SOURCES = (
    "web/refusals.py",
    "web/pages.py",
    "members/errors.py",
    "members/access.py",
    "members/service.py",
    "members/endpoints.py",
    "members/pages.py",
    "wallet_api/errors.py",
    "wallet_api/service.py",
    "wallet_api/endpoints.py",
    "wallet_api/pages.py",
    "wallet_api/office/errors.py",
    "merchants/errors.py",
    "pos/errors.py",
    "pos/pages.py",
    "pos/codes/errors.py",
    "pos/codes/pages.py",
    "pos/scanning.py",
    "pos/scanning_errors.py",
)
TEMPLATES = ("base.html", "error.html", "home.html", "wallet/*.html", "pos/*.html")


def python_msgids(path: Path) -> set[str]:
    """The English messages of a module: Refusal(...) and NamedRefusal(...) texts and the
    *MESSAGES/*REASONS/*LABELS tables (and `messages` dicts) that hold msgids."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        called = isinstance(node, ast.Call) and getattr(node.func, "id", None)
        refusal = called in ("Refusal", "NamedRefusal")
        if refusal and len(node.args) >= 3 and isinstance(node.args[2], ast.Constant):
            found.add(node.args[2].value)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any(n.endswith(("MESSAGES", "REASONS", "LABELS")) or n == "messages" for n in names):
                found |= {v.value for v in node.value.values if isinstance(v, ast.Constant)}
    return found


def template_msgids(path: Path) -> set[str]:
    options = {"extensions": "jinja2.ext.i18n"}
    with path.open("rb") as source:
        found = babel_extract(source, ("_", "gettext", "ngettext"), [], options)
        return {m[2] for m in found if isinstance(m[2], str)}


def french_catalogue() -> dict[str, str]:
    merged: dict[str, str] = {}
    for part in sorted(LOCALE.glob("*.po")):
        with part.open("rb") as po:
            merged |= {str(m.id): str(m.string) for m in read_po(po) if m.id}
    return merged


def test_every_message_of_the_core_and_the_pages_has_its_french() -> None:
    msgids: set[str] = set()
    for name in PYTHON_SOURCES:
        msgids |= python_msgids(ROOT / name)
    for pattern in TEMPLATES:
        for path in (ROOT / "web" / "templates").glob(pattern):
            msgids |= template_msgids(path)
    assert len(msgids) > 150  # the extraction found the messages, not nothing
    assert_all_french(msgids)


def assert_all_french(msgids: set[str]) -> None:
    """Every msgid has its French, with the same placeholders."""
    catalogue = french_catalogue()
    missing = sorted(m for m in msgids if not catalogue.get(m))
    assert not missing, missing
    placeholders = re.compile(r"\{\w+\}|%\(\w+\)s")
    for msgid in msgids:  # a lost placeholder would raise, or drop a number, at run time
        assert sorted(placeholders.findall(msgid)) == sorted(
            placeholders.findall(catalogue[msgid])
        ), msgid


# -- languages --------------------------------------------------------------------------------


def test_anonymous_pages_are_french_by_default_and_english_on_request(site: TestClient) -> None:
    for path in ANONYMOUS_PAGES:
        fr = site.get(path, headers=HTML)
        assert fr.status_code == 200 and 'lang="fr"' in fr.text, path
        assert french("Every movement is signed and kept in a verifiable log.") in fr.text
        en = site.get(path, headers={**HTML, "Accept-Language": "en-GB,en;q=0.8"})
        assert 'lang="en"' in en.text and "Every movement is signed" in en.text, path
    assert french("Join the %(currency)s") % {"currency": "SOU"} in site.get("/join").text


def test_the_language_switch_sets_a_cookie_that_later_pages_follow(site: TestClient) -> None:
    client = new_client(site)
    switched = client.get("/login?lang=en", headers=HTML)
    assert 'lang="en"' in switched.text and "sou_lang=en" in switched.headers["set-cookie"]
    assert 'lang="en"' in client.get("/", headers=HTML).text
    assert "Not a member yet?" in client.get("/login", headers=HTML).text
    back = client.get("/?lang=fr", headers=HTML)
    assert 'lang="fr"' in back.text and 'lang="fr"' in client.get("/join").text


def test_member_pages_in_french_and_in_english(site: TestClient) -> None:
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, camille, 123_456)
    paid = camille.pay(louis, 1_250, memo="Pain de campagne").json()["transfer_id"]
    node_of(site).new_sealer().seal_all()
    pages = (*MEMBER_PAGES, f"/wallet/receipts/{paid}")
    for path in pages:
        fr = camille.client.get(path, headers=HTML)
        assert fr.status_code == 200 and 'lang="fr"' in fr.text, path
        en = camille.client.get(path, headers={**HTML, "Accept-Language": "en"})
        assert en.status_code == 200 and 'lang="en"' in en.text, path
    wallet_fr = camille.client.get("/wallet").text
    assert "1\u202f222,06 SOU" in wallet_fr  # 1,234.56 - 12.50, written the French way
    assert french("Payment") in wallet_fr and "Louis" in wallet_fr
    assert "Pain de campagne" in wallet_fr and f"/wallet/receipts/{paid}" in wallet_fr
    wallet_en = camille.client.get("/wallet?lang=en").text
    assert "1,222.06 SOU" in wallet_en and "to Louis" in wallet_en
    dates = re.findall(r"<td>(\d{1,2} [a-zéû]{3,5}\.? \d{4}, \d\d:\d\d)</td>", wallet_fr)
    assert len(dates) == 2  # "3 déc. 2026, 15:04" in French, one per movement
    # English without a region is written as in Europe ("3 Dec 2026, 15:04"), the day first;
    # a reader who says en-US gets "Dec 3, 2026, 3:04 PM".
    assert re.search(r"<td>\d{1,2} [A-Z][a-z]{2,3} \d{4}, \d\d:\d\d</td>", wallet_en)
    wallet_us = camille.client.get("/wallet", headers={**HTML, "Accept-Language": "en-US"}).text
    assert re.search(r"<td>[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d\d\s[AP]M</td>", wallet_us)
    assert camille.id in wallet_fr  # the id to give to those who pay
    older = camille.client.get(f"/wallet?before={paid}", headers=HTML).text
    assert f'href="/wallet?before={paid}&amp;lang=fr"' in older  # English now, by cookie


# -- who may see what -------------------------------------------------------------------------


def test_wallet_pages_send_anonymous_visitors_to_the_login_page(site: TestClient) -> None:
    for path in (*MEMBER_PAGES, "/wallet/receipts/1", "/wallet?before=5"):
        answer = site.get(path, headers=HTML, follow_redirects=False)
        assert answer.status_code == 303, path
        target = answer.headers["location"]
        assert target.startswith("/login?next=%2F"), target
    followed = site.get("/send", headers=HTML)
    assert followed.url.path == "/login" and 'name="next" value="/send"' in followed.text


def test_operators_are_told_they_have_no_wallet(site: TestClient) -> None:
    treasurer = operator(site, "treasurer")
    for path in MEMBER_PAGES:
        answer = treasurer.client.get(path, headers=HTML)
        assert answer.status_code == 403, path
        assert french("Operators have no wallet.") in answer.text


def test_a_member_cannot_open_another_members_receipt(site: TestClient) -> None:
    camille, louis, eve = join(site, "Camille"), join(site, "Louis"), join(site, "Eve")
    fund(site, camille, 1_000)
    paid = camille.pay(louis, 100).json()["transfer_id"]
    node_of(site).new_sealer().seal_all()
    assert louis.client.get(f"/wallet/receipts/{paid}", headers=HTML).status_code == 200
    refused = eve.client.get(f"/wallet/receipts/{paid}", headers=HTML)
    assert refused.status_code == 404
    assert french("There is no such transfer.") in refused.text
    assert "leaf" not in refused.text and "checkpoint" not in refused.text


def test_a_receipt_not_sealed_yet_says_so_then_shows_the_proof(node_settings: Any) -> None:
    from node.app import create_app
    from runtime.node import open_node

    node_settings.seal_interval = 3600  # the sealer stays away until the test seals
    node = open_node(node_settings)
    with TestClient(create_app(node_settings, node), base_url="http://127.0.0.1") as site:
        camille, louis = join(site, "Camille"), join(site, "Louis")
        fund(site, camille, 1_000)  # the first batch is sealed at once, the next ones wait
        paid = camille.pay(louis, 321, memo="Œufs").json()["transfer_id"]
        waiting = camille.client.get(f"/wallet/receipts/{paid}", headers=HTML)
        assert waiting.status_code == 200 and 'id="receipt-pending"' in waiting.text
        assert '"page": "receipt-pending"' in waiting.text  # its script reloads the page
        node.new_sealer().seal_all()
        page = camille.client.get(f"/wallet/receipts/{paid}", headers=HTML)
        assert 'id="receipt-pending"' not in page.text
        receipt = page_data(page.text)
        api = camille.get(f"/api/v1/transfers/{paid}/receipt").json()
        assert receipt["leaf"] == api["leaf"] and receipt["proof"] == api["proof"]
        assert (receipt["index"], receipt["size"]) == (api["index"], api["tree_size"])
        assert receipt["checkpoint"] == api["checkpoint"]
        assert receipt["checkpoint"].startswith(node.ledger.origin + "\n")
        assert receipt["nodeKey"] == b64(node.node_key.public_key)
        assert "−3,21 SOU" in page.text and "Œufs" in page.text
        assert receipt["messages"]["verified"] == french(
            "Verified: this transfer is in the log the node signed."
        )


def page_data(html: str) -> Any:
    """The JSON a page hands its script."""
    found = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html)
    assert found is not None
    return json.loads(found.group(1))


# -- joining ----------------------------------------------------------------------------------


def test_joining_logs_in_and_lands_on_the_new_wallet(site: TestClient) -> None:
    client = new_client(site)
    answer = sign_up(client, email="Camille@Village.test")
    assert answer.status_code == 303 and answer.headers["location"] == "/wallet"
    assert "sou_session=" in answer.headers["set-cookie"]
    assert "httponly" in answer.headers["set-cookie"].lower()
    wallet = client.get("/wallet", headers=HTML)
    assert wallet.status_code == 200 and "0,00 SOU" in wallet.text
    me = client.get("/api/v1/me").json()
    assert (me["role"], me["email"], me["display_name"]) == (
        "resident",
        "camille@village.test",
        "Camille Dupont",
    )
    assert me["locale"] == "fr"


def test_joining_in_english_records_the_language(site: TestClient) -> None:
    client = new_client(site)
    client.get("/join?lang=en")
    assert sign_up(client).status_code == 303
    assert client.get("/api/v1/me").json()["locale"] == "en"


@pytest.mark.parametrize(
    ("fields", "status", "msgid"),
    [
        ({"password": "short"}, 422, "The password needs at least 10 characters."),
        ({"email": "not-an-email"}, 422, "This email address does not look right."),
        ({"display_name": "  "}, 422, "Give a name (120 characters at most)."),
        ({"role": "treasurer"}, 422, BAD_ROLE),
        (
            {"role": "merchant", "trade_name": "Fournil"},
            422,
            "Merchants give their trade name, category and address.",
        ),
        (
            {
                "role": "merchant",
                "trade_name": "Fournil",
                "category": "bakery",
                "address": "2 rue Haute",
                "siret": "1234",
            },
            422,
            "A SIRET number has 14 digits.",
        ),
    ],
)
def test_join_refusals_show_the_form_again_with_what_was_typed(
    site: TestClient, fields: dict[str, str], status: int, msgid: str
) -> None:
    client = new_client(site)
    secret = fields.get("password", "a very secret password")
    answer = sign_up(client, **{"password": secret, **fields})
    assert answer.status_code == status
    assert flash_of(answer.text) == french(msgid)
    assert secret not in answer.text  # never the password
    for name, value in fields.items():
        if name not in ("password", "role"):
            assert f'value="{value}"' in answer.text, name
    assert "sou_session" not in answer.headers.get("set-cookie", "")
    assert client.get("/wallet", follow_redirects=False).status_code == 303  # not logged in


def test_joining_twice_with_one_email_is_refused(site: TestClient) -> None:
    assert sign_up(new_client(site)).status_code == 303
    again = sign_up(new_client(site), display_name="Other")
    assert again.status_code == 409
    assert flash_of(again.text) == french("An account already uses this email address.")
    assert 'value="Other"' in again.text


def test_a_merchant_joins_with_their_trade(site: TestClient) -> None:
    client = new_client(site)
    answer = sign_up(
        client,
        role="merchant",
        display_name="Jeanne",
        email="fournil@village.test",
        trade_name="Le Fournil",
        category="bakery",
        address="2 rue Haute",
        siret="123 456 789 00012",
    )
    assert answer.status_code == 303
    me = client.get("/api/v1/me").json()
    assert me["role"] == "merchant"
    from members.models import merchants

    with node_of(site).ledger.reading() as conn:
        row = conn.execute(merchants.select().where(merchants.c.member_id == me["id"])).first()
    assert row is not None
    assert (row.trade_name, row.category, row.siret) == ("Le Fournil", "bakery", "12345678900012")
    keys = client.get("/keys", headers=HTML).text
    assert 'value="pos"' in keys  # merchants may make point-of-sale tokens


# -- logging in and out -----------------------------------------------------------------------


def log_in(client: TestClient, email: str, password: str, next: str = "") -> Any:
    token = form_token(client, "/login")
    body = {"email": email, "password": password, "csrf": token, "next": next}
    return client.post("/login", data=body, headers=HTML, follow_redirects=False)


def test_login_lands_where_asked_on_this_site_only(site: TestClient) -> None:
    camille = join(site, "Camille")
    email = camille.member["email"]
    assert log_in(new_client(site), email, PASSWORD).headers["location"] == "/wallet"
    assert log_in(new_client(site), email, PASSWORD, "/send?to=x").headers["location"] == (
        "/send?to=x"
    )
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil"):
        assert log_in(new_client(site), email, PASSWORD, elsewhere).headers["location"] == (
            "/wallet"
        )
    office_email, _ = OPERATORS["office"]
    assert log_in(new_client(site), office_email, PASSWORD).headers["location"] == "/office"


def test_wrong_passwords_then_the_wait_in_plain_words(site: TestClient, clock: Clock) -> None:
    camille = join(site, "Camille")
    email = camille.member["email"]
    attempts = node_of(site).settings.login_free_tries
    client = new_client(site)
    for _ in range(attempts):
        wrong = log_in(client, email, "not the password")
        assert wrong.status_code == 401
        assert flash_of(wrong.text) == french("Wrong email or password.")
        assert f'value="{email}"' in wrong.text and "not the password" not in wrong.text
    limited = log_in(client, email, PASSWORD)  # even the right password, for a moment
    assert limited.status_code == 429
    expected = french("Several wrong passwords in a row: wait {seconds} seconds and try again.")
    assert flash_of(limited.text) == expected.format(seconds=2)
    assert limited.headers["retry-after"] == "2"
    assert "sou_session" not in limited.headers.get("set-cookie", "")
    clock.advance(2)
    assert log_in(client, email, PASSWORD).headers["location"] == "/wallet"


def test_logout_ends_the_session(site: TestClient) -> None:
    camille = join(site, "Camille")
    client = new_client(site)
    assert log_in(client, camille.member["email"], PASSWORD).status_code == 303
    wallet = client.get("/wallet", headers=HTML)
    assert wallet.status_code == 200
    token = csrf_in(wallet.text)  # the session's token, in the header's logout form
    out = client.post("/logout", data={"csrf": token}, headers=HTML, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/"
    assert client.get("/wallet", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me").status_code == 401


# -- CSRF -------------------------------------------------------------------------------------


def test_forms_are_refused_without_their_csrf_token(site: TestClient) -> None:
    camille = join(site, "Camille")
    refused = french(
        "This form has expired or did not come from this site. Reload the page and try again."
    )
    client = new_client(site)
    form_token(client, "/join")  # the browser has its CSRF cookie, the attacker's form not
    body = {
        "display_name": "Mallory",
        "email": "mallory@village.test",
        "password": PASSWORD,
        "role": "resident",
    }
    for token in (None, "forged-token"):
        sent = body | ({"csrf": token} if token else {})
        answer = client.post("/join", data=sent, headers=HTML, follow_redirects=False)
        assert answer.status_code == 403 and refused in answer.text
        login = {"email": camille.member["email"], "password": PASSWORD}
        login |= {"csrf": token} if token else {}
        answer = client.post("/login", data=login, headers=HTML, follow_redirects=False)
        assert answer.status_code == 403 and "sou_session" not in str(answer.headers)
    assert client.get("/api/v1/me").status_code == 401
    assert sign_up(new_client(site), email="mallory@village.test").status_code == 303  # free
    # A logged-in member's logout needs the session's token too.
    for sent in ({}, {"csrf": "forged-token"}):
        kept = camille.client.post("/logout", data=sent, headers=HTML, follow_redirects=False)
        assert kept.status_code == 403 and camille.get("/api/v1/me").status_code == 200


# -- the wallet's pages -----------------------------------------------------------------------


def test_the_wallet_pages_its_history_with_older(site: TestClient) -> None:
    from wallet_api.pages import HISTORY_PAGE

    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, camille, 10_000)
    for n in range(HISTORY_PAGE):
        assert camille.pay(louis, n + 1, memo=f"n{n}").status_code == 201
    first = camille.client.get("/wallet", headers=HTML).text
    rows = re.findall(r'<tr data-transfer="(\d+)">', first)
    assert len(rows) == HISTORY_PAGE and f"n{HISTORY_PAGE - 1}" in first
    older = re.search(r'id="older" href="/wallet\?before=(\d+)"', first)
    assert older is not None and older.group(1) == rows[-1]
    second = camille.client.get(f"/wallet?before={older.group(1)}", headers=HTML).text
    last_rows = re.findall(r'<tr data-transfer="(\d+)">', second)
    assert len(last_rows) == 1 and french("Top-up") in second  # the oldest: the top-up
    assert 'id="older"' not in second and french("Older movements") in second
    bad = camille.client.get("/wallet?before=-1", headers=HTML)
    assert bad.status_code == 422


def test_a_frozen_wallet_says_why(site: TestClient) -> None:
    from members import repository
    from members.access import forget_principals

    camille = join(site, "Camille")
    assert 'class="flash error"' not in camille.client.get("/wallet", headers=HTML).text
    with node_of(site).engine.begin() as conn:
        repository.update_member(conn, camille.id, frozen_reason="card dispute dp_123")
    forget_principals(node_of(site))  # as the node does when it freezes a wallet itself
    page = camille.client.get("/wallet", headers=HTML).text
    expected = french("Your wallet is frozen: {reason}").format(reason="card dispute dp_123")
    assert flash_of(page) == expected


def test_send_page_carries_what_the_script_needs(site: TestClient) -> None:
    camille = join(site, "Camille")
    page = camille.client.get("/send?to=member:louis-ab12", headers=HTML).text
    assert 'value="louis-ab12"' in page
    sent = page_data(page)
    assert sent["member"] == camille.id and sent["currency"] == "SOU"
    assert (sent["decimal"], sent["maxAmount"]) == (",", node_of(site).settings.max_amount)
    assert sent["messages"]["decimals"] == french(
        "At most two decimals: the smallest amount is one cent."
    )


def test_keys_page_lists_devices_and_tokens(site: TestClient) -> None:
    camille = join(site, "Camille")
    camille.add_key("tablet")
    first = camille.get("/api/v1/me/keys").json()[0]["key_id"]
    assert camille.delete(f"/api/v1/me/keys/{first}").status_code == 204
    made = camille.post("/api/v1/me/tokens", json={"scope": "wallet", "label": "Agenda"}).json()
    page = camille.client.get("/keys", headers=HTML).text
    assert f'data-key-id="{first}" data-revoked="yes"' in page
    assert page.count('data-revoke-key="') == 1 and "tablet" in page
    assert "Agenda" in page and f'data-revoke-token="{made["id"]}"' in page
    assert made["token"] not in page  # shown once, at creation only
    assert 'value="pos"' not in page  # residents have no point-of-sale token


# -- assets -----------------------------------------------------------------------------------

LINK = re.compile(r'\b(?:src|href|action)="([^"]*)"')


def test_no_page_loads_anything_from_elsewhere(site: TestClient) -> None:
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, camille, 500)
    paid = camille.pay(louis, 100).json()["transfer_id"]
    node_of(site).new_sealer().seal_all()
    pages: list[tuple[Person | None, str]] = [(None, p) for p in ANONYMOUS_PAGES]
    pages += [(camille, p) for p in (*MEMBER_PAGES, f"/wallet/receipts/{paid}")]
    pages += [(None, "/nowhere")]
    for who, path in pages:
        client = who.client if who else site
        html = client.get(path, headers=HTML).text
        links = LINK.findall(html)
        assert links, path
        for link in links:
            assert not re.match(r"(?i)^(https?:)?//", link), (path, link)
        assert "<script>" not in html  # no inline code: data blocks only
        for script in re.findall(r'<script src="([^"]+)"', html):
            assert client.get(script).status_code == 200, script


def test_each_refusal_code_has_one_status_and_one_message_across_the_node() -> None:
    """Every slice declares its refusals in its errors.py, the ledger's are answered through
    one table: a code a client may see from two places (`bad_amount` from the office and
    from reconversions) means one thing, said once."""
    import importlib
    import pkgutil

    from web.refusals import LEDGER_MESSAGES, LEDGER_STATUS, NamedRefusal

    said: dict[str, set[tuple[int, str]]] = {
        code: {(LEDGER_STATUS.get(code, 422), message)} for code, message in LEDGER_MESSAGES.items()
    }
    for package in ("members", "wallet_api", "merchants", "pos"):
        root = importlib.import_module(package)
        for found in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not found.name.endswith((".errors", "_errors")):
                continue
            for value in vars(importlib.import_module(found.name)).values():
                if isinstance(value, NamedRefusal):
                    said.setdefault(value.code, set()).add((value.status, value.message))
    assert len(said) > 40  # the errors.py files were found
    twice = {code: sorted(ways) for code, ways in said.items() if len(ways) > 1}
    assert not twice, twice
