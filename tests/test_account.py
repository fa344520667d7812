"""One's account: changing the password, the sessions open and their end (asked, or after
the idle time), and a forgotten password reset by a one-time link, mailed through a real
SMTP server (tests/smtp_server.py) or made at an exchange office."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from members import access
from members.account import service
from members.models import sessions
from runtime import mail
from tests.conftest import PASSWORD
from tests.people import Person, join, new_client, operator
from tests.smtp_server import (  # noqa: F401
    Login,
    SmtpServer,
    link_in,
    mail_settings,
    smtp_server,
    smtp_server_with_login,
)
from tests.test_counter_devices import _paired
from tests.test_pages import french, python_msgids, template_msgids
from tests.test_qr import read as read_qr
from web.qr import qr_png, qr_svg

NEW_PASSWORD = "une autre phrase secrète"
HTML = {"Accept": "text/html"}
PHONE = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36"
LAPTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


@pytest.fixture
def mailing_site(node_settings: Any, smtp_server: SmtpServer) -> Iterator[TestClient]:  # noqa: F811
    """The app of a node that sends mail through `smtp_server`."""
    from node.app import create_app
    from runtime.node import open_node

    settings = mail_settings(node_settings, smtp_server)
    opened = open_node(settings)
    try:
        with TestClient(create_app(settings, opened), base_url="http://127.0.0.1") as client:
            yield client
    finally:
        opened.close()


class Clock:
    """The members' clock, moved by the test: sessions and links age without waiting."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, node: Any) -> None:
        self.node, self.now = node, access.now_ms()
        monkeypatch.setattr(access, "now_ms", lambda: self.now)
        monkeypatch.setattr(service, "now_ms", lambda: self.now)

    def advance(self, minutes: float) -> None:
        self.now += int(minutes * 60_000)
        access.forget_principals(self.node)  # the next request looks the session up


def node_of(site: TestClient) -> Any:
    return site.app.state.node  # type: ignore[attr-defined]


def me(person: Person) -> int:
    return int(person.get("/api/v1/me").status_code)


def second_login(site: TestClient, person: Person, agent: str = LAPTOP) -> Person:
    """The same member logged in from another browser."""
    client = new_client(site)
    client.headers["User-Agent"] = agent
    other = Person(client, person.member).log_in()
    assert me(other) == 200  # its first use notes the browser
    return other


def logs_in(site: TestClient, person: Person, password: str) -> bool:
    """Whether the password opens the person's account (from a new browser)."""
    answer = new_client(site).post(
        "/api/v1/session", json={"email": person.member["email"], "password": password}
    )
    return answer.status_code == 200


def reset_token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def office_link(site: TestClient, member: Person) -> str:
    office = operator(site, "office")
    made = office.post(f"/api/v1/members/{member.id}/password-reset-links")
    assert made.status_code == 201, made.text
    return str(made.json()["url"])


# -- a link by mail ----------------------------------------------------------------------------


