"""Codes customers show: an authorisation signed on the customer's device, collected by a
shop up to its cap, once; the ledger checks both signatures, the audit too."""

from __future__ import annotations

import threading
import time
from typing import Any

from audits.audit import audit
from ledger.canonical import b64, canonical
from ledger.signing import SigningKey
from tests.people import Person, fund, join
from tests.test_pos import _shop


def _auth(
    person: Person, cap: int, *, ttl: int = 120, key: SigningKey | None = None, **extra: Any
) -> dict[str, str]:
    signer = key or person.key
    assert signer is not None
    node = person.client.app.state.node  # type: ignore[attr-defined]
    fields = {
        "v": 1,
        "node": node.ledger.origin,
        "kind": "authorisation",
        "id": f"auth-{time.monotonic_ns()}",
        "key": signer.key_id,
        "from": person.account,
        "cap": cap,
        "currency": "SOU",
        "expires": int(time.time()) + ttl,
        **extra,
    }
    message = canonical(fields)
    return {"auth": b64(message), "auth_sig": b64(signer.sign_bytes(message))}


def _show(person: Person, cap: int, **kw: Any) -> dict[str, Any]:
    answer = person.post("/api/v1/pay/authorisations", json=_auth(person, cap, **kw))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _collect(shop: Person, code: str, cents: int, **overrides: Any) -> Any:
    seen = shop.get(f"/api/v1/pos/authorisations/{code}")
    assert seen.status_code == 200, seen.text
    found = seen.json()
    fields = {
        "from_": found["payer"],
        "to": shop.account,
        "amount": cents,
        "auth": found["auth"],
        "auth_sig": found["auth_sig"],
        "expires": found["expires_ms"] // 1000,
        **overrides,
    }
    return shop.post("/api/v1/pos/collections", json=shop.order("collection", **fields))


def test_a_shop_collects_up_to_the_cap_once(site: Any) -> None:
    zoe, camille = _shop(site), join(site, "Camille")
    fund(site, camille, 5000)
    shown = _show(camille, 2000)
    assert shown["state"] == "open" and shown["url"].endswith(f"/c/{shown['code']}")
    seen = zoe.get(f"/api/v1/pos/authorisations/{shown['code'].lower()}").json()
    assert (seen["payer_name"], seen["cap"]) == ("Camille", 2000)

    over = _collect(zoe, shown["code"], 2001)
    assert (over.status_code, over.json()["error"]) == (422, "over_cap")
    taken = _collect(zoe, shown["code"], 820)
    assert taken.status_code == 201, taken.text
    again = zoe.get(f"/api/v1/pos/authorisations/{shown['code']}")
    assert (again.status_code, again.json()["error"]) == (409, "authorisation_used")
    state = camille.get(f"/api/v1/pay/authorisations/{shown['code']}").json()
    assert (state["state"], state["collected"], state["collected_by"]) == ("used", 820, "Chez Zoé")
    assert (camille.balance(), zoe.balance()) == (5000 - 820, 820)
    # The shop refunds a collection as it refunds a payment, up to what it took.
    ref = taken.json()["transfer_id"]
    back = zoe.post(
        "/api/v1/pos/refunds", json=zoe.order("refund", to=camille.account, amount=820, ref=ref)
    )
    assert back.status_code == 201, back.text
    more = zoe.post(
        "/api/v1/pos/refunds", json=zoe.order("refund", to=camille.account, amount=1, ref=ref)
    )
    assert (more.status_code, more.json()["error"]) == (409, "refund_too_large")
    day = zoe.get("/api/v1/pos/day").json()
    assert [(i["kind"], i["amount"]) for i in day["items"]] == [
        ("collection", 820),
        ("refund", -820),
    ]
    assert audit(site.app.state.node.engine).ok


