"""Paying merchants: the bank account a merchant records (checked IBAN and BIC, signed by
their device key, every version kept), and the treasurer's SEPA credit-transfer files of
pending reconversions (pain.001.001.03): made, downloaded again, paid once, cancelled."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from importlib.resources import files
from typing import Any

import defusedxml.ElementTree as SafeTree
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DatabaseError, IntegrityError

from ledger import repository as ledger_repo
from ledger.canonical import canonical, unb64
from ledger.models import transfers
from ledger.signing import SigningKey, new_order
from merchants.models import reconversions
from merchants.payouts.banking import masked
from merchants.payouts.models import bank_details, payout_batches, payout_items
from tests.people import Person, join, new_client, operator
from tests.test_office import reading
from tests.test_reconversion import ask, audit_is_clean, balance, node_of, with_units
from web.refusals import Refusal

IBAN = "FR7630006000011234567890189"  # Crédit Agricole: AGRIFRPP
BIC = "AGRIFRPPXXX"
OTHER_IBAN = "FR1420041010050500013M02606"  # La Banque Postale: PSSTFRPP
OTHER_BIC = "PSSTFRPPPAR"
GERMAN_IBAN, GERMAN_BIC = "DE89370400440532013000", "COBADEFFXXX"
DEBTOR_IBAN, DEBTOR_BIC = "FR7630004000000001234567845", "BNPAFRPP"
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"}


def statement(
    person: Person,
    iban: str = IBAN,
    bic: str = BIC,
    holder: str = "Boulangerie Martin",
    previous: int = 0,
    key: SigningKey | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A `bank_details` statement signed by `key` (the person's device key by default)."""
    key = key or person.key
    assert key is not None
    origin = node_of_client(person).ledger.origin
    body = {"member": person.id, "iban": iban, "bic": bic, "holder": holder, "previous": previous}
    order = new_order("bank_details", key, origin, **{**body, **fields})
    return key.sign(order).to_json()


def node_of_client(person: Person) -> Any:
    return person.client.app.state.node  # type: ignore[attr-defined]


def record(person: Person, **kw: Any) -> Any:
    return person.post("/api/v1/me/bank-details", json=statement(person, **kw))


def counts(site: Any) -> tuple[int, int, int, int]:
    """Rows of bank details, batches, batch items, and ledger transfers."""
    with node_of(site).ledger.reading() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.scalar(select(func.count()).select_from(t)) or 0)
            for t in (bank_details, payout_batches, payout_items, transfers)
        )


def set_debtor(site: Any, name: str = "Association Sou du Val") -> None:
    settings = node_of(site).plugin_settings("payouts")
    settings.debtor_name, settings.debtor_iban, settings.debtor_bic = name, DEBTOR_IBAN, DEBTOR_BIC


# -- bank details ------------------------------------------------------------------------------


def test_a_merchant_records_and_changes_the_account_and_every_version_is_kept(site) -> None:
    shop = with_units(site, 1_000)
    first = record(shop, iban="fr76 3000 6000 0112 3456 7890 189", bic="agrifrpp")
    assert first.status_code == 201, first.text
    assert (first.json()["iban"], first.json()["bic"], first.json()["version"]) == (
        IBAN,
        "AGRIFRPP",
        1,
    )
    assert (
        first.json()["iban_masked"].replace(" ", "").endswith("0189")
        and "3000" not in first.json()["iban_masked"]
    )
    second = record(shop, iban=OTHER_IBAN, bic=OTHER_BIC, holder="M. Martin", previous=1)
    assert second.status_code == 201, second.text
    mine = shop.get("/api/v1/me/bank-details").json()
    assert mine["current"]["iban"] == OTHER_IBAN and mine["current"]["version"] == 2
    assert [(v["version"], v["iban"]) for v in mine["history"]] == [(2, OTHER_IBAN), (1, IBAN)]
    # Each version carries the statement its device key signed: anyone can check it again.
    for version in mine["history"]:
        signed = version["statement"]
        key = node_of(site).ledger.key(signed["order"]["key"])
        assert key.owner == shop.account
        from nacl.signing import VerifyKey

        VerifyKey(key.public_key).verify(canonical(signed["order"]), unb64(signed["sig"]))
    treasurer = operator(site, "treasurer")
    seen = treasurer.get(f"/api/v1/members/{shop.id}/bank-details").json()
    assert [v["iban"] for v in seen["history"]] == [OTHER_IBAN, IBAN]
    for role in ("admin", "office"):
        hidden = operator(site, role).get(f"/api/v1/members/{shop.id}/bank-details").json()
        assert hidden["current"]["iban"] is None and hidden["history"] == []
        assert hidden["current"]["iban_masked"].replace(" ", "").endswith("2606")
        assert "20041" not in str(hidden)
    stranger = join(site, "Camille")
    refused = stranger.get(f"/api/v1/members/{shop.id}/bank-details")
    assert (refused.status_code, refused.json()["error"]) == (403, "bank_details_hidden")
    page = reading(shop, "fr").get("/bank-details")
    assert page.status_code == 200 and "FR14 2004 1010 0505 0001 3M02 606" in page.text
    assert "FR76 3000 6000 0112 3456 7890 189" in page.text  # the version before, in history
    assert "/static/payouts.js" in page.text and "<script>" not in page.text
    history = reading(treasurer, "en").get(f"/treasurer/bank-details/{shop.id}")
    assert history.status_code == 200 and "Bank details of Boulangerie" in history.text