def test_a_forgotten_password_is_reset_by_a_link_mailed_in_the_members_language(
    mailing_site: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    camille = join(mailing_site, "Camille")
    elsewhere = second_login(mailing_site, camille)
    asked = new_client(mailing_site).post(
        "/api/v1/password-resets", json={"email": camille.member["email"].upper()}
    )
    assert asked.status_code == 202, asked.text
    (message,) = smtp_server.wait_for(1)
    assert message["To"] == camille.member["email"]
    assert message["Subject"] == french("Reset your password for {village}").format(
        village=node_of(mailing_site).settings.village
    )
    link = link_in(message, "http://127.0.0.1")
    assert "Bonjour Camille" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    phone = new_client(mailing_site)
    opened = phone.get(link, headers=HTML)
    assert opened.status_code == 200 and 'id="reset-form"' in opened.text
    assert opened.headers["Referrer-Policy"] == "no-referrer"
    used = phone.post(
        f"/api/v1/password-resets/{reset_token(link)}", json={"password": NEW_PASSWORD}
    )
    assert used.status_code == 200, used.text
    assert phone.get("/api/v1/me").json()["id"] == camille.id  # logged in there
    assert me(camille) == 401 and me(elsewhere) == 401  # every other session ended
    again = new_client(mailing_site).post(
        f"/api/v1/password-resets/{reset_token(link)}", json={"password": PASSWORD}
    )
    assert (again.status_code, again.json()["error"]) == (409, "reset_link_used")
    old = new_client(mailing_site).post(
        "/api/v1/session", json={"email": camille.member["email"], "password": PASSWORD}
    )
    assert old.status_code == 401
    camille.log_in(NEW_PASSWORD)
    assert me(camille) == 200


def test_an_unknown_email_gets_the_same_answer_and_no_message(
    mailing_site: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    lea = join(mailing_site, "Léa")
    visitor = new_client(mailing_site)
    unknown = visitor.post("/api/v1/password-resets", json={"email": "personne@village.test"})
    known = visitor.post("/api/v1/password-resets", json={"email": lea.member["email"]})
    assert (unknown.status_code, unknown.content) == (known.status_code, known.content)
    # Messages leave in the order asked: had the unknown email sent one, it would be first.
    (first,) = smtp_server.wait_for(1)
    assert first["To"] == lea.member["email"]
    page = visitor.post(
        "/password/forgot",
        data={"email": "personne@village.test", "csrf": "x"},
        headers={**HTML, "X-CSRF-Token": "x", "Cookie": "sou_csrf=x"},
        follow_redirects=False,
    )
    assert (page.status_code, page.headers["location"]) == (303, "/password/forgot?sent=1")


def test_links_asked_for_one_email_are_limited(
    mailing_site: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    lea = join(mailing_site, "Léa")
    visitor = new_client(mailing_site)
    for _ in range(service.RESETS_PER_EMAIL):
        asked = visitor.post("/api/v1/password-resets", json={"email": lea.member["email"]})
        assert asked.status_code == 202
    refused = visitor.post("/api/v1/password-resets", json={"email": lea.member["email"]})
    assert (refused.status_code, refused.json()["error"]) == (429, "too_many_resets")
    smtp_server.wait_for(service.RESETS_PER_EMAIL)
    # Each new link withdraws the one before: only the last one works.
    links = [link_in(m, "http://127.0.0.1") for m in smtp_server.to(lea.member["email"])]
    phone = new_client(mailing_site)
    first = phone.post(
        f"/api/v1/password-resets/{reset_token(links[0])}", json={"password": NEW_PASSWORD}
    )
    assert (first.status_code, first.json()["error"]) == (409, "reset_link_used")
    last = phone.post(
        f"/api/v1/password-resets/{reset_token(links[-1])}", json={"password": NEW_PASSWORD}
    )
    assert last.status_code == 200, last.text


# A local server, plain SMTP: aiosmtpd warns that AUTH without TLS could be overheard.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_the_node_logs_in_to_the_mail_server_with_the_password_of_a_file(
    node_settings: Any,
    tmp_path: Path,
    smtp_server_with_login: tuple[SmtpServer, Login],  # noqa: F811
) -> None:
    server, login = smtp_server_with_login
    secret = tmp_path / "smtp-password"
    secret.write_text("mot de passe smtp\n")
    settings = mail_settings(node_settings, server).model_copy(
        update={
            "smtp_user": "sou",
            "smtp_password": "not this one",
            "smtp_password_file": str(secret),
        }
    )
    message = mail.letter(settings, to="camille@village.test", subject="Essai", body="Bonjour")
    mail.send_later(settings, message, "test").result(timeout=20)
    (received,) = server.wait_for(1)
    assert login.given == [("sou", "mot de passe smtp")]
    assert received["From"] == f"sou@{server.host}" and received["Subject"] == "Essai"
    assert "mot de passe" not in repr(settings) and "not this one" not in repr(settings)


# -- a link made at the exchange office --------------------------------------------------------


def test_without_mail_the_office_makes_the_link_for_the_member_seen_in_person(
    site: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    camille = join(site, "Camille")
    visitor = new_client(site)
    refused = visitor.post("/api/v1/password-resets", json={"email": camille.member["email"]})
    assert (refused.status_code, refused.json()["error"]) == (409, "resets_at_office")
    page = visitor.get("/password/forgot", headers={**HTML, "Accept-Language": "fr"})
    assert 'id="forgot-form"' not in page.text and "<li>mairie</li>" in page.text
    assert french("Forgotten password") in page.text

    office = operator(site, "office")
    shown = office.client.post(
        "/account/reset-links",
        data={"member": camille.id, "csrf": office.csrf},
        headers={**HTML, "Accept-Language": "fr"},
    )
    assert shown.status_code == 200, shown.text
    url = re.search(r'<code id="reset-url">([^<]+)</code>', shown.text)
    picture = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', shown.text)
    assert url and picture
    assert base64.b64decode(picture[1]).decode() == qr_svg(url[1])  # the phone scans the link
    found = read_qr(qr_png(url[1]))
    assert [f.text for f in found] == [url[1]]
    clock = Clock(monkeypatch, node_of(site))
    clock.advance(service.RESET_MINUTES + 1)
    late = visitor.post(
        f"/api/v1/password-resets/{reset_token(url[1])}", json={"password": NEW_PASSWORD}
    )
    assert (late.status_code, late.json()["error"]) == (410, "reset_link_expired")
    assert me(camille) == 200  # nothing changed


def test_a_nul_character_in_a_form_is_refused_in_plain_words(site: TestClient) -> None:
    """PostgreSQL refuses a statement with a NUL in its text: the page says the field is not
    valid (a 422), rather than failing."""
    admin = operator(site, "admin")
    refused = admin.client.post(
        "/account/reset-links",
        data={"member": "camille\x00", "csrf": admin.csrf},
        headers={**HTML, "Accept-Language": "fr"},
    )
    assert refused.status_code == 422, refused.text
    assert "n’est pas valide" in refused.text and 'id="reset-url"' not in refused.text


def test_an_office_does_not_reset_an_operators_password_an_admin_does(site: TestClient) -> None:
    office, admin = operator(site, "office"), operator(site, "admin")
    treasurer = operator(site, "treasurer")
    refused = office.post(f"/api/v1/members/{treasurer.id}/password-reset-links")
    assert (refused.status_code, refused.json()["error"]) == (403, "operator_reset")
    on_page = office.client.post(
        "/account/reset-links",
        data={"member": treasurer.id, "csrf": office.csrf},
        headers={**HTML, "Accept-Language": "fr"},
    )
    assert on_page.status_code == 403 and 'id="reset-url"' not in on_page.text
    assert french("An operator's password is reset by an admin, not at an exchange office.") in (
        on_page.text.replace("&#39;", "'")
    )
    made = admin.post(f"/api/v1/members/{treasurer.id}/password-reset-links")
    assert made.status_code == 201, made.text
    used = new_client(site).post(
        f"/api/v1/password-resets/{reset_token(made.json()['url'])}",
        json={"password": NEW_PASSWORD},
    )
    assert used.status_code == 200 and used.json()["member"]["role"] == "treasurer"
    assert me(treasurer) == 401


def test_two_uses_of_one_link_at_once_set_one_password(site: TestClient) -> None:
    camille = join(site, "Camille")
    token = reset_token(office_link(site, camille))
    node, start = node_of(site), threading.Barrier(2)
    results: list[str] = []

    def use(password: str) -> None:
        start.wait()
        try:
            service.reset_password(node, token, password)
            results.append(f"set {password}")
        except Exception as exc:  # the refusal of the one that came second
            results.append(getattr(exc, "code", repr(exc)))

    threads = [threading.Thread(target=use, args=(p,)) for p in (NEW_PASSWORD, "troisième phrase")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if r.startswith("set ")]
    assert len(winners) == 1 and results.count("reset_link_used") == 1, results
    camille.log_in(winners[0].removeprefix("set "))


# -- changing the password -----------------------------------------------------------------------


def test_a_wrong_current_password_changes_nothing(site: TestClient) -> None:
    camille = join(site, "Camille")
    other = second_login(site, camille)
    wrong = camille.post(
        "/api/v1/me/password", json={"current_password": "pas le bon", "new_password": NEW_PASSWORD}
    )
    assert (wrong.status_code, wrong.json()["error"]) == (403, "wrong_password")
    weak = camille.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "court"}
    )
    assert (weak.status_code, weak.json()["error"]) == (422, "weak_password")
    assert me(other) == 200 and logs_in(site, camille, PASSWORD)


def test_changing_the_password_ends_the_other_sessions_not_this_one_nor_the_till(
    site: TestClient,
) -> None:
    from tests.test_pos import _shop

    merchant = _shop(site, "Léon")
    till = _paired(site, merchant)
    other = second_login(site, merchant)
    changed = merchant.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"ended_sessions": 1}
    assert me(merchant) == 200 and me(other) == 401
    assert till.get("/api/v1/pos/payments").status_code == 200  # the shop's till stays
    assert logs_in(site, merchant, NEW_PASSWORD) and not logs_in(site, merchant, PASSWORD)


