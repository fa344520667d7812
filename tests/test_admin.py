"""The association's administration, through the API and the pages as admins and office
operators use them: finding members, renewing memberships, making operators, and the
operator-assisted recovery of a lost phone's keys (SQLite and PostgreSQL)."""

from __future__ import annotations

import ast
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.canonical import b64
from ledger.signing import SigningKey
from members import repository as members_repo
from tests.conftest import PASSWORD
from tests.people import Person, fund, join, new_client, operator
from tests.test_pages import (
    french_catalogue,
    python_msgids,
    template_msgids,
)
from tests.test_wallet_api import books, send, signed
from web.i18n import translations

ROOT = Path(__file__).resolve().parent.parent
HTML = {"Accept": "text/html"}
FR = translations("fr")
BAD_ROLE = (
    "This role cannot be chosen here: one joins as a resident or as a merchant with a trade; "
    "an operator works at the exchange office, as treasurer or as admin."
)


def french(msgid: str) -> str:
    text = FR.gettext(msgid)
    assert text != msgid, f"no French for {msgid!r}"
    return text


def node_of(site: TestClient) -> Any:
    return site.app.state.node  # type: ignore[attr-defined]


def villagers(site: TestClient, *names: str) -> list[str]:
    """Members recorded straight in the database (no password: they only need to be found);
    their ids, in the order given."""
    ids = []
    with node_of(site).engine.begin() as conn:
        for number, name in enumerate(names):
            member_id = f"v{number:03d}-{re.sub(r'[^a-z]', '', name.lower())[:20]}"
            members_repo.insert_member(
                conn,
                {
                    "id": member_id,
                    "role": "resident",
                    "display_name": name,
                    "email": f"{member_id}@village.test",
                    "created_ms": 1,
                },
            )
            ids.append(member_id)
    return ids


def listed(admin: Person, **query: Any) -> dict[str, Any]:
    answer = admin.get("/api/v1/admin/members", params=query)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def names(found: dict[str, Any]) -> list[str]:
    return [item["display_name"] for item in found["items"]]


def form(person: Person, path: str, lang: str = "fr", **fields: str) -> Any:
    """A page's form sent as the browser sends it (with the session's CSRF token)."""
    return person.client.post(
        path,
        data={"csrf": person.csrf, **fields},
        headers={**HTML, "Accept-Language": lang},
        follow_redirects=False,
    )


def html(person: Person, path: str, lang: str = "fr") -> Any:
    return person.client.get(path, headers={**HTML, "Accept-Language": lang})


def flash(text: str, kind: str = "ok") -> str:
    found = re.search(rf'<p class="flash {kind}"[^>]*>([^<]*)</p>', text)
    assert found, f"no {kind} message on the page"
    return found.group(1).replace("&#39;", "'").replace("&amp;", "&")


# -- finding members (API) -----------------------------------------------------------------


def test_admin_finds_members_by_name_email_or_id_a_page_at_a_time(site: TestClient) -> None:
    admin = operator(site, "admin")
    ids = villagers(site, *(f"Martin {n:02d}" for n in range(25)), "Zoé Martinez", "100% Bio")
    everyone = listed(admin, per_page=100)
    assert everyone["total"] == 27 + 3  # and the admin, the treasurer, the office operator
    assert names(everyone)[:2] == ["100% Bio", "Admin"]  # by name, whatever the case

    first = listed(admin, q="MARTIN", per_page=10)
    assert (first["total"], first["pages"], first["page"]) == (26, 3, 1)
    assert names(first) == [f"Martin {n:02d}" for n in range(10)]
    last = listed(admin, q="martin", per_page=10, page=3)
    assert names(last) == [*(f"Martin {n:02d}" for n in range(20, 25)), "Zoé Martinez"]
    assert listed(admin, q="martin", per_page=10, page=4)["items"] == []

    assert names(listed(admin, q=f"{ids[3]}@village")) == ["Martin 03"]  # by email
    assert names(listed(admin, q=ids[7])) == ["Martin 07"]  # by wallet id
    assert names(listed(admin, q="%")) == ["100% Bio"]  # a wildcard is only a character
    assert names(listed(admin, q="_")) == []
    assert names(listed(admin, role="treasurer")) == ["Treasurer"]
    assert listed(admin, q="nobody here")["total"] == 0


