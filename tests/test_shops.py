"""Finding the shop (issue 11): a shop is known by a slug made from its trade name and by its
place; a merchant who joins waits for the association's approval; a payer finds approved
shops by their words, residents only by exact wallet id or email; histories and receipts
name people and shops, not accounts. Through the API, the pages and the migration, on
SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import re
from importlib.resources import files
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from ledger.models import metadata
from members import service, shops
from members.models import members, merchants
from runtime.node import migrate
from tests.conftest import PASSWORD
from tests.people import Person, fund, join, new_client, operator
from tests.test_wallet_api import wait_sealed
from web.i18n import translations

HTML = {"Accept": "text/html"}
FR = translations("fr")
_serial = itertools.count(1)


def french(msgid: str) -> str:
    found = FR.gettext(msgid)
    assert found != msgid, f"no French for {msgid!r}"
    return found


def node_of(site: TestClient) -> Any:
    return site.app.state.node  # type: ignore[attr-defined]


def merchant(
    site: TestClient, name: str, trade_name: str, place: str | None = None, **more: str
) -> Person:
    """A merchant who joined through the API (their shop pending), logged in, with a key."""
    client = new_client(site)
    email = f"shop.{next(_serial)}@village.test"
    trade: dict[str, Any] = {"trade_name": trade_name, "category": "épicerie", "address": "1 rue"}
    trade |= {"place": place} if place else {}
    body = {"display_name": name, "email": email, "password": PASSWORD, "role": "merchant"}
    answer = client.post("/api/v1/members", json={**body, "merchant": trade | more})
    assert answer.status_code == 201, answer.text
    person = Person(client, answer.json()).log_in()
    person.add_key()
    return person


def approve(site: TestClient, *people: Person) -> None:
    node = node_of(site)
    admin = service.get_member(node, operator(site, "admin").id)
    for person in people:
        assert service.approve_shop(node, admin, person.id).approved


def payees(person: Person, q: str) -> list[dict[str, Any]]:
    answer = person.get("/api/v1/payees", params={"q": q})
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def names(found: list[dict[str, Any]]) -> list[str]:
    return [p["name"] for p in found]


# -- joining: a slug from the trade name, a place, pending --------------------------------


def test_a_merchant_joins_pending_with_a_slug_from_the_trade_name(site: TestClient) -> None:
    zoe = merchant(site, "Zoé Lefèvre", "Épicerie Chez Zoé", "Saint-Sou")
    other = merchant(site, "Marc", "Épicerie chez ZOÉ")  # the same name, another shop
    with node_of(site).ledger.reading() as conn:
        first, second = shops.shop_of(conn, zoe.id), shops.shop_of(conn, other.id)
    assert first is not None and second is not None
    assert zoe.id.startswith("zoe-lefevre-")  # the account's name: never changes
    assert (first.slug, first.place, first.status) == ("epicerie-chez-zoe", "Saint-Sou", "pending")
    assert (first.trade_name, first.display_name, first.account) == (
        "Épicerie Chez Zoé",
        "Zoé Lefèvre",
        zoe.account,
    )
    assert not first.approved
    assert re.fullmatch(r"epicerie-chez-zoe-[0-9a-f]{4}", second.slug)  # a suffix: taken
    assert second.place == node_of(site).settings.village  # none given: the village's


def test_the_join_page_asks_the_place_and_refuses_a_long_one(site: TestClient) -> None:
    from tests.test_pages import flash_of, sign_up

    form = site.get("/join", headers=HTML).text
    place = re.search(r'<input id="place" name="place"[^>]* value="([^"]*)"', form)
    assert place is not None and place.group(1) == node_of(site).settings.village
    trade = {"role": "merchant", "trade_name": "Le Fournil", "category": "bakery"}
    trade |= {"address": "2 rue Haute", "display_name": "Jeanne"}
    refused = sign_up(new_client(site), **trade, place="x" * 81)
    assert refused.status_code == 422
    assert flash_of(refused.text) == french(
        "Give the town or village of the shop (80 characters at most)."
    )
    client = new_client(site)
    joined = sign_up(client, **trade, email="fournil@village.test", place="Sou-le-Haut")
    assert joined.status_code == 303
    me = client.get("/api/v1/me").json()
    with node_of(site).ledger.reading() as conn:
        shop = shops.shop_of(conn, me["id"])
    assert shop is not None and (shop.slug, shop.place) == ("le-fournil", "Sou-le-Haut")
    wallet = client.get("/wallet", headers=HTML).text
    expected = french(
        "Your shop {name} waits for the association's approval: until then it is not "
        "listed, and customers find it only by your wallet id or email."
    ).format(name="Le Fournil")
    assert 'id="shop-state" data-status="pending"' in wallet and expected in wallet


# -- finding whom to pay --------------------------------------------------------------------


def test_shops_are_found_by_words_of_their_name_or_place_once_approved(site: TestClient) -> None:
    zoe = merchant(site, "Zoé Lefèvre", "Épicerie Chez Zoé", "Saint-Sou")
    fournil = merchant(site, "Jeanne", "Le Fournil", "Sœurs-de-Sou")
    camille = join(site, "Camille")
    assert payees(camille, "epicerie") == []  # pending: not listed
    approve(site, zoe, fournil)
    found = payees(camille, "  ÉPICERIE   zoe ")
    assert found == [
        {
            "account": zoe.account,
            "member_id": zoe.id,
            "name": "Épicerie Chez Zoé",
            "kind": "shop",
            "place": "Saint-Sou",
            "slug": "epicerie-chez-zoe",
        }
    ]
    assert names(payees(camille, "saint-sou")) == ["Épicerie Chez Zoé"]
    assert names(payees(camille, "soeur")) == ["Le Fournil"]  # œ as oe
    assert names(payees(camille, "sou")) == ["Épicerie Chez Zoé", "Le Fournil"]  # by name
    assert payees(camille, "zoé fournil") == []  # every word, in one shop
    assert payees(camille, "Lefèvre") == []  # an owner's name is not the shop's
    assert payees(camille, "%%") == [] and payees(camille, "__") == []  # no wildcards
    assert names(payees(camille, "epicerie-chez-zoe")) == ["Épicerie Chez Zoé"]  # the slug


def test_residents_and_merchants_not_approved_only_by_exact_id_or_email(site: TestClient) -> None:
    camille, louis = join(site, "Camille Martin"), join(site, "Louis Bernard")
    zoe = merchant(site, "Zoé", "Épicerie Chez Zoé")
    resident = {
        "account": louis.account,
        "member_id": louis.id,
        "name": "Louis Bernard",
        "kind": "resident",
        "place": None,
        "slug": None,
    }
    assert payees(camille, louis.id) == [resident]
    assert payees(camille, f"member:{louis.id.upper()}") == [resident]
    assert payees(camille, louis.member["email"].upper()) == [resident]
    for partial in ("Louis", "Bernard", louis.id[:-1], louis.member["email"][1:]):
        assert payees(camille, partial) == [], partial  # residents are not listed
    found = payees(camille, zoe.id)  # a shop not approved yet: by its id, not its words
    assert [(p["name"], p["kind"], p["slug"]) for p in found] == [
        ("Épicerie Chez Zoé", "shop", None)
    ]
    assert payees(camille, "epicerie") == []
    admin = operator(site, "admin")
    assert payees(camille, admin.member["email"]) == []  # operators hold no wallet


def test_the_payees_api_refuses_what_it_cannot_search(site: TestClient) -> None:
    camille = join(site, "Camille")
    for q in ("a", "x" * 81):
        answer = camille.get("/api/v1/payees", params={"q": q})
        assert (answer.status_code, answer.json()["error"]) == (422, "invalid_request"), q
    assert camille.get("/api/v1/payees", params={"q": "a\x00b"}).status_code == 422
    assert camille.get("/api/v1/payees").status_code == 422
    anonymous = new_client(site).get("/api/v1/payees", params={"q": "epicerie"})
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "login_required")
    admin = operator(site, "admin").get("/api/v1/payees", params={"q": "epicerie"})
    assert (admin.status_code, admin.json()["error"]) == (403, "forbidden")


def test_find_payees_gives_at_most_the_limit_exact_matches_first(node: Any) -> None:
    with node.engine.begin() as conn:
        for n in range(12):
            member_id = f"ferme-{n:02d}"
            conn.execute(
                insert(members).values(
                    id=member_id, role="merchant", display_name=f"F{n}", created_ms=1
                )
            )
            trade = {"trade_name": f"Ferme {n:02d}", "category": "farm", "address": "x"}
            shops.add_shop(conn, member_id, **trade, place="Sou")
            shops.decide(conn, member_id, "approved", None, 1)
    with node.ledger.reading() as conn:
        assert [p.member_id for p in shops.find_payees(conn, "ferme")] == [
            f"ferme-{n:02d}" for n in range(10)
        ]
        exact = shops.find_payees(conn, "ferme-11", limit=3)
        assert exact[0].member_id == "ferme-11"
        assert len(shops.find_payees(conn, "sou", limit=4)) == 4
        assert shops.names_of(conn, ["ferme-03", "nobody"]) == {"ferme-03": "Ferme 03"}


# -- approval ---------------------------------------------------------------------------------


def test_the_admin_approves_then_suspends_a_merchant_on_the_page(site: TestClient) -> None:
    zoe = merchant(site, "Zoé", "Épicerie Chez Zoé")
    admin = operator(site, "admin")
    listed = admin.client.get("/admin/merchants", headers=HTML)
    assert listed.status_code == 200
    pending = listed.text.split('id="shops-approved"')[0]
    assert f'data-member="{zoe.id}" data-status="pending"' in pending
    assert 'href="/admin/merchants"' in admin.client.get("/admin/members", headers=HTML).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', listed.text)
    assert csrf is not None

    def decide(who: Person, decision: str, token: str | None = None) -> Any:
        form = {"decision": decision, "csrf": token or csrf.group(1)}
        return who.client.post(
            f"/admin/merchants/{zoe.id}", data=form, headers=HTML, follow_redirects=False
        )

    forged = decide(admin, "approve", token="forged")
    assert forged.status_code == 403
    itself = decide(zoe, "approve", token=zoe.csrf)  # a merchant does not approve itself
    assert itself.status_code == 403 and french("Your role does not allow this.") in itself.text
    done = decide(admin, "approve")
    assert done.status_code == 303
    assert done.headers["location"] == f"/admin/merchants?approved={zoe.id}"
    page = admin.client.get(done.headers["location"], headers=HTML).text
    said = french(
        "{name} is approved: the shop is listed, found by its name and paid at the counter."
    )
    assert said.format(name="Épicerie Chez Zoé") in page
    assert f'data-member="{zoe.id}" data-status="approved"' in page
    with node_of(site).ledger.reading() as conn:
        row = conn.execute(select(merchants).where(merchants.c.member_id == zoe.id)).one()
    assert (row.status, row.decided_by) == ("approved", admin.id) and row.decided_ms > 0
    assert decide(admin, "approve").status_code == 303  # twice: nothing changes
    assert "shop-state" not in zoe.client.get("/wallet", headers=HTML).text
    assert 'href="/shops/epicerie-chez-zoe"' in zoe.client.get("/wallet", headers=HTML).text

    assert decide(admin, "suspend").headers["location"] == f"/admin/merchants?suspended={zoe.id}"
    assert payees(join(site, "Camille"), "epicerie") == []
    assert 'data-status="suspended"' in zoe.client.get("/wallet", headers=HTML).text
    member = admin.client.get(f"/admin/members/{zoe.id}", headers=HTML).text
    assert 'id="member-shop" data-status="suspended"' in member

    odd = decide(admin, "close")
    assert odd.status_code == 422 and french("This form is not one of this page's.") in odd.text
    camille = join(site, "Camille")
    unknown = admin.client.post(
        f"/admin/merchants/{camille.id}",
        data={"decision": "approve", "csrf": csrf.group(1)},
        headers=HTML,
    )
    assert unknown.status_code == 404
    said = french("There is no shop here: it may not be approved by the association yet.")
    assert said in unknown.text


def test_the_database_holds_the_shops_rules(node: Any) -> None:
    with node.engine.begin() as conn:
        for member_id in ("m1", "m2"):
            row = {"id": member_id, "role": "merchant", "display_name": "M", "created_ms": 1}
            conn.execute(insert(members).values(**row))
        shops.add_shop(conn, "m1", trade_name="Chez M", category="c", address="a", place="P")
    bad = [
        {"status": "closed", "decided_ms": 1},
        {"status": "approved"},  # decided, but when?
        {"decided_ms": 1},  # pending, yet decided
        {"place": ""},
        {"slug": "Chez-M"},
    ]
    for values in bad:
        with pytest.raises(IntegrityError), node.engine.begin() as conn:
            conn.execute(update(merchants).where(merchants.c.member_id == "m1").values(**values))
    row = {"member_id": "m2", "trade_name": "Chez M", "category": "c", "address": "a"}
    row |= {"place": "P", "slug": "chez-m", "search_text": "chez m p", "status": "pending"}
    with pytest.raises(IntegrityError), node.engine.begin() as conn:
        conn.execute(insert(merchants).values(**row))  # the slug is taken


# -- the shop's page, the send page ----------------------------------------------------------


def test_a_shops_public_page_once_approved(site: TestClient) -> None:
    zoe = merchant(site, "Zoé", "Épicerie Chez Zoé", "Saint-Sou")
    visitor = new_client(site)
    hidden = visitor.get("/shops/epicerie-chez-zoe", headers=HTML)
    assert hidden.status_code == 404  # pending: as unknown as a slug never made
    approve(site, zoe)
    for path in ("/shops/epicerie-chez-zoe", "/shops/EPICERIE-CHEZ-ZOE"):
        shown = visitor.get(path, headers=HTML)
        assert shown.status_code == 200, path
        assert "Épicerie Chez Zoé" in shown.text and "Saint-Sou" in shown.text
        assert "épicerie" in shown.text and "1 rue" in shown.text
        assert 'href="/send?to=epicerie-chez-zoe"' in shown.text
        assert french("Pay this shop") in shown.text
    assert visitor.get("/shops/nowhere", headers=HTML).status_code == 404
    assert visitor.get("/shops/a%00b", headers=HTML).status_code == 404
    to_pay = visitor.get("/send?to=epicerie-chez-zoe", follow_redirects=False)
    assert to_pay.status_code == 303  # log in first, then back to pay the shop
    assert to_pay.headers["location"] == "/login?next=%2Fsend%3Fto%3Depicerie-chez-zoe"


def page_data(html: str) -> Any:
    import json

    found = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert found
    return json.loads(found.group(1))


def test_the_send_page_names_the_payee_a_link_chose(site: TestClient) -> None:
    zoe = merchant(site, "Zoé", "Épicerie Chez Zoé", "Saint-Sou")
    louis, camille = join(site, "Louis Bernard"), join(site, "Camille")
    approve(site, zoe)
    for to in ("epicerie-chez-zoe", zoe.id, f"member:{zoe.id}"):
        page = camille.client.get("/send", params={"to": to}, headers=HTML).text
        assert page_data(page)["payee"]["account"] == zoe.account, to
        assert page_data(page)["payee"]["name"] == "Épicerie Chez Zoé"
        assert 'value="Épicerie Chez Zoé"' in page
    page = camille.client.get("/send", params={"to": louis.id}, headers=HTML).text
    assert page_data(page)["payee"]["name"] == "Louis Bernard"
    unknown = camille.client.get("/send", params={"to": "nobody-0000"}, headers=HTML).text
    assert page_data(unknown)["payee"] is None and 'value="nobody-0000"' in unknown


# -- names in histories and receipts -----------------------------------------------------------


def test_histories_and_receipts_name_shops_and_people(site: TestClient) -> None:
    zoe = merchant(site, "Zoé Lefèvre", "Épicerie Chez Zoé")
    camille = join(site, "Camille Martin")
    fund(site, camille, 5_000)
    paid = camille.pay(zoe, 1_250, memo="Fromage")
    assert paid.status_code == 201, paid.text  # a shop pending approval is still a member
    transfer = paid.json()["transfer_id"]
    mine = camille.get("/api/v1/wallet/history").json()["items"]
    assert [(m["counterparty"], m["counterparty_name"]) for m in mine] == [
        (zoe.id, "Épicerie Chez Zoé"),
        (None, None),  # the top-up: no member on the other side
    ]
    theirs = zoe.get("/api/v1/wallet/history").json()["items"][0]
    assert (theirs["counterparty"], theirs["counterparty_name"]) == (camille.id, "Camille Martin")
    pos_token = zoe.post("/api/v1/me/tokens", json={"scope": "pos", "label": "caisse"}).json()
    counter = new_client(site).get(
        "/api/v1/pos/payments", headers={"Authorization": f"Bearer {pos_token['token']}"}
    )
    assert counter.json()["items"][0]["counterparty_name"] == "Camille Martin"

    wallet = camille.client.get("/wallet", headers=HTML).text
    row = re.search(rf'<tr data-transfer="{transfer}">(.*?)</tr>', wallet, re.S)
    assert row is not None and "Épicerie Chez Zoé" in row.group(1)
    assert f"member:{zoe.id}" not in wallet
    wait_sealed(site)
    receipt = camille.client.get(f"/wallet/receipts/{transfer}", headers=HTML).text
    summary = receipt.split('id="receipt-summary"')[1].split("</section>")[0]
    assert "Camille Martin" in summary and "Épicerie Chez Zoé" in summary
    assert "member:" not in summary


# -- the migration ---------------------------------------------------------------------------


def alembic(engine: Engine, action: Any, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        action(config, revision)


def test_the_migration_approves_the_merchants_trading_and_names_their_shops(
    engine: Engine,
) -> None:
    alembic(engine, command.downgrade, "0009")
    people = (
        ("zoe-lefevre-56f5", "Épicerie Chez Zoé", "12 rue Haute, 31000 Toulouse"),
        ("epicerie-chez-zoe-0001", "Épicerie chez Zoé", "2 place du Marché"),
        ("cafe", "Café", "Grand-Rue"),
    )
    with engine.begin() as conn:
        for member_id, trade_name, address in people:
            conn.execute(
                text(
                    "INSERT INTO members (id, role, display_name, created_ms) "
                    "VALUES (:id, 'merchant', 'M', 1)"
                ),
                {"id": member_id},
            )
            conn.execute(
                text(
                    "INSERT INTO merchants (member_id, trade_name, category, address) "
                    "VALUES (:id, :name, 'food', :address)"
                ),
                {"id": member_id, "name": trade_name, "address": address},
            )
    migrate(engine)
    with engine.connect() as conn:
        rows = {
            r.member_id: r for r in conn.execute(select(merchants).order_by(merchants.c.member_id))
        }
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": _merchants_only}
        )
        assert compare_metadata(context, metadata) == []
    assert {r.status for r in rows.values()} == {"approved"}
    assert all(r.decided_ms and r.decided_by is None for r in rows.values())
    assert rows["cafe"].slug == "cafe" and rows["cafe"].place == "Val-de-Sou"
    assert rows["zoe-lefevre-56f5"].place == "Toulouse"
    assert rows["zoe-lefevre-56f5"].search_text == "epicerie chez zoe toulouse"
    slugs = sorted(rows[m].slug for m in ("zoe-lefevre-56f5", "epicerie-chez-zoe-0001"))
    assert slugs[0] == "epicerie-chez-zoe"
    assert re.fullmatch(r"epicerie-chez-zoe-[0-9a-f]{4}", slugs[1])
    with engine.connect() as conn:
        found = shops.find_payees(conn, "zoe toulouse")
    assert [p.member_id for p in found] == ["zoe-lefevre-56f5"]


def _merchants_only(obj: Any, _name: str | None, type_: str, _reflected: bool, _other: Any) -> bool:
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is not None and table.name == "merchants"