def test_guessing_the_current_password_ends_the_session(site: TestClient) -> None:
    camille = join(site, "Camille")
    guess = {"current_password": "devine", "new_password": NEW_PASSWORD}
    for _ in range(service.WRONG_PASSWORDS - 1):
        assert camille.post("/api/v1/me/password", json=guess).status_code == 403
    last = camille.post("/api/v1/me/password", json=guess)
    assert (last.status_code, last.json()["error"]) == (401, "too_many_wrong_passwords")
    assert me(camille) == 401
    camille.log_in(PASSWORD)  # unchanged; the login's own limits apply from here


def test_a_token_may_not_change_the_password(site: TestClient) -> None:
    camille = join(site, "Camille")
    token = camille.post("/api/v1/me/tokens", json={"scope": "wallet", "label": "script"}).json()
    changed = new_client(site).post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={"Authorization": f"Bearer {token['token']}"},
    )
    assert (changed.status_code, changed.json()["error"]) == (403, "token_scope")


# -- sessions ----------------------------------------------------------------------------------


def test_the_sessions_are_listed_and_ended_one_or_all_others(site: TestClient) -> None:
    camille = second_login(site, join(site, "Camille"), PHONE)
    camille.delete("/api/v1/me/sessions")  # the one of joining
    laptop = second_login(site, camille, LAPTOP)
    third = second_login(site, camille, "curl/8.5")
    listed = camille.get("/api/v1/me/sessions").json()
    assert len(listed) == 3
    mine = [s for s in listed if s["current"]]
    assert len(mine) == 1 and mine[0]["device"] == "Chrome, Android"
    shown = {s["device"] for s in listed}
    assert shown == {"Chrome, Android", "Firefox, Linux", None}
    of_laptop = next(s for s in listed if s["device"] == "Firefox, Linux")
    assert camille.delete(f"/api/v1/me/sessions/{of_laptop['id']}").status_code == 204
    assert me(laptop) == 401 and me(third) == 200
    again = camille.delete(f"/api/v1/me/sessions/{of_laptop['id']}")
    assert (again.status_code, again.json()["error"]) == (404, "unknown_session")
    lea = join(site, "Léa")
    theirs = lea.delete(f"/api/v1/me/sessions/{mine[0]['id']}")  # not Léa's session
    assert theirs.status_code == 404 and me(camille) == 200
    ended = camille.delete("/api/v1/me/sessions")
    assert ended.json() == {"ended_sessions": 1}
    assert me(third) == 401 and me(camille) == 200