def test_the_list_says_each_members_role_membership_and_frozen_wallet(site: TestClient) -> None:
    admin = operator(site, "admin")
    paid, lapsed, never, frozen = villagers(site, "Alice", "Bruno", "Chloé", "Denis")
    node = node_of(site)
    with node.engine.begin() as conn:
        members_repo.update_member(conn, lapsed, membership_until=date.today() - timedelta(1))
        members_repo.freeze(conn, frozen, "A card payment was taken back")
    renewed = admin.put(f"/api/v1/members/{paid}/membership", json={"until": "2999-12-31"})
    assert renewed.status_code == 200, renewed.text

    items = {item["id"]: item for item in listed(admin, role="resident")["items"]}
    assert items[paid]["membership_until"] == "2999-12-31" and items[paid]["membership_current"]
    assert items[lapsed]["membership_until"] is not None
    assert not items[lapsed]["membership_current"] and not items[never]["membership_current"]
    assert items[never]["membership_until"] is None
    assert items[frozen]["frozen"] and items[frozen]["frozen_reason"].startswith("A card payment")
    assert not any(items[m]["frozen"] for m in (paid, lapsed, never))
    assert {item["role"] for item in items.values()} == {"resident"}
    assert "password_hash" not in items[paid]


def test_searches_the_api_refuses(site: TestClient) -> None:
    admin = operator(site, "admin")
    for query in ({"role": "mayor"}, {"per_page": 101}, {"page": 0}, {"q": "x" * 121}):
        answer = admin.get("/api/v1/admin/members", params=query)
        assert answer.status_code == 422, query
    office = operator(site, "office")
    refused = office.get("/api/v1/admin/members")
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")


def test_key_officers_read_a_members_keys_before_recovering_them(site: TestClient) -> None:
    camille = join(site, "Camille")
    camille.add_key("tablet")
    for role in ("office", "admin"):
        keys = operator(site, role).get(f"/api/v1/members/{camille.id}/keys")
        assert keys.status_code == 200, keys.text
        assert [k["label"] for k in keys.json()] == ["phone", "tablet"]
    admin = operator(site, "admin")
    for target in ("nobody-0000", admin.id):
        answer = admin.get(f"/api/v1/members/{target}/keys")
        assert (answer.status_code, answer.json()["error"]) == (404, "unknown_member"), target
    answer = operator(site, "treasurer").get(f"/api/v1/members/{camille.id}/keys")
    assert answer.status_code == 403


# -- the members' pages --------------------------------------------------------------------


def test_members_page_finds_and_pages_in_french_and_english(site: TestClient) -> None:
    admin = operator(site, "admin")
    villagers(site, *(f"Martin {n:02d}" for n in range(22)))
    page = html(admin, "/admin/members?q=martin")
    assert page.status_code == 200 and 'lang="fr"' in page.text
    assert french("Found: %(count)s") % {"count": 22} in page.text
    assert french("Page %(page)s of %(pages)s") % {"page": 1, "pages": 2} in page.text
    assert page.text.count('data-member="') == 20
    assert french("Never paid") in page.text and french("Resident") in page.text
    following = re.search(r'href="([^"]+)" rel="next"', page.text)
    assert following is not None
    second = html(admin, following.group(1).replace("&amp;", "&"))
    assert second.text.count('data-member="') == 2 and "Martin 21" in second.text
    assert 'rel="next"' not in second.text and 'rel="prev"' in second.text

    english = html(admin, "/admin/members?q=martin&lang=en", lang="en")
    assert 'lang="en"' in english.text and "Found: 22" in english.text
    assert "Never paid" in english.text and "Page 1 of 2" in english.text
    nothing = html(admin, "/admin/members?q=personne&lang=fr")
    assert french("No member matches this search.") in nothing.text


