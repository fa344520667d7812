"""Counter devices: a tablet at the till paired with its shop by a one-time code. It takes
payments, customers' codes and refunds with its own counter key, and nothing else: no
payment out of the shop's wallet, no wallet page, no key of its own, no other device."""

from __future__ import annotations

import base64
import re
import threading
from typing import Any

from sqlalchemy import func, select, update

from audits.audit import audit
from ledger.canonical import b64
from ledger.models import keys
from ledger.operations import counter_of
from ledger.signing import SigningKey
from pos.devices.models import counter_devices
from tests.people import Person, fund, join, new_client
from tests.test_pages import french, python_msgids, template_msgids
from tests.test_pos import _invoice, _pay, _shop
from tests.test_pos_codes import _collect, _show
from tests.test_qr import read as read_qr
from web.qr import qr_png, qr_svg

HTML = {"Accept": "text/html"}
FR = {"Accept-Language": "fr"}


def _code(merchant: Person, label: str = "Caisse 1") -> dict[str, Any]:
    answer = merchant.post("/api/v1/pos/devices", json={"label": label})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _send_code(site: Any, code: str) -> tuple[Any, Person]:
    """A fresh device sends `code` with a key it made: the answer, and the device."""
    key = SigningKey.generate()
    client = new_client(site)
    answer = client.post("/api/v1/pos/pair", json={"code": code, "public_key": b64(key.public_key)})
    body = answer.json() if answer.status_code == 201 else {}
    member = {"id": body.get("merchant", "")}
    return answer, Person(client, member, csrf=body.get("csrf", ""), key=key)


def _paired(site: Any, merchant: Person, label: str = "Caisse 1") -> Person:
    answer, tablet = _send_code(site, _code(merchant, label)["code"])
    assert answer.status_code == 201, answer.text
    return tablet


def _html(person: Person, path: str, lang: str = "en", **kw: Any) -> Any:
    """A page as the person's browser opens it."""
    headers = {**HTML, "Accept-Language": lang}
    return person.client.get(path, headers=headers, **kw)


def _counter_keys(site: Any, merchant: Person) -> list[Any]:
    with site.app.state.node.ledger.reading() as conn:
        query = select(keys.c.key_id, keys.c.revoked_ms).where(
            keys.c.owner == counter_of(merchant.account)
        )
        return list(conn.execute(query))


def test_a_paired_device_takes_payments_codes_and_refunds(site: Any) -> None:
    zoe, camille = _shop(site), join(site, "Camille")
    fund(site, camille, 5_000)
    made = _code(zoe)
    assert re.fullmatch(r"[A-Z2-9]{5}-[A-Z2-9]{5}", made["code"])
    assert made["url"].endswith(f"/pos/pair?code={made['code']}")
    assert made["device"]["state"] == "waiting"

    answer, tablet = _send_code(site, made["code"].lower().replace("-", " "))  # as typed
    assert answer.status_code == 201, answer.text
    paired = answer.json()
    assert (paired["merchant"], paired["shop"], paired["label"]) == (zoe.id, "Chez Zoé", "Caisse 1")
    assert paired["session_days"] == 90
    assert "httponly" in answer.headers["set-cookie"].lower()
    assert paired["key_id"] == tablet.key.key_id  # type: ignore[union-attr]

    # Its point of sale opens, and knows it may not register a key of its own.
    pos = _html(tablet, "/pos")
    assert pos.status_code == 200, pos.text
    assert '"mayRegisterKeys": false' in pos.text
    assert '"mayRegisterKeys": true' in _html(zoe, "/pos").text
    for path in ("/pos/day", "/pos/sticker", "/scan"):
        assert _html(tablet, path).status_code == 200, path

    bill = _invoice(tablet, 1_250)
    assert _html(tablet, f"/pos/invoices/{bill['id']}").status_code == 200
    assert tablet.get(f"/pos/invoices/{bill['id']}/qr.svg").status_code == 200
    sale = _pay(camille, bill)
    assert sale.status_code == 201, sale.text
    refund = tablet.order("refund", to=camille.account, amount=250, ref=sale.json()["transfer_id"])
    back = tablet.post("/api/v1/pos/refunds", json=refund)
    assert back.status_code == 201, back.text
    shown = _show(camille, 2_000)
    taken = _collect(tablet, shown["code"], 800)
    assert taken.status_code == 201, taken.text

    assert (camille.balance(), zoe.balance()) == (5_000 - 1_250 + 250 - 800, 1_250 - 250 + 800)
    day = tablet.get("/api/v1/pos/day").json()
    assert [(i["kind"], i["amount"]) for i in day["items"]] == [
        ("payment", 1_250),
        ("refund", -250),
        ("collection", 800),
    ]
    assert audit(site.app.state.node.engine).ok


