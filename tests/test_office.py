"""The exchange office: cash received for a member, the till deposited to the bank, and the
treasurer's reconciliation — through the API and the pages, as operators use them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from ledger import repository as ledger_repo
from ledger.models import transfers
from runtime.signing import post, sign_as
from tests.people import Person, join, new_client, operator
from wallet_api.office.models import office_deposits


def node_of(site: Any) -> Any:
    return site.app.state.node


def state(site: Any) -> tuple[dict[str, int], int, int]:
    """Every balance, the number of transfers and of deposit rows: what a refusal must
    leave exactly as it was."""
    with node_of(site).ledger.reading() as conn:
        count = conn.scalar(select(func.count()).select_from(transfers))
        rows = conn.scalar(select(func.count()).select_from(office_deposits))
        return ledger_repo.balances(conn), int(count or 0), int(rows or 0)


def balance(site: Any, code: str) -> int:
    return int(node_of(site).ledger.balance(code))


def stored(site: Any, transfer_id: int) -> dict[str, Any]:
    with node_of(site).ledger.reading() as conn:
        found = ledger_repo.transfers_by_id(conn, [transfer_id])[transfer_id]
    return {"initiator": found.initiator, "client_id": found.client_id, **found.fields}


def reading(person: Person, lang: str) -> Person:
    """The same person, their browser asking for pages in `lang`."""
    return Person(
        person.client,
        person.member,
        person.csrf,
        person.key,
        {**person.extra_headers, "Accept-Language": lang, "Accept": "text/html"},
    )


def cash_in(office: Person, member: str, amount: Any, request_id: str | None = None) -> Any:
    body = {"id": request_id or str(uuid.uuid4()), "member": member, "amount": amount}
    return office.post("/api/v1/office/cash-ins", json=body)


def deposit(office: Person, amount: Any, slip: str = "BORD-001", request_id: str = "") -> Any:
    body = {"id": request_id or str(uuid.uuid4()), "amount": amount, "slip_ref": slip}
    return office.post("/api/v1/office/deposits", json=body)


def new_office(site: Any, office: str) -> Person:
    """Another exchange office with its operator, made by the admin."""
    admin = operator(site, "admin")
    email = f"{office}@village.test"
    made = admin.post(
        "/api/v1/admin/operators",
        json={
            "display_name": f"Guichet {office}",
            "email": email,
            "password": "correct horse battery",
            "role": "office",
            "office": office,
        },
    )
    assert made.status_code == 201, made.text
    person = Person(new_client(site), {"email": email, "id": made.json()["id"]})
    return person.log_in()


# -- cash in -------------------------------------------------------------------------------


def test_cash_in_credits_the_member_signed_by_the_office(site) -> None:
    camille, office = join(site, "Camille"), operator(site, "office")
    answer = cash_in(office, camille.id, 2_050)
    assert answer.status_code == 201, answer.text
    done = answer.json()
    assert (done["member"], done["amount"], done["office"]) == (camille.id, 2_050, "mairie")
    assert camille.balance() == 2_050
    assert balance(site, "office:mairie:cash") == 2_050
    order = stored(site, done["transfer_id"])
    assert order["initiator"] == "role:office:mairie"  # the office's role key signed it
    assert order["kind"] == "topup" and order["source"] == "office:mairie"
    assert office.id in order["memo"]  # who took the cash
    seen = office.get("/api/v1/office").json()
    assert seen["till"] == 2_050
    assert seen["cash_ins"][0]["transfer_id"] == done["transfer_id"]
    mine = camille.get("/api/v1/wallet/history").json()["items"][0]
    assert mine["amount"] == 2_050 and mine["kind"] == "topup"


def test_cash_in_is_idempotent_on_the_request_id(site) -> None:
    camille, louis, office = join(site, "Camille"), join(site, "Louis"), operator(site, "office")
    first = cash_in(office, camille.id, 1_000, "till-0001")
    assert first.status_code == 201, first.text
    again = cash_in(office, camille.member["email"], 1_000, "till-0001")  # by email this time
    assert again.status_code == 200, again.text
    assert again.json()["transfer_id"] == first.json()["transfer_id"] and again.json()["replayed"]
    before = state(site)
    for member, amount in ((camille.id, 1_500), (louis.id, 1_000)):
        clash = cash_in(office, member, amount, "till-0001")
        assert clash.status_code == 409, clash.text
        assert clash.json()["error"] == "idempotency_conflict"
    assert state(site) == before
    assert (camille.balance(), louis.balance()) == (1_000, 0)


BAD_CASH_INS = [
    ({"member": "nobody-0000", "amount": 500}, 404, "unknown_member"),
    ({"member": "   ", "amount": 500}, 422, "member_missing"),
    ({"amount": 0}, 422, "bad_amount"),
    ({"amount": -500}, 422, "bad_amount"),
    ({"amount": 1_000_001}, 422, "amount_too_large"),
    ({"amount": 10**30}, 422, "amount_too_large"),
    ({"amount": "500"}, 422, "invalid_request"),
    ({"amount": 5.0}, 422, "invalid_request"),
    ({"amount": True}, 422, "invalid_request"),
    ({"id": "no spaces please"}, 422, "invalid_request"),
    ({"office": "gare"}, 422, "invalid_request"),
]


@pytest.mark.parametrize(("change", "status", "code"), BAD_CASH_INS)
def test_bad_cash_ins_are_refused_and_change_nothing(
    site, change: dict[str, Any], status: int, code: str
) -> None:
    camille, office = join(site, "Camille"), operator(site, "office")
    body = {"id": str(uuid.uuid4()), "member": camille.id, "amount": 500, **change}
    before = state(site)
    answer = office.post("/api/v1/office/cash-ins", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code
    assert answer.json()["message"]
    assert state(site) == before


def test_operators_are_not_credited_and_lapsed_members_wait(site) -> None:
    camille, office = join(site, "Camille"), operator(site, "office")
    treasurer, admin = operator(site, "treasurer"), operator(site, "admin")
    before = state(site)
    refused = cash_in(office, treasurer.id, 500)
    assert (refused.status_code, refused.json()["error"]) == (422, "not_a_wallet")
    node_of(site).settings.membership_required = True
    lapsed = cash_in(office, camille.id, 500, "after-renewal")
    assert (lapsed.status_code, lapsed.json()["error"]) == (403, "membership_lapsed")
    assert "adhésion" in lapsed.json()["message"]  # French unless asked otherwise
    english = reading(office, "en").post(
        "/api/v1/office/cash-ins", json={"id": "x-1", "member": camille.id, "amount": 500}
    )
    assert "membership has lapsed" in english.json()["message"]
    assert state(site) == before
    renewed = admin.put(f"/api/v1/members/{camille.id}/membership", json={"until": "2999-12-31"})
    assert renewed.status_code == 200, renewed.text
    assert cash_in(office, camille.id, 500, "after-renewal").status_code == 201
    assert camille.balance() == 500


def test_only_office_operators_record_cash_and_each_with_its_own_key(site) -> None:
    camille, louis = join(site, "Camille"), join(site, "Louis")
    merchant, treasurer = join(site, "Boulangerie", "merchant"), operator(site, "treasurer")
    before = state(site)
    for who in (camille, merchant, treasurer):
        answer = cash_in(who, louis.id, 500)
        assert answer.status_code == 403, answer.text
        assert who.get("/api/v1/office").status_code == 403
        assert deposit(who, 100).status_code == 403
    anonymous = new_client(site)
    assert anonymous.post("/api/v1/office/cash-ins", json={}).status_code == 401
    assert state(site) == before
    gare = new_office(site, "gare")
    answer = cash_in(gare, camille.id, 700)
    assert answer.status_code == 201, answer.text
    assert stored(site, answer.json()["transfer_id"])["initiator"] == "role:office:gare"
    assert balance(site, "office:gare:cash") == 700
    assert balance(site, "office:mairie:cash") == 0
    # An operator cannot name another office: the request has no such field.
    other = gare.post(
        "/api/v1/office/cash-ins",
        json={"id": "g-2", "member": camille.id, "amount": 700, "office": "mairie"},
    )
    assert other.status_code == 422
    assert gare.get("/api/v1/office").json()["office"] == "gare"
    assert operator(site, "office").get("/api/v1/office").json()["till"] == 0


# -- deposits and reconciliation ------------------------------------------------------------


def test_deposit_moves_the_till_to_the_reserve_never_more(site) -> None:
    camille, office = join(site, "Camille"), operator(site, "office")
    assert cash_in(office, camille.id, 5_000).status_code == 201
    reserve = balance(site, "reserve:digital")
    done = deposit(office, 3_000, "BORD-17", "dep-1")
    assert done.status_code == 201, done.text
    assert (done.json()["slip_ref"], done.json()["recorded_by"]) == ("BORD-17", office.id)
    assert balance(site, "office:mairie:cash") == 2_000
    assert balance(site, "reserve:digital") == reserve + 3_000
    order = stored(site, done.json()["transfer_id"])
    assert (order["initiator"], order["kind"], order["to"]) == (
        "role:office:mairie",
        "cash_deposit",
        "reserve:digital",
    )
    again = deposit(office, 3_000, "BORD-17", "dep-1")
    assert again.status_code == 200 and again.json()["transfer_id"] == done.json()["transfer_id"]
    before = state(site)
    too_much = deposit(office, 2_001, "BORD-18")
    assert (too_much.status_code, too_much.json()["error"]) == (409, "till_short")
    assert "20,00 EUR" in too_much.json()["message"]  # written the French way
    assert deposit(office, 3_000, "BORD-99", "dep-1").status_code == 409  # other slip, same id
    assert deposit(office, 2_000, "BORD-17", "dep-1").status_code == 409  # other amount
    assert deposit(office, 0, "BORD-19").status_code == 422
    assert deposit(office, 100, "").status_code == 422
    assert state(site) == before
    seen = office.get("/api/v1/office").json()
    assert seen["till"] == 2_000 and [d["amount"] for d in seen["deposits"]] == [3_000]


def test_the_treasurer_reconciles_each_deposit_once(site) -> None:
    camille, office = join(site, "Camille"), operator(site, "office")
    treasurer = operator(site, "treasurer")
    assert cash_in(office, camille.id, 9_000).status_code == 201
    first = deposit(office, 4_000, "BORD-1").json()["transfer_id"]
    second = deposit(office, 1_000, "BORD-2").json()["transfer_id"]
    mairie = _office(treasurer, "mairie")
    assert (mairie["till"], mairie["cash_ins_total"], mairie["cash_ins_count"]) == (4_000, 9_000, 1)
    assert (mairie["deposits_total"], mairie["deposits_count"]) == (5_000, 2)
    assert [d["transfer_id"] for d in mairie["unreconciled"]] == [first, second]
    assert mairie["unreconciled_total"] == 5_000
    done = treasurer.post(
        f"/api/v1/treasury/deposits/{first}/reconciled", json={"bank_ref": "RELEVE 2026-11 L4"}
    )
    assert done.status_code == 200, done.text
    assert (done.json()["bank_ref"], done.json()["reconciled_by"]) == (
        "RELEVE 2026-11 L4",
        treasurer.id,
    )
    twice = treasurer.post(
        f"/api/v1/treasury/deposits/{first}/reconciled", json={"bank_ref": "OTHER"}
    )
    assert (twice.status_code, twice.json()["error"]) == (409, "already_reconciled")
    unknown = treasurer.post("/api/v1/treasury/deposits/999999/reconciled", json={"bank_ref": "X"})
    assert unknown.status_code == 404
    not_a_deposit = cash_in(office, camille.id, 100).json()["transfer_id"]
    assert (
        treasurer.post(
            f"/api/v1/treasury/deposits/{not_a_deposit}/reconciled", json={"bank_ref": "X"}
        ).status_code
        == 404
    )
    mairie = _office(treasurer, "mairie")
    assert [d["transfer_id"] for d in mairie["unreconciled"]] == [second]
    for who in (office, camille):
        assert who.get("/api/v1/treasury/offices").status_code == 403
        assert (
            who.post(
                f"/api/v1/treasury/deposits/{second}/reconciled", json={"bank_ref": "X"}
            ).status_code
            == 403
        )
    assert office.get("/api/v1/office").json()["deposits"][1]["bank_ref"] == "RELEVE 2026-11 L4"


def _office(treasurer: Person, office: str) -> dict[str, Any]:
    answer = treasurer.get("/api/v1/treasury/offices")
    assert answer.status_code == 200, answer.text
    return next(o for o in answer.json() if o["office"] == office)


def test_a_deposit_posted_without_its_row_still_gets_reconciled(site) -> None:
    """The node stopped between the ledger's deposit and our row (or the treasurer signed
    one by hand): the treasurer's view rebuilds the row from the signed order."""
    camille, office = join(site, "Camille"), operator(site, "office")
    treasurer = operator(site, "treasurer")
    assert cash_in(office, camille.id, 3_000).status_code == 201
    node = node_of(site)
    memo = f"bank slip BORD-42; recorded by operator {office.id}"
    by_office = post(
        node,
        sign_as(
            node,
            "role:office:mairie",
            "cash_deposit",
            "deposit:crashed",
            office="mairie",
            amount=1_000,
            to="reserve:digital",
            memo=memo,
        ),
    )
    by_hand = post(
        node,
        sign_as(
            node,
            "role:treasurer",
            "cash_deposit",
            "hand-1",
            office="mairie",
            amount=500,
            to="reserve:digital",
        ),
    )
    mairie = _office(treasurer, "mairie")
    found = {d["transfer_id"]: d for d in mairie["unreconciled"]}
    assert found[by_office.transfer_id]["slip_ref"] == "BORD-42"
    assert found[by_office.transfer_id]["recorded_by"] == office.id
    assert found[by_hand.transfer_id]["slip_ref"] is None
    # The operator retrying the request that crashed gets the deposit, not a second one.
    again = deposit(office, 1_000, "BORD-42", "crashed")
    assert again.status_code == 200 and again.json()["transfer_id"] == by_office.transfer_id
    assert balance(site, "office:mairie:cash") == 1_500