@pytest.mark.parametrize(
    ("iban", "bic", "holder", "status", "code"),
    [
        ("FR7630006000011234567890188", BIC, "Martin", 422, "bad_iban"),  # checksum
        ("FR76300060000112345678901", BIC, "Martin", 422, "bad_iban"),  # France's length
        ("XX7630006000011234567890189", BIC, "Martin", 422, "bad_iban"),  # no such country
        (IBAN, "AGRI", "Martin", 422, "bad_bic"),
        (IBAN, "AGRIXXPP", "Martin", 422, "bad_bic"),
        (IBAN, OTHER_BIC, "Martin", 422, "bic_mismatch"),  # another bank's BIC
        (GERMAN_IBAN, BIC, "Martin", 422, "bic_mismatch"),
        (IBAN, BIC, "   ", 422, "bad_holder"),
        (IBAN, BIC, "M" * 71, 422, "bad_holder"),
    ],
)
def test_bank_details_that_are_not_an_account_are_refused(
    site, iban: str, bic: str, holder: str, status: int, code: str
) -> None:
    shop = join(site, "Boulangerie", "merchant")
    before = counts(site)
    answer = record(shop, iban=iban, bic=bic, holder=holder)
    assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    assert answer.json()["message"]
    assert counts(site) == before


def test_a_german_account_with_its_own_bic_is_fine(site) -> None:
    shop = join(site, "Boulangerie", "merchant")
    answer = record(shop, iban=GERMAN_IBAN, bic=GERMAN_BIC)
    assert answer.status_code == 201, answer.text


def test_signatures_that_do_not_hold_are_refused_and_write_nothing(site) -> None:
    shop, other = join(site, "Boulangerie", "merchant"), join(site, "Épicerie", "merchant")
    node = node_of(site)
    assert record(shop).status_code == 201
    before = counts(site)

    def refused(envelope: dict[str, Any], status: int, code: str) -> None:
        answer = shop.post("/api/v1/me/bank-details", json=envelope)
        assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
        assert counts(site) == before

    # Another member's key signing details for this merchant.
    refused(statement(shop, previous=1, key=other.key), 403, "unknown_signing_key")
    # Details of another member, signed by this one's key.
    refused(statement(shop, previous=1, member=other.id), 403, "not_your_details")
    # The signature is over other details than those sent.
    tampered = statement(shop, previous=1)
    tampered["order"]["iban"] = OTHER_IBAN
    refused(tampered, 403, "bad_details_signature")
    # The same statement sent again.
    replayed = statement(shop, iban=OTHER_IBAN, bic=OTHER_BIC, previous=1)
    assert shop.post("/api/v1/me/bank-details", json=replayed).status_code == 201
    before = counts(site)
    refused(replayed, 409, "statement_replayed")
    # A statement made before the last change (it would roll the account back).
    refused(statement(shop, previous=1), 409, "stale_details")
    # Expired, for another node, of another kind, with a field too many.
    past = new_order("bank_details", shop.key, node.ledger.origin, now=time.time() - 3_600,
                     member=shop.id, iban=IBAN, bic=BIC, holder="M", previous=2)  # fmt: skip
    refused(shop.key.sign(past).to_json(), 422, "statement_expired")  # type: ignore[union-attr]
    elsewhere = new_order("bank_details", shop.key, "other.example/node",
                          member=shop.id, iban=IBAN, bic=BIC, holder="M", previous=2)  # fmt: skip
    refused(shop.key.sign(elsewhere).to_json(), 422, "bad_statement")  # type: ignore[union-attr]
    refused(statement(shop, previous=2, amount=5), 422, "bad_statement")
    refused({"order": statement(shop, previous=2)["order"], "sig": "AAAA"}, 422, "bad_statement")
    # A revoked key.
    old_key = shop.key
    shop.add_key("tablet")
    assert old_key is not None
    gone = shop.delete(f"/api/v1/me/keys/{old_key.key_id}")
    assert gone.status_code in (200, 204), gone.text
    refused(statement(shop, previous=2, key=old_key), 403, "revoked_signing_key")
    assert record(shop, previous=2).status_code == 201  # the live key still signs
    # Who may not reconvert records no account (a resident, here).
    camille = join(site, "Camille")
    answer = record(camille)
    assert (answer.status_code, answer.json()["error"]) == (403, "reconversion_not_allowed")


