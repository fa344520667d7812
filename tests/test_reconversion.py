"""Reconversion: a merchant turns units back into euros for a fee; the treasurer pays the
euros out or rejects the request — the quote's arithmetic, the signed request, the
decisions, the refusals, and the pages."""

from __future__ import annotations

import threading
import uuid
from fractions import Fraction
from math import ceil, floor
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from audits.audit import audit
from ledger import repository as ledger_repo
from ledger.models import transfers
from ledger.signing import SignedOrder
from members import repository as members_repo
from members.access import forget_principals
from merchants.models import reconversions
from merchants.service import quote
from runtime.settings import Settings
from runtime.signing import post, sign_as
from tests.people import Person, join, new_client, operator
from tests.test_office import cash_in, deposit, reading
from web.refusals import Refusal


def node_of(site: Any) -> Any:
    return site.app.state.node


def state(site: Any) -> tuple[dict[str, int], int, int]:
    """Every balance, the number of transfers and of reconversion rows."""
    with node_of(site).ledger.reading() as conn:
        count = conn.scalar(select(func.count()).select_from(transfers))
        rows = conn.scalar(select(func.count()).select_from(reconversions))
        return ledger_repo.balances(conn), int(count or 0), int(rows or 0)


def balance(site: Any, code: str) -> int:
    return int(node_of(site).ledger.balance(code))


def with_units(site: Any, cents: int, name: str = "Boulangerie", role: str = "merchant") -> Person:
    """A member holding `cents` units bought with cash at the office, the cash then taken
    to the bank: the reserve holds the euros a reconversion pays out."""
    person, office = join(site, name, role), operator(site, "office")
    assert cash_in(office, person.id, cents).status_code == 201
    assert deposit(office, cents).status_code == 201
    return person


def ask(person: Person, amount: int, fee: Any, cause_fee: Any = 0, **fields: Any) -> Any:
    envelope = person.order("redemption", amount=amount, fee=fee, cause_fee=cause_fee, **fields)
    return person.post("/api/v1/reconversions", json=envelope)


def audit_is_clean(site: Any) -> None:
    node = node_of(site)
    report = audit(node.engine, node_public_key=node.node_key.public_key, workers=1)
    assert report.ok, report.findings


# -- the quote -----------------------------------------------------------------------------


def settings(bps: int = 300, share: int = 0, **more: Any) -> Settings:
    return Settings(reconversion_fee_bps=bps, reconversion_cause_share=share, **more)


def test_quote_rounds_the_fee_up_and_the_cause_down() -> None:
    plain = quote(settings(), 10_000)
    assert (plain.fee, plain.cause_fee, plain.association_fee, plain.net) == (300, 0, 300, 9_700)
    odd = quote(settings(), 1_001)  # 3 % of 10.01 is 30.03 cents: 31
    assert (odd.fee, odd.net) == (31, 970)
    split = quote(settings(share=50), 1_001)  # half of 31 cents: 15 to the cause, 16 kept
    assert (split.fee, split.cause_fee, split.association_fee) == (31, 15, 16)
    assert quote(settings(share=100), 1_001).cause_fee == 31
    assert quote(settings(bps=0, share=100), 1_001).fee == 0
    assert quote(settings(), 2).fee == 1  # the smallest request
    for amount, code in ((1, "amount_too_small"), (0, "bad_amount"), (-5, "bad_amount")):
        with pytest.raises(Refusal) as refused:
            quote(settings(), amount)
        assert refused.value.code == code
    with pytest.raises(Refusal) as refused:
        quote(settings(max_amount=5_000), 5_001)
    assert refused.value.code == "amount_too_large"


@given(
    amount=st.integers(min_value=2, max_value=1_000_000),
    bps=st.integers(min_value=0, max_value=500),
    share=st.integers(min_value=0, max_value=100),
)
def test_quote_matches_exact_fractions(amount: int, bps: int, share: int) -> None:
    found = quote(settings(bps, share), amount)
    fee = ceil(Fraction(amount * bps, 10_000))
    assert found.fee == fee
    assert found.cause_fee == floor(Fraction(fee * share, 100))
    assert 0 <= found.cause_fee <= found.fee < amount
    assert found.net + found.fee == amount and found.net >= 1