# -- pages ---------------------------------------------------------------------------------


def _form_page(person: Person, path: str, **fields: str) -> Any:
    form = person.get(path)
    assert form.status_code == 200, form.text
    ids = {}
    for name in ("cash-in-form", "deposit-form"):
        at = form.text.find(f'id="{name}"')
        if at >= 0:
            start = form.text.index('name="id" value="', at) + len('name="id" value="')
            ids[name] = form.text[start : form.text.index('"', start)]
    return form, ids


def test_office_page_in_french_and_english_for_operators_only(site) -> None:
    office, camille = operator(site, "office"), join(site, "Camille")
    french = reading(office, "fr").get("/office")
    assert french.status_code == 200
    assert "Enregistrer un encaissement" in french.text and "Espèces en caisse" in french.text
    english = office.get("/office?lang=en")
    assert english.status_code == 200 and "Record a cash-in" in english.text
    treasurer, merchant = operator(site, "treasurer"), join(site, "Boulangerie", "merchant")
    for who in (camille, treasurer, merchant):
        refused = reading(who, "en").get("/office")
        assert refused.status_code == 403 and "<html" in refused.text
    anonymous = new_client(site)
    redirect = anonymous.get("/office", follow_redirects=False)
    assert redirect.status_code == 303 and redirect.headers["location"].startswith("/login")