def test_two_changes_at_once_make_one_version(site) -> None:
    shop = join(site, "Boulangerie", "merchant")
    envelopes = [statement(shop, holder=f"Martin {i}") for i in range(4)]
    clients = [new_client(site) for _ in envelopes]
    for client in clients:
        client.cookies.update(shop.client.cookies)
    start, answers = threading.Barrier(len(clients)), [None] * len(clients)

    def send(i: int) -> None:
        start.wait()
        answers[i] = clients[i].post(
            "/api/v1/me/bank-details", json=envelopes[i], headers=shop.headers()
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(a.status_code for a in answers)  # type: ignore[union-attr]
    assert codes == [201, 409, 409, 409], [a.text for a in answers]  # type: ignore[union-attr]
    assert len(shop.get("/api/v1/me/bank-details").json()["history"]) == 1


def test_the_database_refuses_to_rewrite_the_history(site) -> None:
    shop = join(site, "Boulangerie", "merchant")
    assert record(shop).status_code == 201
    node = node_of(site)
    for statement_sql in (
        update(bank_details).values(iban=OTHER_IBAN),
        delete(bank_details),
    ):
        with pytest.raises(DatabaseError), node.engine.begin() as conn:
            conn.execute(statement_sql)
    assert shop.get("/api/v1/me/bank-details").json()["current"]["iban"] == IBAN


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=15, max_size=34))
def test_a_masked_iban_shows_only_its_last_four_characters(iban: str) -> None:
    shown = masked(iban)
    assert shown.replace(" ", "")[-4:] == iban[-4:]
    assert shown.replace(" ", "")[:-4] == "•" * (len(iban) - 4)


# -- batches -----------------------------------------------------------------------------------


def three_requests(site: Any) -> tuple[list[Person], list[dict[str, Any]]]:
    """Two merchants with bank details and one without, each with a pending request."""
    shops = [with_units(site, 10_000, name) for name in ("Boulangerie", "Épicerie", "Forge")]
    assert record(shops[0]).status_code == 201
    assert (
        record(shops[1], iban=OTHER_IBAN, bic=OTHER_BIC, holder="Épicerie Dupré").status_code == 201
    )
    requests = [
        ask(shops[0], 10_000, 300).json(),
        ask(shops[1], 5_001, 151).json(),
        ask(shops[2], 2_000, 60).json(),
    ]
    return shops, requests


def parse(xml: bytes) -> Any:
    return SafeTree.fromstring(xml)


def test_the_transfer_file_holds_every_ready_reconversion(site) -> None:
    shops, requests = three_requests(site)
    treasurer = operator(site, "treasurer")
    refused = treasurer.post("/api/v1/treasury/payout-batches")
    assert (refused.status_code, refused.json()["error"]) == (409, "debtor_not_set")
    set_debtor(site)
    queue = treasurer.get("/api/v1/treasury/payouts").json()
    assert [r["reconversion_id"] for r in queue["ready"]] == [requests[0]["id"], requests[1]["id"]]
    assert [(a["reconversion_id"], a["why"]) for a in queue["apart"]] == [
        (requests[2]["id"], "No bank details recorded: ask the merchant to record them.")
    ]
    made = treasurer.post("/api/v1/treasury/payout-batches")
    assert made.status_code == 201, made.text
    batch = made.json()
    assert (batch["status"], batch["count"], batch["total"]) == ("unpaid", 2, 9_700 + 4_850)
    file = treasurer.get(batch["file"])
    assert file.status_code == 200 and file.headers["content-type"].startswith("application/xml")
    assert "attachment" in file.headers["content-disposition"]
    xml = file.content
    # Validated against the schema sepaxml ships (it validated it too before writing).
    schema_path = files("sepaxml") / "schemas" / "pain.001.001.03.xsd"
    schema = etree.XMLSchema(etree.parse(str(schema_path)))
    assert schema.validate(etree.fromstring(xml)), schema.error_log
    root = parse(xml)
    header = root.find("p:CstmrCdtTrfInitn/p:GrpHdr", NS)
    assert header.findtext("p:NbOfTxs", namespaces=NS) == "2"
    assert Decimal(header.findtext("p:CtrlSum", namespaces=NS)) == Decimal("145.50")
    assert header.findtext("p:MsgId", namespaces=NS) == batch["message_id"]
    # One block per transfer, each booked on its own bank line (the reconciliation matches
    # each line to its payout by its EndToEndId).
    blocks = root.findall("p:CstmrCdtTrfInitn/p:PmtInf", NS)
    assert len(blocks) == 2
    for info in blocks:
        assert info.findtext("p:BtchBookg", namespaces=NS) == "false"
        assert info.findtext("p:Dbtr/p:Nm", namespaces=NS) == "Association Sou du Val"
        assert info.findtext("p:DbtrAcct/p:Id/p:IBAN", namespaces=NS) == DEBTOR_IBAN
        assert info.findtext("p:DbtrAgt/p:FinInstnId/p:BIC", namespaces=NS) == DEBTOR_BIC
    sent = {
        tx.findtext("p:PmtId/p:EndToEndId", namespaces=NS): (
            tx.findtext("p:Amt/p:InstdAmt", namespaces=NS),
            tx.find("p:Amt/p:InstdAmt", NS).get("Ccy"),
            tx.findtext("p:CdtrAcct/p:Id/p:IBAN", namespaces=NS),
            tx.findtext("p:CdtrAgt/p:FinInstnId/p:BIC", namespaces=NS),
            tx.findtext("p:Cdtr/p:Nm", namespaces=NS),
        )
        for info in blocks
        for tx in info.findall("p:CdtTrfTxInf", NS)
    }
    assert sent == {
        f"SOU-RECONVERSION-{requests[0]['id']}": (
            "97.00",
            "EUR",
            IBAN,
            BIC,
            "Boulangerie Martin",
        ),
        f"SOU-RECONVERSION-{requests[1]['id']}": (
            "48.50",
            "EUR",
            OTHER_IBAN,
            OTHER_BIC,
            "Epicerie Dupre",
        ),
    }
    assert treasurer.get(batch["file"]).content == xml  # the same file, downloaded again
    # Those in the file are no longer ready; the one without an account stays apart.
    queue = treasurer.get("/api/v1/treasury/payouts").json()
    assert queue["ready"] == [] and len(queue["apart"]) == 1
    before = counts(site)
    again = treasurer.post("/api/v1/treasury/payout-batches")
    assert (again.status_code, again.json()["error"]) == (409, "nothing_to_pay")
    # A request in a file is paid or rejected with it, never alone.
    for decision, body in (("paid", {"bank_ref": "VIR-1"}), ("rejected", {"reason": "non"})):
        alone = treasurer.post(
            f"/api/v1/treasury/reconversions/{requests[0]['id']}/{decision}", json=body
        )
        assert (alone.status_code, alone.json()["error"]) == (409, "in_payout_batch")
    assert counts(site) == before
    for who in (shops[0], operator(site, "admin"), operator(site, "office")):
        assert who.get(batch["file"]).status_code == 403
        assert who.post("/api/v1/treasury/payout-batches").status_code == 403