def test_a_paired_device_cannot_pay_nor_open_the_wallet_nor_pair(site: Any) -> None:
    zoe, camille = _shop(site), join(site, "Camille")
    fund(site, zoe, 3_000)
    tablet = _paired(site, zoe)

    payment = tablet.order("payment", to=camille.account, amount=1_000)
    sent = tablet.post("/api/v1/transfers", json=payment)
    assert (sent.status_code, sent.json()["error"]) == (403, "counter_device")
    # Were the till's key used by a caller that may post payments, the ledger refuses it.
    through = zoe.post("/api/v1/transfers", json=payment)
    assert (through.status_code, through.json()["error"]) == (403, "wrong_signer")
    assert (zoe.balance(), camille.balance()) == (3_000, 0)

    for path in ("/api/v1/me/keys", "/api/v1/wallet", "/api/v1/pos/devices", "/api/v1/me"):
        answer = tablet.get(path)
        assert (answer.status_code, answer.json()["error"]) == (403, "counter_device"), path
    new_key = {"public_key": b64(SigningKey.generate().public_key), "label": "sneaky"}
    for path, body in (("/api/v1/me/keys", new_key), ("/api/v1/pos/devices", {"label": "x"})):
        answer = tablet.post(path, json=body)
        assert (answer.status_code, answer.json()["error"]) == (403, "counter_device"), path
    for path in ("/wallet", "/keys", "/send", "/pos/devices", "/pay/code"):
        page = _html(tablet, path, "fr")
        assert page.status_code == 403, path
        assert french(
            "This device is a shop's till: it takes payments and refunds, nothing else. "
            "The merchant signs in with their password on their own device for the rest."
        ) in page.text.replace("&#39;", "'").replace("&rsquo;", "’")
    assert len(_counter_keys(site, zoe)) == 1