def test_quote_endpoint_for_who_may_reconvert(site) -> None:
    merchant, resident = join(site, "Boulangerie", "merchant"), join(site, "Camille")
    node_of(site).settings.reconversion_cause_share = 50
    node_of(site).settings.cause_name = "École du village"
    answer = merchant.get("/api/v1/reconversions/quote", params={"amount": 1_001})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "amount": 1_001,
        "fee": 31,
        "cause_fee": 15,
        "association_fee": 16,
        "net": 970,
        "currency": "SOU",
        "fee_bps": 300,
        "cause_share": 50,
        "cause_name": "École du village",
    }
    assert merchant.get("/api/v1/reconversions/quote", params={"amount": 0}).status_code == 422
    assert merchant.get("/api/v1/reconversions/quote", params={"amount": 1}).status_code == 422
    assert merchant.get("/api/v1/reconversions/quote", params={"amount": "1.5"}).status_code == 422
    assert resident.get("/api/v1/reconversions/quote", params={"amount": 1_000}).status_code == 403
    treasurer = operator(site, "treasurer")
    assert treasurer.get("/api/v1/reconversions/quote", params={"amount": 1_000}).status_code == 403


# -- asking --------------------------------------------------------------------------------


def test_request_takes_the_units_out_at_once_and_keeps_the_backing(site) -> None:
    shop = with_units(site, 10_000)
    node_of(site).settings.reconversion_cause_share = 50
    reserve, issued = balance(site, "reserve:digital"), balance(site, "issuance:digital")
    answer = ask(shop, 5_000, 150, 75)
    assert answer.status_code == 201, answer.text
    done = answer.json()
    assert (done["status"], done["amount"], done["fee"], done["net"]) == (
        "pending",
        5_000,
        150,
        4_850,
    )
    assert shop.balance() == 5_000
    assert balance(site, "payouts:pending") == 4_850
    assert balance(site, "reserve:digital") == reserve - 4_850
    assert balance(site, "issuance:digital") == issued + 4_850  # units out of circulation
    assert (balance(site, "association:fees"), balance(site, "association:cause")) == (75, 75)
    mine = shop.get("/api/v1/reconversions").json()
    assert [(r["id"], r["status"]) for r in mine] == [(done["id"], "pending")]
    audit_is_clean(site)


def test_the_treasurer_pays_with_the_bank_reference_once(site) -> None:
    shop, treasurer = with_units(site, 10_000), operator(site, "treasurer")
    request = ask(shop, 10_000, 300).json()
    queue = treasurer.get("/api/v1/treasury/reconversions").json()
    assert [(r["id"], r["trade_name"], r["net"]) for r in queue] == [
        (request["id"], "Chez Boulangerie", 9_700)
    ]
    external = balance(site, "external:eur")
    paid = treasurer.post(
        f"/api/v1/treasury/reconversions/{request['id']}/paid", json={"bank_ref": "VIR-2026-11-01"}
    )
    assert paid.status_code == 200, paid.text
    assert (paid.json()["status"], paid.json()["bank_ref"]) == ("paid", "VIR-2026-11-01")
    assert paid.json()["decided_by"] == treasurer.id
    with node_of(site).ledger.reading() as conn:
        payout = ledger_repo.transfers_by_id(conn, [paid.json()["decision_id"]])
    payout_order = payout[paid.json()["decision_id"]]
    assert (payout_order.kind, payout_order.initiator) == ("payout", "role:treasurer")
    assert payout_order.client_id == f"reconversion-{request['id']}-payout"
    assert payout_order.fields["bank_ref"] == "VIR-2026-11-01"
    assert balance(site, "payouts:pending") == 0
    assert balance(site, "external:eur") == external + 9_700
    before = state(site)
    for decision, body in (("paid", {"bank_ref": "VIR-AGAIN"}), ("rejected", {"reason": "no"})):
        twice = treasurer.post(
            f"/api/v1/treasury/reconversions/{request['id']}/{decision}", json=body
        )
        assert (twice.status_code, twice.json()["error"]) == (409, "already_decided")
    assert state(site) == before
    assert shop.get("/api/v1/reconversions").json()[0]["bank_ref"] == "VIR-2026-11-01"
    listed = treasurer.get("/api/v1/treasury/reconversions", params={"status": "paid"}).json()
    assert [r["id"] for r in listed] == [request["id"]]
    assert treasurer.get("/api/v1/treasury/reconversions").json() == []
    audit_is_clean(site)