def test_the_database_keeps_a_reconversion_in_one_live_batch(site) -> None:
    three_requests(site)
    set_debtor(site)
    treasurer = operator(site, "treasurer")
    batch = treasurer.post("/api/v1/treasury/payout-batches").json()
    node = node_of(site)
    with node.engine.connect() as conn:
        item = conn.execute(select(payout_items)).mappings().first()
    row = {k: v for k, v in dict(item).items() if k != "id"}
    with pytest.raises(IntegrityError), node.engine.begin() as conn:
        conn.execute(insert(payout_items).values(**row))
    assert batch["count"] == 2


def test_a_batch_paid_twice_at_once_pays_each_reconversion_once(site) -> None:
    shops, requests = three_requests(site)
    set_debtor(site)
    treasurer = operator(site, "treasurer")
    batch = treasurer.post("/api/v1/treasury/payout-batches").json()
    external = balance(site, "external:eur")
    _, _, _, transfers_before = counts(site)
    clients = [new_client(site) for _ in range(4)]
    for client in clients:
        client.cookies.update(treasurer.client.cookies)
    start, answers = threading.Barrier(len(clients)), [None] * len(clients)

    def send(i: int) -> None:
        start.wait()
        answers[i] = clients[i].post(
            f"/api/v1/treasury/payout-batches/{batch['id']}/paid",
            json={"bank_ref": "VIR-LOT-1"},
            headers=treasurer.headers(),
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]  # type: ignore[union-attr]
    assert {a.json()["status"] for a in answers} == {"paid"}  # type: ignore[union-attr]
    _, _, _, transfers_after = counts(site)
    assert transfers_after == transfers_before + 2  # one payout per reconversion, once
    assert balance(site, "external:eur") == external + 9_700 + 4_850
    # The ledger movements of today's "mark paid": a payout from payouts:pending, its client
    # id from the request, the bank's reference in it.
    with node_of(site).ledger.reading() as conn:
        for request, net in ((requests[0], 9_700), (requests[1], 4_850)):
            row = conn.execute(select(reconversions).where(reconversions.c.id == request["id"]))
            found = row.mappings().one()
            assert (found["status"], found["bank_ref"]) == ("paid", "VIR-LOT-1")
            payout = ledger_repo.transfers_by_id(conn, [found["decision_id"]])[found["decision_id"]]
            assert (payout.kind, payout.initiator) == ("payout", "role:treasurer")
            assert payout.client_id == f"reconversion-{request['id']}-payout"
            assert payout.fields["amount"] == net and payout.fields["bank_ref"] == "VIR-LOT-1"
    other = treasurer.post(
        f"/api/v1/treasury/payout-batches/{batch['id']}/paid", json={"bank_ref": "VIR-AUTRE"}
    )
    assert (other.status_code, other.json()["error"]) == (409, "batch_paid")
    cancel = treasurer.post(f"/api/v1/treasury/payout-batches/{batch['id']}/cancelled")
    assert (cancel.status_code, cancel.json()["error"]) == (409, "batch_paid")
    statuses = {
        r["id"]: (r["status"], r["bank_ref"]) for r in shops[0].get("/api/v1/reconversions").json()
    }
    assert statuses == {requests[0]["id"]: ("paid", "VIR-LOT-1")}
    assert shops[2].get("/api/v1/reconversions").json()[0]["status"] == "pending"
    audit_is_clean(site)