def test_two_shops_racing_for_one_code_take_it_once(site: Any) -> None:
    zoe, lea, camille = _shop(site), _shop(site, "Léa"), join(site, "Camille")
    fund(site, camille, 5000)
    shown = _show(camille, 1000)
    found = zoe.get(f"/api/v1/pos/authorisations/{shown['code']}").json()
    orders = [
        shop.order(
            "collection",
            from_=found["payer"],
            to=shop.account,
            amount=1000,
            auth=found["auth"],
            auth_sig=found["auth_sig"],
            expires=found["expires_ms"] // 1000,
        )
        for shop in (zoe, lea)
    ]
    start = threading.Barrier(2)
    answers: list[Any] = [None, None]

    def collect(i: int, shop: Person) -> None:
        start.wait()
        answers[i] = shop.post("/api/v1/pos/collections", json=orders[i])

    threads = [threading.Thread(target=collect, args=(i, s)) for i, s in enumerate((zoe, lea))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert camille.balance() == 4000 and zoe.balance() + lea.balance() == 1000


def test_what_the_ledger_refuses_in_a_collection(site: Any) -> None:
    zoe, lea, camille, remi = (
        _shop(site),
        _shop(site, "Léa"),
        join(site, "Camille"),
        join(site, "Rémi"),
    )
    fund(site, camille, 5000)
    # Made for another shop.
    for_lea = _show(camille, 500, to=lea.account)
    answer = zoe.get(f"/api/v1/pos/authorisations/{for_lea['code']}")
    assert (answer.status_code, answer.json()["error"]) == (409, "other_shop")
    # Signed by someone else's key for Camille's account: refused when shown.
    forged = _auth(camille, 500, key=remi.key)
    answer = camille.post("/api/v1/pay/authorisations", json=forged)
    assert (answer.status_code, answer.json()["error"]) == (403, "wrong_signer")
    # Shown by another member than the one it takes from.
    answer = remi.post("/api/v1/pay/authorisations", json=_auth(camille, 500))
    assert (answer.status_code, answer.json()["error"]) == (403, "not_your_wallet")
    # Altered after signing: the signature no longer matches.
    good = _auth(camille, 500)
    bad = {**good, "auth": _auth(camille, 50_000)["auth"]}
    answer = camille.post("/api/v1/pay/authorisations", json=bad)
    assert (answer.status_code, answer.json()["error"]) == (403, "bad_signature")
    # Too long a life.
    answer = camille.post("/api/v1/pay/authorisations", json=_auth(camille, 500, ttl=3600))
    assert (answer.status_code, answer.json()["error"]) == (422, "bad_authorisation")
    # A collection straight to the ledger, past the counter's checks: the shop cannot
    # raise the cap, nor collect for another.
    node = site.app.state.node
    from ledger.signing import SignedOrder

    shown = _show(camille, 500)
    found = zoe.get(f"/api/v1/pos/authorisations/{shown['code']}").json()
    common = {
        "auth": found["auth"],
        "auth_sig": found["auth_sig"],
        "expires": found["expires_ms"] // 1000,
    }
    too_much = zoe.order("collection", from_=camille.account, to=zoe.account, amount=501, **common)
    outcome = node.ledger.post([SignedOrder.from_json(too_much)])[0]
    assert outcome.code == "invalid_order" and outcome.params["field"] == "amount"
    as_lea = zoe.order("collection", from_=camille.account, to=lea.account, amount=100, **common)
    outcome = node.ledger.post([SignedOrder.from_json(as_lea)])[0]
    assert outcome.code == "wrong_signer"
    assert camille.balance() == 5000
    assert audit(node.engine).ok


def test_a_revoked_key_authorises_nothing(site: Any) -> None:
    zoe, camille = _shop(site), join(site, "Camille")
    fund(site, camille, 5000)
    shown = _show(camille, 500)
    assert camille.delete(f"/api/v1/me/keys/{camille.key.key_id}").status_code in (200, 204)  # type: ignore[union-attr]
    camille.add_key()
    answer = _collect(zoe, shown["code"], 500)
    assert (answer.status_code, answer.json()["error"]) == (403, "revoked_key")
    assert camille.balance() == 5000


def test_a_code_made_for_one_shop_is_collected_by_that_shop_only(site: Any) -> None:
    zoe, lea, camille = _shop(site), _shop(site, "Léa"), join(site, "Camille")
    fund(site, camille, 5000)
    shown = _show(camille, 1500, to=lea.account)
    found = lea.get(f"/api/v1/pos/authorisations/{shown['code']}").json()
    # Zoé read the code off the customer's screen and sends a collection of her own.
    order = zoe.order(
        "collection",
        from_=camille.account,
        to=zoe.account,
        amount=1000,
        auth=found["auth"],
        auth_sig=found["auth_sig"],
        expires=found["expires_ms"] // 1000,
    )
    refused = zoe.post("/api/v1/pos/collections", json=order)
    assert (refused.status_code, refused.json()["error"]) == (409, "other_shop")
    assert (camille.balance(), zoe.balance()) == (5000, 0)
    taken = _collect(lea, shown["code"], 1000)
    assert taken.status_code == 201, taken.text
    assert (camille.balance(), lea.balance()) == (4000, 1000)
    # A shop the association has not approved cannot be named.
    pending = _shop(site, "Noé", approved=False)
    answer = camille.post(
        "/api/v1/pay/authorisations", json=_auth(camille, 500, to=pending.account)
    )
    assert (answer.status_code, answer.json()["error"]) == (409, "shop_not_open")