def test_a_rejected_request_gives_every_unit_back(site) -> None:
    shop, treasurer = with_units(site, 8_000), operator(site, "treasurer")
    node_of(site).settings.reconversion_cause_share = 100
    request = ask(shop, 8_000, 240, 240).json()
    assert shop.balance() == 0 and balance(site, "association:cause") == 240
    rejected = treasurer.post(
        f"/api/v1/treasury/reconversions/{request['id']}/rejected",
        json={"reason": "Bank details\nmissing"},
    )
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["reason"]) == (
        "rejected",
        "Bank details missing",
    )
    assert shop.balance() == 8_000  # fee included
    assert (balance(site, "association:cause"), balance(site, "payouts:pending")) == (0, 0)
    before = state(site)
    for decision, body in (("rejected", {"reason": "again"}), ("paid", {"bank_ref": "VIR-1"})):
        twice = treasurer.post(
            f"/api/v1/treasury/reconversions/{request['id']}/{decision}", json=body
        )
        assert twice.status_code == 409, twice.text
    assert state(site) == before
    assert shop.get("/api/v1/reconversions").json()[0]["reason"] == "Bank details missing"
    audit_is_clean(site)


def test_decisions_are_the_treasurers_alone(site) -> None:
    shop = with_units(site, 1_000)
    request = ask(shop, 1_000, 30).json()
    before = state(site)
    for who in (shop, operator(site, "office"), operator(site, "admin")):
        assert who.get("/api/v1/treasury/reconversions").status_code == 403
        path = f"/api/v1/treasury/reconversions/{request['id']}"
        assert who.post(f"{path}/paid", json={"bank_ref": "X"}).status_code == 403
        assert who.post(f"{path}/rejected", json={"reason": "X"}).status_code == 403
    treasurer = operator(site, "treasurer")
    assert (
        treasurer.post(
            "/api/v1/treasury/reconversions/999999/paid", json={"bank_ref": "X"}
        ).status_code
        == 404
    )
    blank = treasurer.post(
        f"/api/v1/treasury/reconversions/{request['id']}/paid", json={"bank_ref": "   "}
    )
    assert (blank.status_code, blank.json()["error"]) == (422, "bank_ref_missing")
    assert state(site) == before


def test_residents_reconvert_only_where_the_association_allows_it(site) -> None:
    camille = with_units(site, 2_000, "Camille", "resident")
    before = state(site)
    refused = ask(camille, 1_000, 30)
    assert (refused.status_code, refused.json()["error"]) == (403, "reconversion_not_allowed")
    assert state(site) == before and camille.balance() == 2_000
    node_of(site).settings.residents_may_reconvert = True
    assert ask(camille, 1_000, 30).status_code == 201
    assert camille.balance() == 1_000


@pytest.mark.parametrize(
    ("fee", "cause_fee", "share"),
    [
        (0, 0, 0),  # no fee at all
        (29, 0, 0),  # rounded down
        (31, 0, 0),  # more than the quote is refused too: the quote is exact
        (30.0, 0, 0),  # a float is never an amount
        ("30", 0, 0),
        (True, 0, 0),
        (30, 15, 0),  # a cause's part where there is none
        (30, 0, 50),  # the cause's part left out: it goes to the association
        (30, 16, 50),
        (30, None, 50),
    ],
)
def test_fee_tampering_is_refused_and_changes_nothing(
    site, fee: Any, cause_fee: Any, share: int
) -> None:
    shop = with_units(site, 5_000)
    node_of(site).settings.reconversion_cause_share = share
    before = state(site)
    answer = ask(shop, 1_000, fee, cause_fee)
    assert (answer.status_code, answer.json()["error"]) == (422, "fee_mismatch"), answer.text
    assert answer.json()["expected_fee"] == 30
    assert answer.json()["expected_cause_fee"] == (15 if share else 0)
    assert state(site) == before
    assert ask(shop, 1_000, 30, 15 if share else 0).status_code == 201