def test_a_cancelled_batch_gives_its_reconversions_back_to_the_queue(site) -> None:
    _, requests = three_requests(site)
    set_debtor(site)
    treasurer = operator(site, "treasurer")
    first = treasurer.post("/api/v1/treasury/payout-batches").json()
    cancelled = treasurer.post(f"/api/v1/treasury/payout-batches/{first['id']}/cancelled")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    queue = treasurer.get("/api/v1/treasury/payouts").json()
    assert [r["reconversion_id"] for r in queue["ready"]] == [requests[0]["id"], requests[1]["id"]]
    before = counts(site)
    for path, body in (("paid", {"bank_ref": "VIR-9"}), ("cancelled", None)):
        answer = treasurer.post(f"/api/v1/treasury/payout-batches/{first['id']}/{path}", json=body)
        assert (answer.status_code, answer.json()["error"]) == (409, "batch_cancelled")
    assert counts(site) == before
    assert treasurer.get(first["file"]).status_code == 200  # the cancelled file is kept
    second = treasurer.post("/api/v1/treasury/payout-batches")
    assert second.status_code == 201 and second.json()["count"] == 2
    assert second.json()["message_id"] != first["message_id"]
    missing = treasurer.post("/api/v1/treasury/payout-batches/999999/paid", json={"bank_ref": "X"})
    assert (missing.status_code, missing.json()["error"]) == (404, "unknown_batch")
    blank = treasurer.post(
        f"/api/v1/treasury/payout-batches/{second.json()['id']}/paid", json={"bank_ref": "  "}
    )
    assert blank.status_code == 422
    assert pending_ids(site) == {r["id"] for r in requests}


def pending_ids(site: Any) -> set[int]:
    with node_of(site).ledger.reading() as conn:
        rows = conn.execute(select(reconversions.c.id).where(reconversions.c.status == "pending"))
        return {int(r[0]) for r in rows}


def test_the_treasurer_pages_make_pay_and_cancel_files(site) -> None:
    _, requests = three_requests(site)
    set_debtor(site)
    treasurer = operator(site, "treasurer")
    french = reading(treasurer, "fr").get("/treasurer/payouts")
    assert french.status_code == 200 and "Payer les prestataires" in french.text
    assert "Aucune coordonnée bancaire" in french.text and "FR76 3000 6000" in french.text
    queue = reading(treasurer, "fr").get("/treasurer")
    assert "/treasurer/payouts" in queue.text and "FR76 3000 6000" in queue.text
    made = reading(treasurer, "en").post("/treasurer/payouts", data={"csrf": treasurer.csrf})
    assert made.status_code == 200 and "Transfer file" in made.text, made.text
    batch = treasurer.get("/api/v1/treasury/payouts").json()["batches"][0]
    assert f"/api/v1/treasury/payout-batches/{batch['id']}/file" in made.text
    queue = reading(treasurer, "en").get("/treasurer")
    assert f'id="paid-{requests[0]["id"]}"' not in queue.text
    assert f"In transfer file {batch['id']}" in queue.text
    form = {"csrf": treasurer.csrf, "decision": "paid", "bank_ref": "VIR-PAGE"}
    paid = reading(treasurer, "fr").post(f"/treasurer/payouts/{batch['id']}", data=form)
    assert paid.status_code == 200 and f"Lot {batch['id']} marqué payé" in paid.text
    twice = reading(treasurer, "en").post(f"/treasurer/payouts/{batch['id']}", data=form)
    assert twice.status_code == 200  # the same reference again: nothing more to do
    other = reading(treasurer, "en").post(
        f"/treasurer/payouts/{batch['id']}", data={**form, "bank_ref": "VIR-AUTRE"}
    )
    assert other.status_code == 409 and "already marked paid" in other.text
    for who in (operator(site, "admin"), join(site, "Boulangerie", "merchant")):
        assert reading(who, "en").get("/treasurer/payouts").status_code == 403
        assert who.post("/treasurer/payouts", data={"csrf": who.csrf}).status_code == 403


# -- a batch made once per request -------------------------------------------------------------


def test_a_batch_request_sent_again_answers_the_batch_it_made(site) -> None:
    _, requests = three_requests(site)
    set_debtor(site)
    treasurer = operator(site, "treasurer")
    ready = [requests[0]["id"], requests[1]["id"]]
    made = treasurer.post("/api/v1/treasury/payout-batches", json={"id": "lot-decembre-1"})
    assert made.status_code == 201, made.text
    before = counts(site)
    again = treasurer.post("/api/v1/treasury/payout-batches", json={"id": "lot-decembre-1"})
    assert again.status_code == 200, again.text
    assert again.json() == made.json()
    named = treasurer.post(
        "/api/v1/treasury/payout-batches", json={"id": "lot-decembre-1", "reconversions": ready}
    )
    assert named.status_code == 200 and named.json()["id"] == made.json()["id"]
    # The same id for another request: a precise refusal naming the batch it made.
    other = treasurer.post(
        "/api/v1/treasury/payout-batches",
        json={"id": "lot-decembre-1", "reconversions": [requests[0]["id"]]},
    )
    assert (other.status_code, other.json()["error"]) == (409, "batch_id_conflict")
    assert other.json()["batch"] == made.json()["id"]
    # A new id when nothing is ready: nothing to pay, as before.
    fresh = treasurer.post("/api/v1/treasury/payout-batches", json={"id": "lot-decembre-2"})
    assert (fresh.status_code, fresh.json()["error"]) == (409, "nothing_to_pay")
    assert counts(site) == before
    for body in ({"id": "no spaces"}, {"id": "x" * 49}, {"id": "ok", "extra": 1}):
        bad = treasurer.post("/api/v1/treasury/payout-batches", json=body)
        assert bad.status_code == 422, body


