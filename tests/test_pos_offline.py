"""Offline allowances: units a member sets aside, a certificate a shop offline checks with
the node's key alone, collections sent later applied once, and a double spend across two
shops refused and attributable."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text

from audits.audit import audit
from ledger.operations import allowance_escrow
from runtime.links import check_link
from tests.people import Person, fund, join, movements_of
from tests.test_pos import _shop
from tests.test_pos_codes import _auth


def _hold(person: Person, cents: int) -> dict[str, Any]:
    assert person.key is not None
    order = person.order("allowance_hold", to=allowance_escrow(person.account), amount=cents)
    answer = person.post("/api/v1/pay/allowance", json={**order, "device_key": person.key.key_id})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _collect_offline(shop: Person, payer: Person, auth: dict[str, str], cents: int) -> Any:
    """What a point of sale offline queued, sent once it is back."""
    order = shop.order(
        "collection",
        from_=allowance_escrow(payer.account),
        to=shop.account,
        amount=cents,
        **auth,
        expires=int(time.time()) + 3600,
    )
    return shop.post("/api/v1/pos/collections", json=order)


def test_a_certificate_lets_shops_offline_check_and_collect_later(site: Any) -> None:
    zoe, camille = _shop(site), join(site, "Camille")
    fund(site, camille, 5000)
    held = _hold(camille, 3000)
    cert = held["certificate"]
    assert (held["balance"], cert["cap"], cert["member"]) == (3000, 3000, camille.id)
    fields = {k: v for k, v in cert.items() if k != "sig"}
    check_link(site.app.state.node, "allowance", fields, cert["sig"])  # the node's key alone
    assert camille.balance() == 2000

    auth = _auth(camille, 1200, ttl=2 * 86_400, to=zoe.account)
    taken = _collect_offline(zoe, camille, auth, 1200)
    assert taken.status_code == 201, taken.text
    again = _collect_offline(zoe, camille, auth, 1200)  # the queue sent it twice
    assert (again.status_code, again.json()["error"]) == (409, "authorisation_used")
    assert zoe.balance() == 1200
    assert camille.get("/api/v1/pay/allowance").json()["balance"] == 1800
    assert audit(site.app.state.node.engine).ok
    # Each wallet names the other side in words: her own allowance, the shop's customer.
    assert "Mis de côté · à votre allocation hors ligne" in movements_of(camille, "fr")
    assert "Put aside · to your offline allowance" in movements_of(camille, "en")
    taken_by_zoe = movements_of(zoe, "fr")
    assert "Paiement en caisse · de Camille" in taken_by_zoe, taken_by_zoe
    assert "escrow:" not in taken_by_zoe


def test_a_double_spend_across_two_shops_is_refused_and_attributable(site: Any) -> None:
    zoe, lea, camille = _shop(site), _shop(site, "Léa"), join(site, "Camille")
    fund(site, camille, 5000)
    _hold(camille, 1000)
    first = _collect_offline(zoe, camille, _auth(camille, 800, ttl=86_400), 800)
    assert first.status_code == 201, first.text
    second = _collect_offline(lea, camille, _auth(camille, 800, ttl=86_400), 800)
    refused = second.json()
    assert (second.status_code, refused["error"]) == (409, "insufficient_funds")
    assert refused["account"] == allowance_escrow(camille.account)  # whose allowance
    assert (zoe.balance(), lea.balance(), camille.balance()) == (800, 0, 4000)


def test_the_allowance_comes_back_once_no_certificate_is_live(site: Any) -> None:
    camille = join(site, "Camille")
    fund(site, camille, 5000)
    _hold(camille, 1500)
    early = camille.post("/api/v1/pay/allowance/release")
    assert (early.status_code, early.json()["error"]) == (409, "certificate_live")
    with site.app.state.node.engine.begin() as conn:
        conn.execute(text("UPDATE pos_certificates SET expires_ms = 1"))
    back = camille.post("/api/v1/pay/allowance/release")
    assert back.status_code == 200, back.text
    assert (back.json()["balance"], camille.balance()) == (0, 5000)
    assert "Repris · de votre allocation hors ligne" in movements_of(camille, "fr")
    assert audit(site.app.state.node.engine).ok


def test_what_an_allowance_refuses(site: Any) -> None:
    zoe, camille, remi = _shop(site), join(site, "Camille"), join(site, "Rémi")
    fund(site, camille, 5000)
    none = camille.post(f"/api/v1/pay/allowance/certificate?key={camille.key.key_id}")  # type: ignore[union-attr]
    assert (none.status_code, none.json()["error"]) == (409, "no_allowance")
    _hold(camille, 500)
    other = camille.post(f"/api/v1/pay/allowance/certificate?key={remi.key.key_id}")  # type: ignore[union-attr]
    assert (other.status_code, other.json()["error"]) == (403, "not_your_device")
    # Setting aside into someone else's allowance, or taking from it for another member.
    order = camille.order("allowance_hold", to=allowance_escrow(remi.account), amount=100)
    answer = camille.post("/api/v1/pay/allowance", json={**order, "device_key": camille.key.key_id})  # type: ignore[union-attr]
    assert answer.status_code == 422, answer.text
    auth = _auth(remi, 100, ttl=3600)
    stolen = zoe.post(
        "/api/v1/pos/collections",
        json=zoe.order(
            "collection",
            from_=allowance_escrow(camille.account),
            to=zoe.account,
            amount=100,
            **auth,
            expires=int(time.time()) + 600,
        ),
    )
    assert stolen.status_code == 422, stolen.text
    assert camille.get("/api/v1/pay/allowance").json()["balance"] == 500