def test_office_page_records_a_cash_in_in_euros_and_a_deposit(site) -> None:
    office, camille = operator(site, "office"), join(site, "Camille")
    _page, ids = _form_page(office, "/office")
    fields = {"csrf": office.csrf, "action": "cash-in", "id": ids["cash-in-form"]}
    fields["member"] = camille.member["email"]
    done = reading(office, "en").post("/office", data={**fields, "amount": "20,50"})
    assert done.status_code == 200, done.text  # redirected to the page, which says it
    assert str(done.url).endswith(f"/office?cash_in={done_id(site, 'topup')}")
    assert f"Credited 20.50 SOU to Camille ({camille.id})." in done.text
    cash_ins = done.text[done.text.index('<table id="cash-ins">') : done.text.index("</table>")]
    assert f"<td>Camille <code>{camille.id}</code></td>" in cash_ins  # named, not an id alone
    assert camille.balance() == 2_050
    again = office.post("/office", data={**fields, "amount": "20,50"})  # a double click
    assert again.status_code == 200 and camille.balance() == 2_050
    before = state(site)
    refused = reading(office, "en").post(
        "/office", data={**fields, "id": str(uuid.uuid4()), "amount": "20,505"}
    )
    assert refused.status_code == 422 and "at most 2 decimals" in refused.text
    assert "20,505" in refused.text  # the form keeps what was typed
    for bad in ({"amount": "5", "csrf": ""}, {"amount": "5", "action": "refund"}):
        answer = office.client.post("/office", data={**fields, "id": str(uuid.uuid4()), **bad})
        assert answer.status_code in (403, 422), answer.text
    assert state(site) == before
    _page, ids = _form_page(office, "/office")
    deposit_form = {"csrf": office.csrf, "action": "deposit", "slip_ref": "B-9"}
    deposited = reading(office, "fr").post(
        "/office", data={**deposit_form, "id": ids["deposit-form"], "amount": "15"}
    )
    assert deposited.status_code == 200, deposited.text
    assert "Dépôt de 15,00 EUR enregistré (bordereau B-9)." in deposited.text
    assert balance(site, "office:mairie:cash") == 550
    too_much = office.post("/office", data={**deposit_form, "id": "again", "amount": "6"})
    assert too_much.status_code == 409 and balance(site, "office:mairie:cash") == 550