def test_a_batch_of_named_reconversions_takes_only_those_ready(site) -> None:
    _, requests = three_requests(site)
    set_debtor(site)
    treasurer = operator(site, "treasurer")
    before = counts(site)
    # The third has no bank details: not ready, named in the refusal, nothing written.
    refused = treasurer.post(
        "/api/v1/treasury/payout-batches",
        json={"id": "lot-a", "reconversions": [requests[0]["id"], requests[2]["id"]]},
    )
    assert (refused.status_code, refused.json()["error"]) == (409, "not_ready")
    assert str(requests[2]["id"]) in refused.json()["message"]
    assert counts(site) == before
    one = treasurer.post(
        "/api/v1/treasury/payout-batches",
        json={"id": "lot-b", "reconversions": [requests[1]["id"]]},
    )
    assert one.status_code == 201, one.text
    assert [i["reconversion_id"] for i in one.json()["items"]] == [requests[1]["id"]]
    queue = treasurer.get("/api/v1/treasury/payouts").json()
    assert [r["reconversion_id"] for r in queue["ready"]] == [requests[0]["id"]]


def test_the_page_button_pressed_twice_makes_one_file(site) -> None:
    three_requests(site)
    set_debtor(site)
    treasurer = operator(site, "treasurer")
    page = reading(treasurer, "en").get("/treasurer/payouts")
    form = {"csrf": treasurer.csrf, "request_id": _hidden(page.text, "request_id")}
    form_ids = _hidden_all(page.text, "reconversion")
    assert len(form_ids) == 2
    data = {**form, "reconversion": form_ids}
    first = reading(treasurer, "en").post("/treasurer/payouts", data=data)
    second = reading(treasurer, "en").post("/treasurer/payouts", data=data)
    assert first.status_code == second.status_code == 200, second.text
    batches = treasurer.get("/api/v1/treasury/payouts").json()["batches"]
    assert len(batches) == 1 and batches[0]["count"] == 2
    link = reading(treasurer, "fr").get("/treasurer/payouts", params={"reconversion": form_ids[0]})
    assert f"fait partie du fichier de virements {batches[0]['id']}" in link.text


def _hidden(html: str, name: str) -> str:
    return _hidden_all(html, name)[0]


def _hidden_all(html: str, name: str) -> list[str]:
    import re

    return re.findall(rf'name="{name}" value="([^"]*)"', html)


# -- paid alone while a file is made: one or the other ---------------------------------------


def _treasurer_member(site: Any) -> Any:
    from members import service as members

    return members.get_member(node_of(site), operator(site, "treasurer").id)


def _one_ready(site: Any) -> int:
    shop = with_units(site, 10_000)
    assert record(shop).status_code == 201
    return int(ask(shop, 10_000, 300).json()["id"])


def _paid_once_and_not_in_an_open_batch(site: Any, reconversion_id: int) -> str:
    """The reconversion's fate: "alone" (paid alone, in no unpaid batch) or "batched" (in an
    unpaid batch, not paid); never both, and never two payouts."""
    with node_of(site).ledger.reading() as conn:
        row = conn.execute(
            select(reconversions).where(reconversions.c.id == reconversion_id)
        ).mappings()
        found = row.one()
        payouts = conn.scalar(
            select(func.count())
            .select_from(transfers)
            .where(transfers.c.kind == "payout", transfers.c.ref_id == found["redemption_id"])
        )
        live = conn.execute(
            select(payout_batches.c.status)
            .join(payout_items, payout_items.c.batch_id == payout_batches.c.id)
            .where(
                payout_items.c.reconversion_id == reconversion_id,
                payout_items.c.released_ms.is_(None),
            )
        ).all()
    assert payouts <= 1
    if found["status"] == "paid":
        assert payouts == 1 and live == [], (found, live)
        return "alone"
    assert found["status"] == "pending" and payouts == 0 and [r[0] for r in live] == ["unpaid"]
    return "batched"