def test_admin_renews_a_membership_on_the_members_page(site: TestClient) -> None:
    admin = operator(site, "admin")
    (camille,) = villagers(site, "Camille")
    page = html(admin, f"/admin/members/{camille}")
    assert page.status_code == 200 and french("Never paid") in page.text
    today = date.today()
    suggested = date(today.year + 1, today.month, min(today.day, 28 if today.month == 2 else 31))
    assert f'value="{suggested.isoformat()}"' in page.text  # a year from today

    done = form(admin, f"/admin/members/{camille}", until="31/12/2031")
    assert done.status_code == 303 and done.headers["location"].endswith("?renewed=1")
    shown = html(admin, done.headers["location"])
    assert flash(shown.text) == french("The membership of {name} is paid up to {day}.").format(
        name="Camille", day="31 décembre 2031"
    )
    assert 'data-state="current"' in shown.text
    assert 'value="2032-12-31"' in shown.text  # the next renewal: a year after the end
    assert listed(admin, q="camille")["items"][0]["membership_until"] == "2031-12-31"
    assert form(admin, f"/admin/members/{camille}", until="2030-06-30").status_code == 303
    assert listed(admin, q="camille")["items"][0]["membership_until"] == "2030-06-30"

    for typed in ("31/02/2031", "demain", "", "2031-13-01"):
        refused = form(admin, f"/admin/members/{camille}", until=typed)
        assert refused.status_code == 422, typed
        assert flash(refused.text, "error") == french(
            "Give the day the membership is paid up to, like 31/12/2026."
        )
    english = form(admin, f"/admin/members/{camille}", lang="en", until="soon")
    assert "Give the day the membership is paid up to" in english.text
    assert listed(admin, q="camille")["items"][0]["membership_until"] == "2030-06-30"
    unknown = html(admin, "/admin/members/nobody-0000")
    assert unknown.status_code == 404
    assert french("There is no member with this id.") in unknown.text


# -- making operators ----------------------------------------------------------------------


def test_admin_makes_an_office_operator_who_then_works_at_the_new_office(
    site: TestClient,
) -> None:
    admin = operator(site, "admin")
    page = html(admin, "/admin/operators")
    assert page.status_code == 200 and french("Make an operator") in page.text
    done = form(
        admin,
        "/admin/operators",
        display_name="Guichet du marché",
        email="Marche@Village.test",
        password=PASSWORD,
        role="office",
        office="marche",
    )
    assert done.status_code == 303, done.text
    shown = html(admin, done.headers["location"])
    assert flash(shown.text) == french("{name} can now log in with {email}, as {role}.").format(
        name="Guichet du marché",
        email="marche@village.test",
        role=french("Exchange-office operator").lower(),
    )
    assert "marche@village.test" in shown.text and "· marche" in shown.text

    made = Person(new_client(site), {"email": "marche@village.test", "id": ""}).log_in()
    office = made.get("/api/v1/office")
    assert office.status_code == 200 and office.json()["office"] == "marche"

    treasurer = form(
        admin,
        "/admin/operators",
        display_name="Trésorière adjointe",
        email="adjointe@village.test",
        password=PASSWORD,
        role="treasurer",
        office="left-typed",  # a treasurer works at no office: what was typed is not kept
    )
    assert treasurer.status_code == 303
    me = Person(new_client(site), {"email": "adjointe@village.test", "id": ""}).log_in()
    assert me.get("/api/v1/me").json()["role"] == "treasurer"
    assert me.get("/api/v1/me").json()["office"] is None


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"office": ""}, 422, "An exchange-office operator works at one office."),
        (
            {"office": "Grand Marché"},
            422,
            "An office's id is 1 to 48 lowercase letters, digits, - or _, starting with a "
            "letter or a digit (like mairie).",
        ),
        ({"password": "short"}, 422, "The password needs at least 10 characters."),
        ({"email": "nobody"}, 422, "This email address does not look right."),
        ({"email": "admin@village.test"}, 409, "An account already uses this email address."),
        ({"display_name": " "}, 422, "Give a name (120 characters at most)."),
        ({"role": "mayor"}, 422, BAD_ROLE),
        (
            {"role": "resident"},
            422,
            BAD_ROLE,
        ),
    ],
)
def test_operators_the_page_refuses_in_plain_words(
    site: TestClient, fields: dict[str, str], status: int, message: str
) -> None:
    admin = operator(site, "admin")
    typed = {
        "display_name": "Nouvel opérateur",
        "email": "nouveau@village.test",
        "password": PASSWORD,
        "role": "office",
        "office": "gare",
        **fields,
    }
    before = listed(admin)["total"]
    refused = form(admin, "/admin/operators", **typed)
    assert refused.status_code == status, refused.text
    assert flash(refused.text, "error") == french(message)
    assert PASSWORD not in refused.text  # what was typed comes back, never the password
    if fields.get("email") != "nobody":
        assert typed["email"] in refused.text
    english = form(admin, "/admin/operators", lang="en", **typed)
    assert flash(english.text, "error") == message
    assert listed(admin)["total"] == before