def done_id(site: Any, kind: str) -> int:
    """The id of the latest transfer of a kind."""
    with node_of(site).ledger.reading() as conn:
        query = select(func.max(transfers.c.id)).where(transfers.c.kind == kind)
        return int(conn.scalar(query) or 0)


def test_treasurer_offices_page_reconciles_a_deposit(site) -> None:
    office, camille = operator(site, "office"), join(site, "Camille")
    treasurer = operator(site, "treasurer")
    assert cash_in(office, camille.id, 2_000).status_code == 201
    transfer_id = deposit(office, 2_000, "BORD-7").json()["transfer_id"]
    its_form = f'name="transfer_id" value="{transfer_id}"'
    french = reading(treasurer, "fr").get("/treasurer/offices")
    assert french.status_code == 200
    assert "Comptoirs de change" in french.text and its_form in french.text
    english = reading(treasurer, "en").get("/treasurer/offices")
    assert "Exchange offices" in english.text and "BORD-7" in english.text
    form = {"csrf": treasurer.csrf, "transfer_id": str(transfer_id)}
    done = reading(treasurer, "en").post("/treasurer/offices", data={**form, "bank_ref": "REL-11"})
    assert done.status_code == 200, done.text
    assert f"Deposit {transfer_id} reconciled with REL-11." in done.text
    assert its_form not in done.text
    twice = treasurer.post("/treasurer/offices", data={**form, "bank_ref": "REL-12"})
    assert twice.status_code == 409
    for bad in ("", "abc", "٣", str(2**60)):
        wrong = treasurer.post("/treasurer/offices", data={**form, "transfer_id": bad})
        assert wrong.status_code == 404, bad
    assert _office(treasurer, "mairie")["unreconciled"] == []
    for who in (office, camille, join(site, "Boulangerie", "merchant")):
        assert who.get("/treasurer/offices").status_code == 403
        assert who.post("/treasurer/offices", data={**form, "csrf": who.csrf}).status_code == 403
    assert new_client(site).get("/treasurer/offices", follow_redirects=False).status_code == 303