def test_other_bad_requests_are_refused_and_change_nothing(site) -> None:
    shop, other = with_units(site, 5_000), with_units(site, 5_000, "Epicerie")
    node = node_of(site)
    before = state(site)
    payment = shop.order("payment", to=other.account, amount=100)
    cases = [
        (shop.post("/api/v1/reconversions", json=payment), 422, "bad_kind"),
        (ask(shop, 1_000, 30, from_=other.account), 403, "not_your_wallet"),
        (ask(shop, 6_000, 180), 409, "insufficient_funds"),
        (ask(shop, 1_000.0, 30), 422, "bad_amount"),
        (ask(shop, 1_000, 30, currency="EUR"), 422, "invalid_order"),
        (ask(other, 1_000, 30, from_=other.account, memo="x" * 300), 422, "invalid_order"),
        (shop.post("/api/v1/reconversions", json={**payment, "sig": "not base64!"}), 422, None),
        (operator(site, "office").post("/api/v1/reconversions", json=payment), 403, "forbidden"),
    ]
    for answer, status, code in cases:
        assert answer.status_code == status, answer.text
        if code:
            assert answer.json()["error"] == code, answer.text
    with node.engine.begin() as conn:
        members_repo.update_member(conn, shop.id, frozen_reason="card dispute 42")
    forget_principals(node)  # as a freeze made by the node does
    frozen = ask(shop, 1_000, 30)
    assert (frozen.status_code, frozen.json()["error"]) == (403, "wallet_frozen")
    node.settings.membership_required = True
    lapsed = ask(other, 1_000, 30)
    assert (lapsed.status_code, lapsed.json()["error"]) == (403, "membership_lapsed")
    assert state(site) == before


def test_the_reserve_must_hold_the_euros(site) -> None:
    """Units bought at the office are backed by its till until the cash reaches the bank:
    the reconversion waits for the deposit, in plain words."""
    shop, office = join(site, "Boulangerie", "merchant"), operator(site, "office")
    assert cash_in(office, shop.id, 5_000).status_code == 201
    before = state(site)
    short = ask(shop, 5_000, 150)
    assert (short.status_code, short.json()["error"]) == (409, "reserve_short")
    assert state(site) == before
    assert deposit(office, 5_000).status_code == 201
    assert ask(shop, 5_000, 150).status_code == 201


def test_the_same_order_is_one_reconversion_even_sent_at_once(site) -> None:
    shop = with_units(site, 9_000)
    envelope = shop.order("redemption", amount=3_000, fee=90, cause_fee=0)
    clients = [new_client(site) for _ in range(4)]
    for client in clients:
        client.cookies.update(shop.client.cookies)
    start, answers = threading.Barrier(len(clients)), [None] * len(clients)

    def send(i: int) -> None:
        start.wait()
        answers[i] = clients[i].post("/api/v1/reconversions", json=envelope, headers=shop.headers())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(a is not None and a.status_code in (200, 201) for a in answers), answers
    assert len({a.json()["id"] for a in answers}) == 1  # type: ignore[union-attr]
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]  # type: ignore[union-attr]
    again = shop.post("/api/v1/reconversions", json=envelope)  # the phone retries later
    assert again.status_code == 200 and again.json()["replayed"]
    assert shop.balance() == 6_000
    assert len(shop.get("/api/v1/reconversions").json()) == 1
    other = {**envelope, "order": {**envelope["order"], "amount": 1_000, "fee": 30}}
    other = shop.key.sign(other["order"]).to_json()  # type: ignore[union-attr]
    clash = shop.post("/api/v1/reconversions", json=other)
    assert (clash.status_code, clash.json()["error"]) == (409, "idempotency_conflict")
    assert shop.balance() == 6_000


def test_a_redemption_without_its_row_is_found_and_decided(site) -> None:
    """The node died between the redemption and the reconversion row (and, for another,
    between the payout and its record): the listings rebuild both from the ledger."""
    shop, treasurer = with_units(site, 9_000), operator(site, "treasurer")
    node = node_of(site)
    lost = post(node, SignedOrder.from_json(shop.order("redemption", amount=3_000, fee=90)))
    paid = post(node, SignedOrder.from_json(shop.order("redemption", amount=2_000, fee=60)))
    post(
        node,
        sign_as(
            node,
            "role:treasurer",
            "payout",
            "by-hand-1",
            ref=paid.transfer_id,
            amount=1_940,
            bank_ref="VIR-HAND",
        ),
    )
    mine = {r["redemption_id"]: r for r in shop.get("/api/v1/reconversions").json()}
    assert mine[lost.transfer_id]["status"] == "pending"
    assert (mine[paid.transfer_id]["status"], mine[paid.transfer_id]["bank_ref"]) == (
        "paid",
        "VIR-HAND",
    )
    queue = treasurer.get("/api/v1/treasury/reconversions").json()
    assert [r["redemption_id"] for r in queue] == [lost.transfer_id]
    decided = treasurer.post(
        f"/api/v1/treasury/reconversions/{queue[0]['id']}/paid", json={"bank_ref": "VIR-2"}
    )
    assert decided.status_code == 200, decided.text
    assert balance(site, "payouts:pending") == 0
    audit_is_clean(site)