# -- recovering a lost phone's keys --------------------------------------------------------


@pytest.mark.parametrize("role", ["office", "admin"])
def test_an_operator_recovers_the_keys_of_a_member_who_lost_their_phone(
    site: TestClient, role: str
) -> None:
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, camille, 5_000)
    lost = camille.key
    assert lost is not None
    officer = operator(site, role)
    found = html(officer, f"/admin/recovery?member={camille.member['email']}")
    assert found.status_code == 200 and "Camille" in found.text
    assert f'data-key-id="{lost.key_id}" data-revoked="no"' in found.text

    phone = SigningKey.generate()
    recovery = {
        "member": camille.id,
        "public_key": b64(phone.public_key),
        "label": "nouveau téléphone",
        "identity_checked": "yes",
    }
    done = form(officer, "/admin/recovery", **recovery)
    assert done.status_code == 303, done.text
    shown = html(officer, done.headers["location"])
    message = french(
        "The keys of {name} are recovered: the old ones are revoked and the new device's "
        "key {key} is registered."
    )
    assert flash(shown.text) == message.format(name="Camille", key=phone.key_id)
    assert f'data-key-id="{lost.key_id}" data-revoked="yes"' in shown.text
    assert f'data-key-id="{phone.key_id}" data-revoked="no"' in shown.text

    before = books(site, camille, louis)
    refused = send(camille, signed(camille, lost, to=louis.account))
    assert (refused.status_code, refused.json()["error"]) == (403, "revoked_key")
    assert books(site, camille, louis) == before
    assert send(camille, signed(camille, phone, to=louis.account)).status_code == 201

    # The same form sent twice (a double click): the recovery ends the same.
    assert form(officer, "/admin/recovery", **recovery).status_code == 303
    keys = {k["key_id"]: k["revoked_ms"] for k in camille.get("/api/v1/me/keys").json()}
    assert keys[phone.key_id] is None and keys[lost.key_id] is not None
    assert send(camille, signed(camille, phone, to=louis.account)).status_code == 201