def test_a_paired_device_sees_the_counter_only_and_logs_out(site: Any) -> None:
    """The tablet's menu holds the counter alone, its day lists sales without the wallet's
    receipt links (which it may not open), and it may end its own session."""
    zoe, camille = _shop(site), join(site, "Camille")
    fund(site, camille, 2_000)
    tablet = _paired(site, zoe)
    _pay(camille, _invoice(tablet, 700))

    counter = _html(tablet, "/pos/day")
    assert counter.status_code == 200
    menu = re.search(r"<nav>(.*?)</nav>", counter.text, re.S)
    assert menu is not None
    assert re.findall(r'<a href="(/[^"?]*)"', menu.group(1)) == ["/pos"]
    assert "/wallet/receipts/" not in counter.text
    assert "/wallet/receipts/" in _html(zoe, "/pos/day").text  # the merchant's own day has them
    assert "/pos/devices" in _html(zoe, "/pos").text  # and the merchant's menu is whole

    out = tablet.client.post("/logout", data={"csrf": tablet.csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert tablet.get("/api/v1/pos/day").status_code == 401
    assert _html(zoe, "/pos/day").status_code == 200  # the merchant's session is untouched


def test_a_pairing_code_pairs_one_device(site: Any) -> None:
    zoe = _shop(site)
    made = _code(zoe)
    first, _ = _send_code(site, made["code"])
    assert first.status_code == 201, first.text
    again, _ = _send_code(site, made["code"])
    assert (again.status_code, again.json()["error"]) == (409, "pairing_code_used")
    assert len(_counter_keys(site, zoe)) == 1
    page = new_client(site).get("/pos/pair", params={"code": made["code"]}, headers={**HTML, **FR})
    assert page.status_code == 409
    assert "Ce code d’appairage a déjà servi à un autre appareil" in page.text


def test_a_refused_key_leaves_the_code_to_use(site: Any) -> None:
    zoe = _shop(site)
    made = _code(zoe)
    client = new_client(site)
    taken = b64(zoe.key.public_key)  # type: ignore[union-attr]  (the merchant's phone's)
    for public_key, status, error in ((taken, 409, "key_exists"), ("AAAA", 422, "bad_public_key")):
        answer = client.post(
            "/api/v1/pos/pair", json={"code": made["code"], "public_key": public_key}
        )
        assert (answer.status_code, answer.json()["error"]) == (status, error)
        assert "sou_session" not in client.cookies
    assert _counter_keys(site, zoe) == []
    answer, tablet = _send_code(site, made["code"])
    assert answer.status_code == 201, answer.text
    assert tablet.get("/api/v1/pos/day").status_code == 200


def test_two_devices_racing_for_one_code_pair_once(site: Any) -> None:
    zoe = _shop(site)
    made = _code(zoe)
    start = threading.Barrier(2)
    answers: list[Any] = [None, None]

    def send(i: int) -> None:
        start.wait()
        answers[i] = _send_code(site, made["code"])[0]

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    lost = next(a for a in answers if a.status_code == 409)
    assert lost.json()["error"] == "pairing_code_used"
    assert len(_counter_keys(site, zoe)) == 1
    with site.app.state.node.ledger.reading() as conn:
        paired = conn.scalar(
            select(func.count())
            .select_from(counter_devices)
            .where(counter_devices.c.paired_ms.is_not(None))
        )
    assert paired == 1


def test_expired_unknown_and_mistyped_codes_are_refused_in_plain_words(site: Any) -> None:
    zoe = _shop(site)
    made = _code(zoe)
    with site.app.state.node.engine.begin() as conn:
        conn.execute(update(counter_devices).values(code_expires_ms=1))
    for code, status, error in (
        (made["code"], 410, "pairing_code_expired"),
        ("AAAAA-BBBBB", 404, "unknown_pairing_code"),
        ("ABC", 422, "bad_pairing_code"),
    ):
        answer, _ = _send_code(site, code)
        assert (answer.status_code, answer.json()["error"]) == (status, error), code
    expired, _ = _send_code(site, made["code"])
    assert expired.json()["message"].startswith("Ce code d’appairage a expiré (il dure 10 minutes)")
    page = new_client(site).get("/pos/pair", params={"code": made["code"]}, headers={**HTML, **FR})
    assert page.status_code == 410
    assert "Ce code d’appairage a expiré (il dure 10 minutes)" in page.text
    assert _counter_keys(site, zoe) == []


def test_unpairing_ends_the_session_and_the_key_at_once(site: Any) -> None:
    zoe, camille = _shop(site), join(site, "Camille")
    fund(site, camille, 5_000)
    tablet = _paired(site, zoe)
    sale = _pay(camille, _invoice(tablet, 1_000))
    assert sale.status_code == 201, sale.text
    refund = tablet.order("refund", to=camille.account, amount=100, ref=sale.json()["transfer_id"])
    (device,) = zoe.get("/api/v1/pos/devices").json()
    assert (device["label"], device["state"]) == ("Caisse 1", "paired")

    assert zoe.delete(f"/api/v1/pos/devices/{device['id']}").status_code == 204
    assert zoe.get("/api/v1/pos/devices").json() == []
    assert tablet.get("/api/v1/pos/day").status_code == 401
    assert tablet.post("/api/v1/pos/invoices", json={"amount": 100}).status_code == 401
    assert _html(tablet, "/pos", follow_redirects=False).status_code == 303
    # Its key is revoked: what it signed is refused, whoever sends it.
    through = zoe.post("/api/v1/pos/refunds", json=refund)
    assert (through.status_code, through.json()["error"]) == (403, "revoked_key")
    assert [r.revoked_ms is not None for r in _counter_keys(site, zoe)] == [True]
    assert zoe.delete(f"/api/v1/pos/devices/{device['id']}").status_code == 204  # again: same
    assert (camille.balance(), zoe.balance()) == (4_000, 1_000)


def test_the_merchants_page_pairs_and_removes_a_device_in_french(site: Any) -> None:
    zoe = _shop(site)
    listing = _html(zoe, "/pos/devices", "fr")
    assert listing.status_code == 200 and "Appareils de caisse" in listing.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', listing.text)
    assert csrf is not None
    made = zoe.client.post(
        "/pos/devices", data={"csrf": csrf.group(1), "label": "Caisse 1"}, headers={**HTML, **FR}
    )
    assert made.status_code == 200, made.text
    code = re.search(r'id="pairing-code">([A-Z2-9-]+)<', made.text)
    link = re.search(r'data-url="([^"]+)"', made.text)
    picture = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', made.text)
    assert code and link and picture
    assert link.group(1).endswith(f"/pos/pair?code={code.group(1)}")
    assert base64.b64decode(picture.group(1)).decode() == qr_svg(link.group(1))
    found = read_qr(qr_png(link.group(1)))
    assert [f.text for f in found] == [link.group(1)]

    opened = new_client(site).get(link.group(1).split("127.0.0.1", 1)[1], headers={**HTML, **FR})
    assert opened.status_code == 200
    assert "Cet appareil rejoint la caisse de Chez Zoé sous le nom Caisse 1." in opened.text
    tablet = _send_code(site, code.group(1))[1]
    assert tablet.get("/api/v1/pos/day").status_code == 200

    device_id = zoe.get("/api/v1/pos/devices").json()[0]["id"]
    removed = zoe.client.post(
        f"/pos/devices/{device_id}/remove",
        data={"csrf": csrf.group(1)},
        headers={**HTML, **FR},
        follow_redirects=True,
    )
    assert removed.status_code == 200
    assert "Appareil retiré\u202f: il ne peut plus encaisser." in removed.text
    assert "Aucun appareil n’est appairé à la caisse." in removed.text
    assert tablet.get("/api/v1/pos/day").status_code == 401
    refused = zoe.client.post(
        "/pos/devices", data={"csrf": csrf.group(1), "label": " "}, headers={**HTML, **FR}
    )
    assert refused.status_code == 422
    assert "Nommez l’appareil en une ligne de 80 caractères au plus" in refused.text


def test_only_the_merchant_by_password_pairs(site: Any) -> None:
    zoe, camille = _shop(site), join(site, "Camille")
    token = zoe.post("/api/v1/me/tokens", json={"scope": "wallet", "label": "script"}).json()
    by_token = new_client(site).post(
        "/api/v1/pos/devices",
        json={"label": "Caisse 1"},
        headers={"Authorization": f"Bearer {token['token']}"},
    )
    assert (by_token.status_code, by_token.json()["error"]) == (403, "token_scope")
    resident = camille.post("/api/v1/pos/devices", json={"label": "Caisse 1"})
    assert (resident.status_code, resident.json()["error"]) == (403, "forbidden")
    unapproved = _shop(site, "Léa", approved=False)
    closed = unapproved.post("/api/v1/pos/devices", json={"label": "Caisse 1"})
    assert closed.status_code == 409, closed.text


def test_every_message_of_counter_devices_has_its_french() -> None:
    from tests.test_pages import ROOT, assert_all_french

    msgids: set[str] = set()
    for path in (ROOT / "pos" / "devices").glob("*.py"):
        msgids |= python_msgids(path)
    for path in (ROOT / "web" / "templates" / "pos").glob("devices*.html"):
        msgids |= template_msgids(path)
    msgids.add("Counter devices")  # the menu's
    assert len(msgids) > 30
    assert_all_french(msgids)


def test_the_migration_makes_the_tables_the_models_describe(engine: Any) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import pos.devices.models  # noqa: F401  (its table on the metadata)
    from ledger.models import metadata

    def ours(obj: Any, _name: str | None, type_: str, _reflected: bool, _other: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is not None and table.name in ("sessions", "counter_devices")

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": ours}
        )
        assert compare_metadata(context, metadata) == []