def test_paid_alone_while_a_file_is_being_made_is_left_out_of_it(
    site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two interleaved by hand: the file has read the queue (the reconversion ready) and
    is writing its XML; the decision alone then holds the reconversion and pauses before
    posting its payout. The file, recorded after, finds the hold and is refused; a file made
    while the decision is still under way does not list it at all."""
    from merchants import service as reconversion
    from merchants.payouts import sepa
    from merchants.payouts import service as payouts

    reconversion_id = _one_ready(site)
    set_debtor(site)
    node, treasurer = node_of(site), _treasurer_member(site)
    file_read, file_go = threading.Event(), threading.Event()
    looked, alone_go = threading.Event(), threading.Event()
    real_file, real_post = sepa.transfer_file, reconversion.post

    def paused_file(*args: Any) -> Any:
        file_read.set()
        assert file_go.wait(120)
        return real_file(*args)

    def paused_post(node: Any, signed: Any) -> Any:
        looked.set()
        assert alone_go.wait(120)
        return real_post(node, signed)

    monkeypatch.setattr(sepa, "transfer_file", paused_file)
    monkeypatch.setattr(reconversion, "post", paused_post)
    outcome: dict[str, Any] = {}

    def alone() -> None:
        outcome["alone"] = reconversion.mark_paid(node, treasurer, reconversion_id, "VIR-SEUL")

    def batch() -> None:
        try:
            outcome["batch"] = payouts.make_batch(node, treasurer, "lot-pendant")
        except Refusal as refusal:
            outcome["batch"] = refusal.code

    making = threading.Thread(target=batch)
    making.start()
    assert file_read.wait(120)  # the file has read the queue: the reconversion is ready
    paying = threading.Thread(target=alone)
    paying.start()
    assert looked.wait(120)  # held, its payout not posted yet
    file_go.set()
    making.join()
    assert outcome["batch"] == "batch_race"
    # While the decision is under way, the queue shows it apart, and no file takes it.
    queue = payouts.queue(node)
    assert [(a.reconversion.id, a.why) for a in queue.apart] == [
        (reconversion_id, payouts.HELD_ALONE)
    ]
    with pytest.raises(Refusal) as nothing:
        payouts.make_batch(node, treasurer, "lot-pendant-2")
    assert nothing.value.code == "nothing_to_pay"
    alone_go.set()
    paying.join()
    assert outcome["alone"].status == "paid"
    assert _paid_once_and_not_in_an_open_batch(site, reconversion_id) == "alone"


def test_a_decision_alone_that_fails_gives_the_reconversion_back_to_the_files(
    site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from merchants import service as reconversion
    from merchants.payouts import service as payouts

    reconversion_id = _one_ready(site)
    set_debtor(site)
    node, treasurer = node_of(site), _treasurer_member(site)

    def failing_post(node: Any, signed: Any) -> Any:
        raise RuntimeError("the node stopped")

    monkeypatch.setattr(reconversion, "post", failing_post)
    with pytest.raises(RuntimeError):
        reconversion.mark_paid(node, treasurer, reconversion_id, "VIR-SEUL")
    monkeypatch.undo()
    made = payouts.make_batch(node, treasurer, "lot-ensuite")
    assert [i.reconversion_id for i in made.batch.items] == [reconversion_id]


@pytest.mark.parametrize("rounds", [6])
def test_paid_alone_and_a_file_made_at_once_pay_it_once(site, rounds: int) -> None:
    """Threads race the two, round after round: each reconversion ends either paid alone
    (in no open batch) or in the file (not paid), and is never paid twice."""
    from merchants import service as reconversion
    from merchants.payouts import service as payouts

    set_debtor(site)
    node, treasurer = node_of(site), _treasurer_member(site)
    fates = []
    for round_ in range(rounds):
        reconversion_id = _one_ready(site)
        start = threading.Barrier(2)
        answers: dict[str, Any] = {}

        def alone(
            rid: int = reconversion_id,
            barrier: threading.Barrier = start,
            answers: dict[str, Any] = answers,
        ) -> None:
            barrier.wait()
            try:
                answers["alone"] = reconversion.mark_paid(node, treasurer, rid, f"VIR-{rid}")
            except Refusal as refusal:
                answers["alone"] = refusal.code

        def batch(
            n: int = round_, barrier: threading.Barrier = start, answers: dict[str, Any] = answers
        ) -> None:
            barrier.wait()
            try:
                answers["batch"] = payouts.make_batch(node, treasurer, f"lot-course-{n}")
            except Refusal as refusal:
                answers["batch"] = refusal.code

        threads = [threading.Thread(target=alone), threading.Thread(target=batch)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        fate = _paid_once_and_not_in_an_open_batch(site, reconversion_id)
        if fate == "alone":
            assert answers["batch"] in ("batch_race", "nothing_to_pay"), answers
        else:
            assert answers["alone"] == "in_payout_batch", answers
            # Settled with its file: cancelled, the next round starts with an empty queue.
            payouts.cancel_batch(node, treasurer, answers["batch"].batch.id)
            reconversion.mark_paid(node, treasurer, reconversion_id, f"VIR-{reconversion_id}")
        fates.append(fate)
    assert len(fates) == rounds
    audit_is_clean(site)


# -- sou payouts -------------------------------------------------------------------------------


def sou_like() -> Any:
    """A `sou` with the plugin's commands among others (a lone command would be the root)."""
    import typer

    from merchants.payouts import plugin as payouts_plugin

    cli = typer.Typer()
    cli.command("version")(lambda: None)
    payouts_plugin.sou_commands(cli=cli)
    return cli


def cli_env(site: Any, node_settings: Any, treasurer: Person | None = None) -> dict[str, str]:
    return {
        "SOU_DATA_DIR": str(node_settings.data_dir),
        "SOU_DATABASE_URL": node_settings.database_url,
        "SOU_PAYOUTS_DEBTOR_NAME": "Association Sou du Val",
        "SOU_PAYOUTS_DEBTOR_IBAN": DEBTOR_IBAN,
        "SOU_PAYOUTS_DEBTOR_BIC": DEBTOR_BIC,
        "SOU_TREASURER": (treasurer or operator(site, "treasurer")).id,
    }


def test_sou_payouts_lists_makes_the_file_and_marks_it_paid(
    site, node_settings: Any, tmp_path: Any
) -> None:
    import json

    from typer.testing import CliRunner

    _, requests = three_requests(site)
    cli, env, run = sou_like(), cli_env(site, node_settings), CliRunner()
    helped = run.invoke(cli, ["payouts", "--help"], env=env)
    assert helped.exit_code == 0
    assert all(name in helped.output for name in ("list", "batch", "paid"))
    listed = run.invoke(cli, ["payouts", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    shown = json.loads(listed.stdout)
    assert [r["reconversion_id"] for r in shown["ready"]] == [requests[0]["id"], requests[1]["id"]]
    assert [a["reconversion_id"] for a in shown["apart"]] == [requests[2]["id"]]
    out = tmp_path / "virements.xml"
    made = run.invoke(cli, ["payouts", "batch", "-o", str(out), "--id", "cli-1", "--json"], env=env)
    assert made.exit_code == 0, made.output
    batch = json.loads(made.stdout)
    assert (batch["count"], batch["total"], batch["replayed"]) == (2, 9_700 + 4_850, False)
    xml = out.read_bytes()
    assert (
        parse(xml).findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", namespaces=NS)
        == (batch["message_id"])
    )
    again = run.invoke(cli, ["payouts", "batch", "-o", "-", "--id", "cli-1"], env=env)
    assert again.exit_code == 0 and again.stdout_bytes == xml  # the same file, to stdout
    assert "made before by this id" in again.stderr
    nothing = run.invoke(cli, ["payouts", "batch", "-o", str(tmp_path / "x.xml")], env=env)
    assert nothing.exit_code == 1 and "No pending reconversion" in nothing.stderr
    assert not (tmp_path / "x.xml").exists()
    quiet = run.invoke(cli, ["payouts", "list"], env=env)
    assert quiet.exit_code == 1 and "Ready for a transfer file: 0." in quiet.stdout
    paid = run.invoke(
        cli, ["payouts", "paid", str(batch["id"]), "--reference", "VIR-CLI-1"], env=env
    )
    assert paid.exit_code == 0, paid.output
    assert "VIR-CLI-1" in paid.stdout
    twice = run.invoke(cli, ["payouts", "paid", str(batch["id"]), "-r", "VIR-CLI-1"], env=env)
    assert twice.exit_code == 0
    other = run.invoke(cli, ["payouts", "paid", str(batch["id"]), "-r", "VIR-AUTRE"], env=env)
    assert other.exit_code == 1 and "VIR-CLI-1" in other.stderr
    assert pending_ids(site) == {requests[2]["id"]}
    audit_is_clean(site)


def test_sou_payouts_says_what_is_wrong_with_its_exit_code(
    site, node_settings: Any, tmp_path: Any
) -> None:
    from typer.testing import CliRunner

    cli, env, run = sou_like(), cli_env(site, node_settings), CliRunner()
    out = str(tmp_path / "f.xml")
    for args in (
        ["payouts", "paid", "1"],  # no --reference
        ["payouts", "paid", "zero", "-r", "X"],
        ["payouts", "batch"],  # no --output
        ["payouts", "nothing"],
    ):
        assert run.invoke(cli, args, env=env).exit_code == 2, args
    bad_id = run.invoke(cli, ["payouts", "batch", "-o", out, "--id", "a b"], env=env)
    assert bad_id.exit_code == 2 and "--id" in bad_id.stderr
    stranger = run.invoke(
        cli, ["payouts", "batch", "-o", out], env={**env, "SOU_TREASURER": "nobody"}
    )
    assert stranger.exit_code == 2 and "not a treasurer" in stranger.stderr
    unknown = run.invoke(cli, ["payouts", "paid", "999999", "-r", "X"], env=env)
    assert unknown.exit_code == 1 and "no transfer batch" in unknown.stderr
    elsewhere = run.invoke(
        cli, ["payouts", "list"], env={**env, "SOU_DATA_DIR": str(tmp_path / "none")}
    )
    assert elsewhere.exit_code == 2


@pytest.mark.one_database
def test_every_message_of_payouts_has_its_french() -> None:
    from merchants.payouts import service
    from tests.test_pages import ROOT, assert_all_french, python_msgids, template_msgids

    msgids = {service.NO_DETAILS_YET, service.DETAILS_INVALID, service.HELD_ALONE}
    msgids |= {
        "Reconversion {id} is in no transfer file.",
        "Reconversion {id} is in transfer file {batch}.",
    }
    for name in ("errors.py", "pages.py"):
        msgids |= python_msgids(ROOT / "merchants" / "payouts" / name)
    msgids |= template_msgids(ROOT / "web" / "templates" / "payouts" / "treasurer.html")
    assert len(msgids) > 40
    assert_all_french(msgids)