def test_the_account_page_changes_the_password_and_ends_sessions(site: TestClient) -> None:
    camille = join(site, "Camille")
    other = second_login(site, camille)
    page = camille.client.get("/account", headers={**HTML, "Accept-Language": "fr"})
    assert page.status_code == 200 and french("My account") in page.text
    assert page.text.count("data-session=") == 2 and 'data-current="yes"' in page.text
    form = {"csrf": camille.csrf, "current_password": PASSWORD}
    differ = camille.client.post(
        "/account/password",
        data={**form, "new_password": NEW_PASSWORD, "new_password_again": "autre chose"},
        headers=HTML,
    )
    assert differ.status_code == 422 and me(other) == 200
    done = camille.client.post(
        "/account/password",
        data={**form, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD},
        headers=HTML,
        follow_redirects=False,
    )
    assert (done.status_code, done.headers["location"]) == (303, "/account?changed=1")
    assert me(other) == 401 and me(camille) == 200


def test_a_session_unused_for_the_idle_time_ends_and_one_in_use_goes_on(
    site: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = node_of(site)
    idle = node.settings.session_idle_minutes
    camille = join(site, "Camille")
    dormant = second_login(site, camille)
    clock = Clock(monkeypatch, node)

    def last_seen(person: Person) -> int:
        hashed = access.token_hash(person.client.cookies["sou_session"])
        with node.ledger.reading() as conn:
            query = select(sessions.c.last_seen_ms).where(sessions.c.token_hash == hashed)
            return int(conn.scalar(query))

    first = last_seen(camille)
    clock.advance(1)
    assert me(camille) == 200
    assert last_seen(camille) == first  # used a minute later: nothing written
    clock.advance(idle * 0.6)
    assert me(camille) == 200 and last_seen(camille) == clock.now  # written, once stale
    clock.advance(idle * 0.6)  # past the idle time since it opened, not since its last use
    assert me(camille) == 200
    assert me(dormant) == 401
    assert camille.get("/api/v1/me/sessions").json()[0]["current"] is True
    assert len(camille.get("/api/v1/me/sessions").json()) == 1  # the dormant one is not listed


def test_the_idle_time_ends_the_merchants_session_not_the_shops_till(
    site: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_pos import _shop

    merchant = _shop(site, "Léon")
    till = _paired(site, merchant)
    clock = Clock(monkeypatch, node_of(site))
    clock.advance(node_of(site).settings.session_idle_minutes + 1)
    assert me(merchant) == 401
    assert till.get("/api/v1/pos/payments").status_code == 200  # a shop shut for a week


def test_the_hourly_job_forgets_what_counts_no_more(
    site: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from members.account.models import password_resets
    from members.models import login_failures
    from members.service import forget_old_logins

    node = node_of(site)
    camille, lea = join(site, "Camille"), join(site, "Léa")
    office_link(site, camille)
    guess = {"current_password": "devine", "new_password": NEW_PASSWORD}
    assert camille.post("/api/v1/me/password", json=guess).status_code == 403
    clock = Clock(monkeypatch, node)
    clock.advance(node.settings.session_idle_minutes - 10)
    assert me(lea) == 200  # Léa's session is used; Camille's is left idle
    clock.advance(20)
    service.forget_old_links_and_sessions(node, clock.now)
    clock.advance(24 * 60)  # the wrong current password counts for a day
    forget_old_logins(node, clock.now)

    def count(table: Any, member_id: str | None = None) -> int:
        query = select(table)
        if member_id is not None:
            query = query.where(table.c.member_id == member_id)
        with node.ledger.reading() as conn:
            return len(list(conn.execute(query)))

    assert count(login_failures) == 0 and count(password_resets) == 0
    assert count(sessions, camille.id) == 0 and count(sessions, lea.id) == 1


def test_every_message_of_the_account_has_its_french() -> None:
    from tests.test_pages import ROOT, assert_all_french

    msgids: set[str] = set()
    for path in (ROOT / "members" / "account").glob("*.py"):
        msgids |= python_msgids(path)
    for path in (ROOT / "web" / "templates" / "account").glob("*.html"):
        msgids |= template_msgids(path)
    msgids |= {"My account", "Forgot your password?", "Reset your password for {village}"}
    assert len(msgids) > 40
    assert_all_french(msgids)