def test_recoveries_the_page_refuses_change_nothing(site: TestClient) -> None:
    camille = join(site, "Camille")
    louis = join(site, "Louis")
    assert camille.key is not None and louis.key is not None
    officer = operator(site, "office")
    treasurer = operator(site, "treasurer")

    def keys() -> dict[str, Any]:
        return {k["key_id"]: k["revoked_ms"] for k in camille.get("/api/v1/me/keys").json()}

    before = keys()
    fresh = b64(SigningKey.generate().public_key)
    cases = [
        (
            {"identity_checked": ""},
            422,
            "Check the member's identity document in person, then tick the box.",
        ),
        ({"public_key": "not a key"}, 422, "A device key is 32 bytes of Ed25519, in base64url."),
        (
            {"public_key": b64(bytes(31)) + "AA"},
            422,
            "A device key is 32 bytes of Ed25519, in base64url.",
        ),
        ({"label": "x" * 81}, 422, "Name the device in at most 80 characters, on one line."),
        (
            {"public_key": b64(louis.key.public_key)},  # another member's key
            409,
            "This device key was registered before: the new device must make a new one.",
        ),
        ({"member": "nobody-0000"}, 404, "There is no member with this id."),
        (
            {"member": treasurer.id},
            404,
            "There is no member with this id.",
        ),
    ]
    for changes, status, message in cases:
        typed = {
            "member": camille.id,
            "public_key": fresh,
            "label": "phone",
            "identity_checked": "yes",
            **changes,
        }
        refused = form(officer, "/admin/recovery", **typed)
        assert refused.status_code == status, (changes, refused.text)
        assert flash(refused.text, "error") == french(message)
        english = form(officer, "/admin/recovery", lang="en", **typed)
        assert flash(english.text, "error") == message
    assert keys() == before

    camille.post("/api/v1/me/keys", json={"public_key": fresh, "label": "tablet"})
    old = b64(camille.key.public_key)
    revoked = camille.delete(f"/api/v1/me/keys/{camille.key.key_id}")
    assert revoked.status_code == 204
    before = keys()
    refused = form(  # a revoked key of hers is never brought back
        officer, "/admin/recovery", member=camille.id, public_key=old, identity_checked="yes"
    )
    assert refused.status_code == 409 and keys() == before
    refused = form(treasurer, "/admin/recovery", member=camille.id, public_key=fresh)
    assert refused.status_code == 403 and keys() == before


def test_office_operators_recover_keys_but_see_no_other_admin_page(site: TestClient) -> None:
    office = operator(site, "office")
    assert html(office, "/office").text.count('href="/admin/recovery"') == 1  # the menu's
    assert html(office, "/admin/recovery").status_code == 200
    for path in ("/admin/members", "/admin/operators"):
        refused = html(office, path)
        assert refused.status_code == 403, path
        assert french("Your role does not allow this.") in refused.text
    admin = operator(site, "admin")
    menu = html(admin, "/")
    assert '<a href="/admin/members">Administration</a>' in menu.text  # the same in French
    visitor = new_client(site).get("/admin/members?q=x", headers=HTML, follow_redirects=False)
    assert visitor.headers["location"] == "/login?next=%2Fadmin%2Fmembers%3Fq%3Dx"


# -- French first --------------------------------------------------------------------------


def say_msgids(path: Path) -> set[str]:
    """The messages pages write with `say(request, "...")`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "say"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
        ):
            found.add(str(node.args[1].value))
    return found


def test_every_message_of_the_admin_pages_has_its_french() -> None:
    msgids: set[str] = set()
    for path in (ROOT / "wallet_api" / "admin").glob("*.py"):
        msgids |= python_msgids(path) | say_msgids(path)
    for path in (ROOT / "web" / "templates" / "admin").glob("*.html"):
        msgids |= template_msgids(path)
    assert len(msgids) > 60  # the extraction found the messages, not nothing
    catalogue = french_catalogue()
    missing = sorted(m for m in msgids if not catalogue.get(m))
    assert not missing, missing
    placeholders = re.compile(r"\{\w+\}|%\(\w+\)s")
    for msgid in msgids:
        assert sorted(placeholders.findall(msgid)) == sorted(
            placeholders.findall(catalogue[msgid])
        ), msgid