# -- pages ---------------------------------------------------------------------------------


def test_reconversion_page_in_french_and_english_for_who_may_reconvert(site) -> None:
    shop = with_units(site, 4_000)
    ask(shop, 1_000, 30)
    node_of(site).settings.reconversion_cause_share = 25
    node_of(site).settings.cause_name = "l’école"
    french = reading(shop, "fr").get("/reconversion")
    assert french.status_code == 200
    assert "Reconvertir des unités en euros" in french.text
    assert "En attente de paiement" in french.text and "l’école" in french.text
    assert "/static/reconversion.js" in french.text and shop.id in french.text
    english = reading(shop, "en").get("/reconversion")
    assert "Reconvert units to euros" in english.text and "Waiting for payment" in english.text
    assert "3 %" in english.text
    camille = join(site, "Camille")
    for who in (camille, operator(site, "office"), operator(site, "treasurer")):
        assert reading(who, "en").get("/reconversion").status_code == 403
    node_of(site).settings.residents_may_reconvert = True
    assert reading(camille, "en").get("/reconversion").status_code == 200
    anonymous = new_client(site).get("/reconversion", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_treasurer_page_pays_and_rejects_with_its_forms(site) -> None:
    shop, treasurer = with_units(site, 6_000), operator(site, "treasurer")
    first, second = ask(shop, 3_000, 90).json(), ask(shop, 2_000, 60).json()
    french = reading(treasurer, "fr").get("/treasurer")
    assert french.status_code == 200 and "Reconversions à payer" in french.text
    assert f'id="paid-{first["id"]}"' in french.text and "/treasurer/offices" in french.text
    english = reading(treasurer, "en").get("/treasurer")
    assert "Reconversions to pay" in english.text and "Chez Boulangerie" in english.text
    form = {"csrf": treasurer.csrf, "reconversion_id": str(first["id"])}
    paid = reading(treasurer, "en").post(
        "/treasurer", data={**form, "decision": "paid", "bank_ref": "VIR-77"}
    )
    assert paid.status_code == 200, paid.text
    assert f"Request {first['id']} marked paid (VIR-77)." in paid.text
    form["reconversion_id"] = str(second["id"])
    rejected = reading(treasurer, "fr").post(
        "/treasurer", data={**form, "decision": "rejected", "reason": "IBAN manquant"}
    )
    assert rejected.status_code == 200 and "IBAN manquant" in rejected.text
    assert f"Demande {second['id']} refusée" in rejected.text
    assert shop.balance() == 1_000 + 2_000
    before = state(site)
    twice = treasurer.post("/treasurer", data={**form, "decision": "paid", "bank_ref": "VIR-78"})
    assert twice.status_code == 409
    for bad in ({"decision": "refund"}, {"reconversion_id": "x"}, {"csrf": "forged"}):
        assert treasurer.client.post("/treasurer", data={**form, **bad}).status_code in (
            403,
            404,
            422,
        )
    statuses = {r["id"]: r["status"] for r in shop.get("/api/v1/reconversions").json()}
    assert statuses == {first["id"]: "paid", second["id"]: "rejected"}
    for who in (shop, operator(site, "office"), operator(site, "admin")):
        assert reading(who, "en").get("/treasurer").status_code == 403
        answer = who.post("/treasurer", data={**form, "csrf": who.csrf, "decision": "paid"})
        assert answer.status_code == 403
    assert state(site) == before


def test_fresh_ids_make_fresh_requests(site) -> None:
    """Two orders of the same amount are two requests: the id, not the amount, decides."""
    shop = with_units(site, 2_000)
    ids = {ask(shop, 1_000, 30, client_id=str(uuid.uuid4())).json()["id"] for _ in range(2)}
    assert len(ids) == 2 and shop.balance() == 0
