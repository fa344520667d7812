"""The wallet API as residents use it: join, log in, keys, pay, history, receipts; and every
bad input of the issue, each refused with a precise status, code and a message in the
reader's language, changing nothing."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from audits.audit import audit
from ledger.canonical import b64
from ledger.errors import NodeBusy
from ledger.models import log_queue, transfers
from ledger.signing import SigningKey, new_order
from members.access import forget_principals
from runtime import signing
from tests import log_verifier
from tests.conftest import PASSWORD
from tests.people import Person, fund, join, new_client, operator
from wallet_api.endpoints import DirectPayments

# -- helpers -----------------------------------------------------------------------------------


def node_of(site: TestClient) -> Any:
    return site.app.state.node  # type: ignore[attr-defined]


def books(site: TestClient, *people: Person) -> tuple[int, tuple[int, ...]]:
    """What a refusal must leave alone: the number of transfers and these wallets' balances,
    read from the ledger itself."""
    node = node_of(site)
    with node.ledger.reading() as conn:
        count = int(conn.scalar(select(func.count()).select_from(transfers)) or 0)
    return count, tuple(node.ledger.balance(p.account) for p in people)


def wait_sealed(site: TestClient) -> None:
    """Wait for the node's own sealer to put every committed entry into the signed log."""
    node = node_of(site)
    deadline = time.monotonic() + 30
    while True:
        with node.ledger.reading() as conn:
            if not conn.scalar(select(func.count()).select_from(log_queue)):
                return
        assert time.monotonic() < deadline, "the node did not seal its log within 30 s"
        time.sleep(0.05)


def send(person: Person, envelope: dict[str, Any], lang: str = "en") -> Any:
    headers = {"X-CSRF-Token": person.csrf, "Accept-Language": lang}
    return person.client.post("/api/v1/transfers", json=envelope, headers=headers)


def signed(person: Person, key: SigningKey | None = None, **changes: Any) -> dict[str, Any]:
    """A payment envelope of `person`, with fields changed (None removes one) and signed by
    `key` (default: the person's device key) after the change."""
    key = key or person.key
    assert key is not None
    origin = node_of_client(person).ledger.origin
    order = new_order("payment", key, origin, currency="SOU", amount=100)
    order["from"] = person.account
    for name, value in changes.items():
        name = "from" if name == "from_" else name
        if value is None:
            order.pop(name, None)
        else:
            order[name] = value
    return key.sign(order).to_json()


def node_of_client(person: Person) -> Any:
    return person.client.app.state.node  # type: ignore[attr-defined]


def refused_in_both_languages(
    request: Callable[[str], Any], status: int, code: str, english: str, **params: Any
) -> None:
    """`request(lang)` makes one fresh request; in English and in French it is refused with
    `status` and `code`, the English message is `english`, the French one is French."""
    answers = {lang: request(lang) for lang in ("en", "fr")}
    for lang, answer in answers.items():
        assert answer.status_code == status, (lang, answer.text)
        body = answer.json()
        assert body["error"] == code, body
        assert {k: body.get(k) for k in params} == params, body
        assert answer.headers["content-language"] == lang
    assert answers["en"].json()["message"] == english
    french = answers["fr"].json()["message"]
    assert french and french != english, f"not translated: {french!r}"
    for value in answers["en"].json().values():  # no English reason left inside the French
        if isinstance(value, str) and " " in value and value != english:
            assert value not in french, f"English words in the French message: {french!r}"


@pytest.fixture
def pair(site: TestClient) -> tuple[Person, Person]:
    """Camille with 50.00 in her wallet, and Louis with nothing."""
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, camille, 5_000)
    return camille, louis


def test_join_pay_and_see_history(site: TestClient) -> None:
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, camille, 5_000)
    paid = camille.pay(louis, 1_250, memo="Covoiturage")
    assert paid.status_code == 201, paid.text
    assert camille.balance() == 3_750 and louis.balance() == 1_250
    items = louis.get("/api/v1/wallet/history").json()["items"]
    assert items[0]["amount"] == 1_250 and items[0]["counterparty"] == camille.id
    assert items[0]["memo"] == "Covoiturage"


# -- bad input on the transfer API ---------------------------------------------------------------

AMOUNT_MESSAGE = "The order is not valid: the amount {reason}."
WHOLE = "must be a whole number of cents"


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        (0, "must be at least 1"),
        (-500, "must be at least 1"),
        (12.5, WHOLE),
        (12.0, WHOLE),
        (1250.5, WHOLE),  # 12.505: a decimal beyond cents
        ("12", WHOLE),
        ("12.50", WHOLE),
        (True, WHOLE),
        (None, "is missing"),
    ],
    ids=[
        "zero",
        "negative",
        "float",
        "float-whole",
        "beyond-cents",
        "string",
        "text",
        "bool",
        "none",
    ],
)
def test_bad_amounts_are_refused_and_change_nothing(
    site: TestClient, pair: tuple[Person, Person], amount: Any, reason: str
) -> None:
    camille, louis = pair
    before = books(site, camille, louis)
    refused_in_both_languages(
        lambda lang: send(camille, signed(camille, to=louis.account, amount=amount), lang),
        422,
        "invalid_order",
        AMOUNT_MESSAGE.format(reason=reason),
        field="amount",
    )
    assert books(site, camille, louis) == before


@pytest.mark.parametrize(
    ("body", "field", "english"),
    [
        ({"sig": "x"}, "order", "is missing"),
        ({"order": {}, "sig": ""}, "sig", "must not be empty"),
        ({"order": {}, "sig": "x" * 101}, "sig", "must be at most 100 characters"),
        ({"order": [], "sig": "x"}, "order", "must be an object"),
        ({"order": {}, "sig": 5}, "sig", "must be text"),
        ({"order": {}, "sig": "x", "tip": 1}, "tip", "is not expected here"),
    ],
    ids=["missing", "too-short", "too-long", "not-an-object", "not-text", "extra"],
)
def test_malformed_requests_are_refused_in_the_readers_language(
    site: TestClient, pair: tuple[Person, Person], body: dict[str, Any], field: str, english: str
) -> None:
    """What the request's schema refuses (before any order is read) is explained like the
    ledger's refusals: the reason in French too, not pydantic's English inside French."""
    camille, louis = pair
    before = books(site, camille, louis)
    refused_in_both_languages(
        lambda lang: send(camille, body, lang),
        422,
        "invalid_request",
        f"The field {field} is not valid: {english}.",
        field=field,
    )
    assert books(site, camille, louis) == before


def test_amount_over_the_limit_is_refused_even_when_the_wallet_holds_it(
    site: TestClient, pair: tuple[Person, Person]
) -> None:
    camille, louis = pair
    limit = node_of(site).settings.max_amount
    fund(site, camille, limit)  # with the 50.00 she had: more than the limit
    before = books(site, camille, louis)
    refused_in_both_languages(
        lambda lang: send(camille, signed(camille, to=louis.account, amount=limit + 1), lang),
        422,
        "invalid_order",
        AMOUNT_MESSAGE.format(reason=f"must be at most {limit}"),
        field="amount",
    )
    assert books(site, camille, louis) == before
    assert camille.pay(louis, limit).status_code == 201  # the limit itself is allowed


def test_more_than_the_balance_is_refused(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, louis = pair
    before = books(site, camille, louis)
    refused_in_both_languages(
        lambda lang: send(camille, signed(camille, to=louis.account, amount=5_001), lang),
        409,
        "insufficient_funds",
        "The balance is too low for this amount.",
        available=5_000,
        needed=5_001,
    )
    assert books(site, camille, louis) == before


@pytest.mark.parametrize("to", ["member:nobody-0000", "member:admin-0000"])
def test_payment_to_an_unknown_member(
    site: TestClient, pair: tuple[Person, Person], to: str
) -> None:
    camille, louis = pair
    before = books(site, camille, louis)
    refused_in_both_languages(
        lambda lang: send(camille, signed(camille, to=to), lang),
        404,
        "unknown_member",
        "There is no member with this id.",
    )
    assert books(site, camille, louis) == before


def test_payment_to_an_operator_is_refused(site: TestClient, pair: tuple[Person, Person]) -> None:
    """Operators have no wallet: an order to their would-be account names no member."""
    camille, louis = pair
    admin = operator(site, "admin")
    before = books(site, camille, louis)
    answer = send(camille, signed(camille, to=f"member:{admin.id}"))
    assert (answer.status_code, answer.json()["error"]) == (404, "unknown_member")
    assert books(site, camille, louis) == before


def test_payment_to_oneself(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, louis = pair
    before = books(site, camille, louis)
    refused_in_both_languages(
        lambda lang: send(camille, signed(camille, to=camille.account), lang),
        422,
        "invalid_order",
        "The order is not valid: the recipient cannot be yourself.",
        field="to",
    )
    assert books(site, camille, louis) == before


def test_order_signed_by_a_revoked_key(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, louis = pair
    old = camille.key
    assert old is not None
    camille.add_key("new phone")
    assert camille.delete(f"/api/v1/me/keys/{old.key_id}").status_code == 204
    before = books(site, camille, louis)
    refused_in_both_languages(
        lambda lang: send(camille, signed(camille, old, to=louis.account), lang),
        403,
        "revoked_key",
        "This device key has been revoked.",
    )
    assert books(site, camille, louis) == before
    assert camille.pay(louis, 100).status_code == 201  # the new key signs


def test_order_signed_by_another_members_key(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, louis = pair
    before = books(site, camille, louis)
    refused_in_both_languages(
        lambda lang: send(camille, signed(camille, louis.key, to=louis.account), lang),
        403,
        "wrong_signer",
        "This key may not sign this order.",
    )
    # Camille's key, but naming Louis's key id: the signature does not match that key.
    assert camille.key is not None and louis.key is not None
    forged = signed(camille, to=louis.account, key=None)
    forged["order"]["key"] = louis.key.key_id
    answer = send(camille, forged)
    assert (answer.status_code, answer.json()["error"]) == (403, "bad_signature")
    assert books(site, camille, louis) == before


def test_expired_order(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, louis = pair
    before = books(site, camille, louis)
    expired = int(time.time()) - 60
    refused_in_both_languages(
        lambda lang: send(camille, signed(camille, to=louis.account, expires=expired), lang),
        422,
        "order_expired",
        "This order has expired; make a new one.",
    )
    assert books(site, camille, louis) == before


def test_order_for_another_node(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, louis = pair
    before = books(site, camille, louis)
    refused_in_both_languages(
        lambda lang: send(camille, signed(camille, to=louis.account, node="elsewhere/x"), lang),
        422,
        "wrong_node",
        "This order was made for another node.",
    )
    assert books(site, camille, louis) == before


def test_tampered_order_and_malformed_envelopes(
    site: TestClient, pair: tuple[Person, Person]
) -> None:
    camille, louis = pair
    before = books(site, camille, louis)
    tampered = signed(camille, to=louis.account, amount=100)
    tampered["order"]["amount"] = 4_000  # changed after signing
    cases: list[tuple[Any, int, str]] = [
        (tampered, 403, "bad_signature"),
        (
            {**signed(camille, to=louis.account), "sig": "not base64!"},
            422,
            "bad_signature_encoding",
        ),
        ({**signed(camille, to=louis.account), "sig": b64(b"short")}, 422, "invalid_order"),
        ({"order": "payment", "sig": "AAAA"}, 422, "invalid_request"),
        ({"order": {}, "sig": "AAAA", "extra": 1}, 422, "invalid_request"),
        (signed(camille, to=louis.account, kind="topup", source="bank"), 422, "bad_kind"),
        (signed(camille, to=louis.account, colour="green"), 422, "invalid_order"),
        (signed(camille, to=louis.account, memo="x" * 281), 422, "invalid_order"),
        (signed(camille, to=louis.account, currency="EUR"), 422, "invalid_order"),
        (signed(camille, to=louis.account, v=2), 422, "invalid_order"),
        (
            signed(camille, to=louis.account, expires=int(time.time()) + 10**7),
            422,
            "expiry_too_far",
        ),
    ]
    for envelope, status, code in cases:
        answer = send(camille, envelope)
        assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    not_json = camille.client.post(
        "/api/v1/transfers",
        content=b"{not json",
        headers={"X-CSRF-Token": camille.csrf, "Content-Type": "application/json"},
    )
    assert (not_json.status_code, not_json.json()["error"]) == (422, "invalid_request")
    assert books(site, camille, louis) == before


def test_same_order_twice_is_posted_once(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, louis = pair
    envelope = signed(camille, to=louis.account, amount=1_000)
    first = send(camille, envelope)
    assert first.status_code == 201 and first.json()["replayed"] is False
    after_first = books(site, camille, louis)
    again = send(camille, envelope)
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "replayed": True}
    assert books(site, camille, louis) == after_first == (after_first[0], (4_000, 1_000))
    # Even once the wallet cannot pay it any more, the same order answers the same result.
    assert camille.pay(louis, 4_000).status_code == 201
    assert send(camille, envelope).status_code == 200


def test_same_id_with_another_body_is_a_conflict(
    site: TestClient, pair: tuple[Person, Person]
) -> None:
    camille, louis = pair
    first = signed(camille, to=louis.account, amount=1_000)
    assert send(camille, first).status_code == 201
    before = books(site, camille, louis)
    client_id = first["order"]["id"]
    refused_in_both_languages(
        lambda lang: send(camille, signed(camille, to=louis.account, id=client_id), lang),
        409,
        "idempotency_conflict",
        "This request id was already used for a different request.",
    )
    assert books(site, camille, louis) == before


def test_a_refused_order_can_be_fixed_and_sent_again_with_its_id(
    site: TestClient, pair: tuple[Person, Person]
) -> None:
    camille, louis = pair
    too_much = signed(camille, to=louis.account, amount=6_000)
    assert send(camille, too_much).status_code == 409
    fixed = signed(camille, to=louis.account, amount=600, id=too_much["order"]["id"])
    assert send(camille, fixed).status_code == 201
    assert books(site, camille, louis)[1] == (4_400, 600)


def test_spending_from_someone_elses_account(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, louis = pair
    before = books(site, camille, louis)
    # Louis relays an order Camille signed, and one from her account signed by his own key.
    for envelope in (
        signed(camille, to=louis.account),
        signed(louis, to=louis.account, from_=camille.account),
    ):
        refused_in_both_languages(
            lambda lang, envelope=envelope: send(louis, envelope, lang),  # type: ignore[misc]
            403,
            "not_your_wallet",
            "An order can only spend from your own wallet.",
        )
    assert books(site, camille, louis) == before


def test_operators_have_no_wallet(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, _ = pair
    for role in ("admin", "treasurer", "office"):
        person = operator(site, role)
        for answer in (
            person.get("/api/v1/wallet"),
            person.get("/api/v1/wallet/history"),
            person.post("/api/v1/transfers", json=signed(camille)),
        ):
            assert (answer.status_code, answer.json()["error"]) == (403, "forbidden"), answer.text


# -- device keys ---------------------------------------------------------------------------------


def key_body(key: SigningKey, label: str = "phone") -> dict[str, str]:
    return {"public_key": b64(key.public_key), "label": label}


def test_keys_add_list_revoke(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, louis = pair
    first = camille.key
    assert first is not None
    second = camille.add_key("tablet")
    listed = camille.get("/api/v1/me/keys").json()
    assert [(k["key_id"], k["revoked_ms"]) for k in listed] == [
        (first.key_id, None),
        (second.key_id, None),
    ]
    assert listed[1]["label"] == "tablet"
    assert camille.delete(f"/api/v1/me/keys/{first.key_id}").status_code == 204
    assert camille.delete(f"/api/v1/me/keys/{first.key_id}").status_code == 204  # idempotent
    listed = {k["key_id"]: k["revoked_ms"] for k in camille.get("/api/v1/me/keys").json()}
    assert listed[first.key_id] is not None and listed[second.key_id] is None
    # Nobody lists or revokes someone else's keys.
    assert first.key_id not in {k["key_id"] for k in louis.get("/api/v1/me/keys").json()}
    refused = louis.delete(f"/api/v1/me/keys/{second.key_id}")
    assert (refused.status_code, refused.json()["error"]) == (404, "unknown_device_key")
    assert camille.pay(louis, 100).status_code == 201  # the second key still signs


def test_bad_and_duplicate_keys(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, louis = pair
    assert camille.key is not None
    for public_key, status, code in [
        ("!" * 43, 422, "bad_public_key"),
        (b64(bytes(31)) + "AA", 422, "bad_public_key"),
        ("A" * 10, 422, "invalid_request"),
        (b64(camille.key.public_key), 409, "key_exists"),
    ]:
        answer = louis.post("/api/v1/me/keys", json={"public_key": public_key, "label": "x"})
        assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    assert len(louis.get("/api/v1/me/keys").json()) == 1


def test_an_eleventh_key_is_refused(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, _ = pair
    for n in range(9):
        camille.add_key(f"device {n}")
    extra = SigningKey.generate()
    refused_in_both_languages(
        lambda lang: camille.client.post(
            "/api/v1/me/keys",
            json=key_body(extra),
            headers={"X-CSRF-Token": camille.csrf, "Accept-Language": lang},
        ),
        409,
        "too_many_keys",
        "You have 10 active device keys: revoke one first.",
        count=10,
    )
    keys = camille.get("/api/v1/me/keys").json()
    assert len(keys) == 10
    assert camille.delete(f"/api/v1/me/keys/{keys[0]['key_id']}").status_code == 204
    assert camille.post("/api/v1/me/keys", json=key_body(extra)).status_code == 201


@pytest.mark.parametrize("role", ["admin", "office"])
def test_operator_recovers_a_members_keys(
    site: TestClient, pair: tuple[Person, Person], role: str
) -> None:
    camille, louis = pair
    lost = [camille.key, camille.add_key("tablet")]
    officer = operator(site, role)
    new_key = SigningKey.generate()
    answer = officer.post(
        f"/api/v1/members/{camille.id}/keys/recover", json=key_body(new_key, "new phone")
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["key_id"] == new_key.key_id and answer.json()["label"] == "new phone"
    keys = {k["key_id"]: k["revoked_ms"] for k in camille.get("/api/v1/me/keys").json()}
    assert all(keys[k.key_id] is not None for k in lost if k is not None)
    assert keys[new_key.key_id] is None
    before = books(site, camille, louis)
    refused = send(camille, signed(camille, lost[0], to=louis.account))
    assert (refused.status_code, refused.json()["error"]) == (403, "revoked_key")
    assert books(site, camille, louis) == before
    assert send(camille, signed(camille, new_key, to=louis.account)).status_code == 201


def test_a_recovery_sent_twice_or_with_a_used_key_never_leaves_the_member_keyless(
    site: TestClient, pair: tuple[Person, Person]
) -> None:
    camille, louis = pair
    officer = operator(site, "office")
    new_key = SigningKey.generate()
    url = f"/api/v1/members/{camille.id}/keys/recover"
    assert officer.post(url, json=key_body(new_key)).status_code == 201
    again = officer.post(url, json=key_body(new_key))  # the operator's form sent twice
    assert again.status_code == 201, again.text
    live = [k["key_id"] for k in camille.get("/api/v1/me/keys").json() if not k["revoked_ms"]]
    assert live == [new_key.key_id]
    assert louis.key is not None  # another member's key: refused, and nothing revoked
    refused = officer.post(url, json=key_body(louis.key))
    assert (refused.status_code, refused.json()["error"]) == (409, "key_exists")
    live = [k["key_id"] for k in camille.get("/api/v1/me/keys").json() if not k["revoked_ms"]]
    assert live == [new_key.key_id]
    assert send(camille, signed(camille, new_key, to=louis.account)).status_code == 201


def test_who_may_not_recover_keys(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, louis = pair
    body = key_body(SigningKey.generate())
    for person in (operator(site, "treasurer"), louis):
        answer = person.post(f"/api/v1/members/{camille.id}/keys/recover", json=body)
        assert (answer.status_code, answer.json()["error"]) == (403, "forbidden")
    admin = operator(site, "admin")
    for target in ("nobody-0000", admin.id):
        answer = admin.post(f"/api/v1/members/{target}/keys/recover", json=body)
        assert (answer.status_code, answer.json()["error"]) == (404, "unknown_member")
    assert len(camille.get("/api/v1/me/keys").json()) == 1


def test_key_events_are_in_the_log_and_the_audit_holds(
    site: TestClient, pair: tuple[Person, Person]
) -> None:
    camille, louis = pair
    first = camille.key
    assert first is not None
    camille.add_key("tablet")
    camille.delete(f"/api/v1/me/keys/{first.key_id}")
    officer = operator(site, "office")
    recovered = SigningKey.generate()
    answer = officer.post(f"/api/v1/members/{camille.id}/keys/recover", json=key_body(recovered))
    assert answer.status_code == 201
    assert send(camille, signed(camille, recovered, to=louis.account)).status_code == 201
    wait_sealed(site)
    node = node_of(site)
    with node.ledger.reading() as conn:
        events = conn.execute(
            text(
                "SELECT e.action, e.key_id, l.idx FROM key_events e JOIN keys k "
                "ON k.key_id = e.key_id LEFT JOIN log_leaves l ON l.key_event_id = e.id "
                "WHERE k.owner = :owner ORDER BY e.id"
            ),
            {"owner": camille.account},
        ).all()
    # register, register (tablet), revoke (first), revoke (tablet), register (recovered)
    assert [e.action for e in events] == ["register", "register", "revoke", "revoke", "register"]
    assert all(e.idx is not None for e in events), events  # each one a leaf of the log
    report = audit(node.engine, node_public_key=node.node_key.public_key, workers=1)
    assert report.ok, report.findings
    assert report.unsealed == 0 and report.leaves == report.transfers + report.key_events


# -- history and receipts -------------------------------------------------------------------------


def test_history_pages_hold_every_movement_once(
    site: TestClient, pair: tuple[Person, Person]
) -> None:
    camille, louis = pair
    paid = []
    for n in range(23):
        payer, payee = (camille, louis) if n % 3 else (louis, camille)
        if payer is louis and louis.balance() < n + 1:
            payer, payee = camille, louis
        answer = payer.pay(payee, n + 1, memo=f"n{n}")
        assert answer.status_code == 201
        paid.append(answer.json()["transfer_id"])
    seen: list[int] = []
    before = None
    pages = 0
    while True:
        params = {"limit": 5} | ({"before": before} if before else {})
        page = camille.get("/api/v1/wallet/history", params=params).json()
        seen += [m["transfer_id"] for m in page["items"]]
        pages += 1
        before = page["next_before"]
        if before is None:
            break
    assert len(seen) == len(set(seen)) == 24  # 23 payments and the top-up, each once
    assert seen == sorted(seen, reverse=True)  # newest first
    assert set(paid) < set(seen) and pages == 5
    total = sum(
        m["amount"] for m in camille.get("/api/v1/wallet/history?limit=100").json()["items"]
    )
    assert total == camille.balance()


def test_history_paging_refuses_bad_parameters(
    site: TestClient, pair: tuple[Person, Person]
) -> None:
    camille, _ = pair
    for query in ("limit=0", "limit=101", "limit=x", "before=0", "before=-3", "before=1e3"):
        answer = camille.get(f"/api/v1/wallet/history?{query}")
        assert (answer.status_code, answer.json()["error"]) == (422, "invalid_request"), query


def test_nobody_sees_another_members_history_or_receipt(
    site: TestClient, pair: tuple[Person, Person]
) -> None:
    camille, louis = pair
    eve = join(site, "Eve")
    fund(site, eve, 100)
    paid = camille.pay(louis, 700).json()["transfer_id"]
    wait_sealed(site)
    eve_sees = {m["transfer_id"] for m in eve.get("/api/v1/wallet/history").json()["items"]}
    assert paid not in eve_sees and len(eve_sees) == 1
    refused_in_both_languages(
        lambda lang: eve.client.get(
            f"/api/v1/transfers/{paid}/receipt", headers={"Accept-Language": lang}
        ),
        404,
        "unknown_transfer",
        "There is no such transfer.",
    )
    # The same answer as for a transfer that does not exist: nothing leaks.
    missing = eve.get("/api/v1/transfers/999999/receipt")
    assert (missing.status_code, missing.json()["error"]) == (404, "unknown_transfer")
    anonymous = new_client(site).get(f"/api/v1/transfers/{paid}/receipt")
    assert anonymous.status_code == 404
    for person in (camille, louis, operator(site, "treasurer"), operator(site, "admin")):
        assert person.get(f"/api/v1/transfers/{paid}/receipt").status_code == 200


def verifier_key_of(origin: str, public_key: bytes) -> str:
    """The signed-note verifier key, built from the spec (log_verifier), not from Sou."""
    encoded = base64.b64encode(b"\x01" + public_key).decode()
    return f"{origin}+{log_verifier.key_id(origin, public_key).hex()}+{encoded}"


def test_receipt_proof_verifies_against_the_node_key(
    site: TestClient, pair: tuple[Person, Person]
) -> None:
    camille, louis = pair
    envelope = signed(camille, to=louis.account, amount=1_234, memo="Pain")
    paid = send(camille, envelope).json()
    for n in range(5):  # the tree grows past the transfer
        camille.pay(louis, n + 1)
    wait_sealed(site)
    info = new_client(site).get("/api/v1/node").json()
    node_key = next(k for k in info["keys"] if k["owner"] == "node")["public_key"]
    raw_key = base64.urlsafe_b64decode(node_key + "=" * (-len(node_key) % 4))
    vkey = verifier_key_of(info["origin"], raw_key)
    for person in (camille, louis):
        found = person.get(f"/api/v1/transfers/{paid['transfer_id']}/receipt").json()
        origin, size, root = log_verifier.open_checkpoint(found["checkpoint"], vkey)
        assert origin == info["origin"] and size == found["tree_size"]
        proof = [base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)) for h in found["proof"]]
        leaf = log_verifier.leaf_hash(found["leaf"].encode())
        assert log_verifier.verify_inclusion(leaf, found["index"], size, proof, root)
        entry = json.loads(found["leaf"])
        assert entry["id"] == paid["transfer_id"] and entry["order"] == envelope["order"]
        assert entry["sig"] == envelope["sig"]
        assert sorted(entry["postings"]) == sorted(
            [[camille.account, "SOU", -1_234], [louis.account, "SOU", 1_234]]
        )
        # The proof does not verify for another leaf or against another key.
        other = log_verifier.leaf_hash(found["leaf"].replace("1234", "1235").encode())
        assert not log_verifier.verify_inclusion(other, found["index"], size, proof, root)
        with pytest.raises(ValueError):
            log_verifier.open_checkpoint(
                found["checkpoint"], verifier_key_of(info["origin"], bytes(32))
            )
    assert info["checkpoint"] == new_client(site).get("/api/v1/checkpoint").text


# -- logging in, sessions, CSRF, tokens ----------------------------------------------------------


def log_in(client: TestClient, email: str, password: str, lang: str = "en") -> Any:
    return client.post(
        "/api/v1/session",
        json={"email": email, "password": password},
        headers={"Accept-Language": lang},
    )


def test_wrong_password_and_unknown_email(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, _ = pair
    for email in (camille.member["email"], "nobody@village.test"):
        refused_in_both_languages(
            lambda lang, email=email: log_in(new_client(site), email, "wrong password", lang),  # type: ignore[misc]
            401,
            "bad_login",
            "Wrong email or password.",
        )
        assert "sou_session" not in log_in(new_client(site), email, "nope").cookies


def test_session_cookie_attributes(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, _ = pair
    for base, secure in (("http://127.0.0.1", False), ("https://127.0.0.1", True)):
        client = TestClient(site.app, base_url=base)
        answer = log_in(client, camille.member["email"], PASSWORD)
        assert answer.status_code == 200
        cookie = next(
            v for v in answer.headers.get_list("set-cookie") if v.startswith("sou_session=")
        )
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "samesite", "path", "max-age"} <= attributes
        assert "samesite=lax" in cookie.lower()
        assert ("secure" in attributes) is secure
        assert answer.json()["csrf"] and answer.json()["csrf"] not in cookie


def test_log_out_ends_the_session(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, _ = pair
    cookie = camille.client.cookies.get("sou_session")
    assert cookie
    assert camille.delete("/api/v1/session").status_code == 204
    stolen = new_client(site)
    stolen.cookies.set("sou_session", cookie)
    answer = stolen.get("/api/v1/me")
    assert (answer.status_code, answer.json()["error"]) == (401, "login_required")
    assert camille.get("/api/v1/wallet").status_code == 401


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_cookie_writes_need_the_csrf_token(
    site: TestClient, pair: tuple[Person, Person], token: str | None
) -> None:
    camille, louis = pair
    before = books(site, camille, louis)
    keys_before = camille.get("/api/v1/me/keys").json()

    def request(lang: str, method: str, path: str, body: Any) -> Any:
        headers = {"Accept-Language": lang}
        if token is not None:
            headers["X-CSRF-Token"] = token
        return camille.client.request(method, path, json=body, headers=headers)

    assert camille.key is not None
    for method, path, body in [
        ("POST", "/api/v1/transfers", signed(camille, to=louis.account)),
        ("POST", "/api/v1/me/keys", key_body(SigningKey.generate())),
        ("DELETE", f"/api/v1/me/keys/{camille.key.key_id}", None),
        ("POST", "/api/v1/me/tokens", {"scope": "wallet", "label": "x"}),
        ("DELETE", "/api/v1/session", None),
    ]:
        refused_in_both_languages(
            lambda lang, m=method, p=path, b=body: request(lang, m, p, b),  # type: ignore[misc]
            403,
            "csrf",
            "This form has expired or did not come from this site. Reload the page and try again.",
        )
    assert books(site, camille, louis) == before
    assert camille.get("/api/v1/me/keys").json() == keys_before
    assert camille.get("/api/v1/me/tokens").json() == []
    assert camille.get("/api/v1/me").status_code == 200  # still logged in


def test_bearer_tokens_need_no_csrf(site: TestClient, pair: tuple[Person, Person]) -> None:
    camille, louis = pair
    made = camille.post("/api/v1/me/tokens", json={"scope": "wallet", "label": "script"})
    assert made.status_code == 201
    device = new_client(site)  # no cookie at all
    device.headers["Authorization"] = f"Bearer {made.json()['token']}"
    answer = device.post("/api/v1/transfers", json=signed(camille, to=louis.account, amount=300))
    assert answer.status_code == 201, answer.text
    assert device.get("/api/v1/wallet").json()["balance"] == 4_700
    listed = camille.get("/api/v1/me/tokens").json()
    assert [(t["scope"], t["label"]) for t in listed] == [("wallet", "script")]
    assert "token" not in listed[0]  # the secret is shown once
    # A token may not register a key or make another token: that takes the password, so a
    # stolen token cannot sign payments with a key of its own, nor outlive its revocation.
    for path, body in [
        ("/api/v1/me/keys", key_body(SigningKey.generate())),
        ("/api/v1/me/tokens", {"scope": "wallet", "label": "more"}),
    ]:
        answer = device.post(path, json=body)
        assert (answer.status_code, answer.json()["error"]) == (403, "token_scope"), path
    assert len(camille.get("/api/v1/me/keys").json()) == 1
    assert len(camille.get("/api/v1/me/tokens").json()) == 1


def test_a_payment_not_posted_in_time_is_answered_busy_and_can_be_sent_again(
    site: TestClient, pair: tuple[Person, Person], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poster holds the order past the wait (a stalled database): the payer hears 503
    and may send the same order again; it is posted once, and the late outcome of the first
    changes nothing."""
    camille, louis = pair
    poster = node_of(site).poster
    stalled: list[Future[Any]] = []

    def submit(order: Any) -> Future[Any]:
        stalled.append(Future())
        return stalled[-1]

    monkeypatch.setattr(signing, "POST_TIMEOUT_S", 0.2)
    monkeypatch.setattr(poster, "submit", submit)
    order = signed(camille, to=louis.account, amount=300)
    for lang, words in (("en", "The node is busy; try again in a moment."), ("fr", None)):
        answer = send(camille, order, lang)
        assert (answer.status_code, answer.json()["error"]) == (503, "node_busy"), answer.text
        assert words is None or answer.json()["message"] == words
    monkeypatch.undo()
    for late in stalled:  # the batch committed after all, or failed: nobody is waiting
        late.set_exception(NodeBusy("late"))
    assert send(camille, order).status_code == 201
    assert send(camille, order).json()["replayed"] is True
    assert (camille.balance(), louis.balance()) == (4_700, 300)


def test_device_payments_answered_before_routing_answer_as_the_endpoint_does(
    site: TestClient, pair: tuple[Person, Person], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Payments by a remembered wallet token skip FastAPI's routing (`DirectPayments`); the
    answers, accepted or refused, are those the endpoint gives. Anything it does not take
    (a token not remembered, a malformed body, another content type) reaches the endpoint."""
    camille, louis = pair
    made = camille.post("/api/v1/me/tokens", json={"scope": "wallet", "label": "phone"})
    device = new_client(site)
    device.headers["Authorization"] = f"Bearer {made.json()['token']}"
    direct: list[bool] = []
    pay = DirectPayments._pay

    async def counted(self: DirectPayments, *args: Any) -> bool:
        direct.append(await pay(self, *args))
        return direct[-1]

    monkeypatch.setattr(DirectPayments, "_pay", counted)

    def both(make: Callable[[], Any], lang: str = "fr", **headers: str) -> list[Any]:
        """A request made by `make()` answered by the endpoint (the token forgotten first),
        then another directly (the token remembered by the first)."""
        answers = []
        for forget in (True, False):
            if forget:
                forget_principals(node_of(site))
            body = make()
            sent = {"Accept-Language": lang, **headers}
            if isinstance(body, bytes):
                answers.append(device.post("/api/v1/transfers", content=body, headers=sent))
            else:
                answers.append(device.post("/api/v1/transfers", json=body, headers=sent))
        return answers

    def alike(answers: list[Any]) -> dict[str, Any]:
        by_endpoint, directly = answers
        assert by_endpoint.status_code == directly.status_code, (by_endpoint.text, directly.text)
        for header in ("content-type", "content-language"):
            assert by_endpoint.headers.get(header) == directly.headers.get(header), header
        return {"endpoint": by_endpoint.json(), "direct": directly.json()}

    # Accepted: 201, then 200 for the same order sent again.
    order = signed(camille, to=louis.account, amount=300)
    first, again = both(lambda: order)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {**first.json(), "replayed": True}
    assert direct == [False, True]  # the endpoint answered the first, the replay directly
    paid = alike(both(lambda: signed(camille, to=louis.account, amount=200)))
    assert paid["endpoint"]["postings"] == paid["direct"]["postings"]
    assert direct[-2:] == [False, True]

    # Refused by the ledger or the wallet rules, in the reader's language: the same words.
    for changes, code in [
        ({"to": louis.account, "amount": 0}, "invalid_order"),
        ({"to": louis.account, "amount": 4_301}, "insufficient_funds"),
        ({"to": camille.account}, "invalid_order"),
        ({"to": "member:nobody-0000"}, "unknown_member"),
        ({"to": louis.account, "from_": louis.account}, "not_your_wallet"),
    ]:
        refused = alike(both(lambda: signed(camille, **changes)))  # noqa: B023
        assert refused["endpoint"] == refused["direct"]
        assert refused["direct"]["error"] == code, refused
        assert direct[-2:] == [False, True]
    # Not taken: left to the endpoint, which refuses as ever.
    for make, headers in [
        (lambda: {**signed(camille, to=louis.account), "sig": ""}, {}),
        (
            lambda: json.dumps(signed(camille, to=louis.account)).encode(),
            {"Content-Type": "text/plain"},
        ),
        (lambda: b"{not json", {"Content-Type": "application/json"}),
    ]:
        taken = len(direct)
        refused = alike(both(make, **headers))
        assert refused["endpoint"] == refused["direct"]
        assert refused["direct"]["error"] == "invalid_request", refused
        assert direct[taken:] in ([False, False], [])  # offered, then given back; or not offered
    assert camille.balance() == 4_300 and louis.balance() == 700


def test_pos_token_reads_its_merchants_payments_only(
    site: TestClient, pair: tuple[Person, Person]
) -> None:
    camille, louis = pair
    bakery, grocer = join(site, "Boulangerie", "merchant"), join(site, "Epicerie", "merchant")
    assert camille.pay(bakery, 450, memo="Pain").status_code == 201
    assert camille.pay(grocer, 990).status_code == 201
    assert camille.pay(louis, 10).status_code == 201
    assert bakery.pay(grocer, 100).status_code == 201  # the bakery's own spending
    made = bakery.post("/api/v1/me/tokens", json={"scope": "pos", "label": "counter"})
    assert made.status_code == 201
    pos = new_client(site)
    pos.headers["Authorization"] = f"Bearer {made.json()['token']}"
    seen = pos.get("/api/v1/pos/payments").json()["items"]
    assert [(m["amount"], m["counterparty"], m["memo"]) for m in seen] == [
        (450, camille.id, "Pain")
    ]
    # A pos token pays nothing, reads no wallet, adds no key, makes no token.
    for method, path, body in [
        ("POST", "/api/v1/transfers", signed(bakery, to=camille.account)),
        ("GET", "/api/v1/wallet", None),
        ("GET", "/api/v1/wallet/history", None),
        ("POST", "/api/v1/me/keys", key_body(SigningKey.generate())),
        ("GET", "/api/v1/me/keys", None),
        ("POST", "/api/v1/me/tokens", {"scope": "wallet", "label": "escalate"}),
    ]:
        answer = pos.request(method, path, json=body)
        assert (answer.status_code, answer.json()["error"]) == (403, "token_scope"), path
    # A wallet token, or a resident, does not read point-of-sale payments.
    wallet = camille.post("/api/v1/me/tokens", json={"scope": "wallet", "label": "w"}).json()
    as_wallet = new_client(site)
    as_wallet.headers["Authorization"] = f"Bearer {wallet['token']}"
    assert as_wallet.get("/api/v1/pos/payments").status_code == 403
    assert camille.get("/api/v1/pos/payments").status_code == 403
    refused = camille.post("/api/v1/me/tokens", json={"scope": "pos", "label": "no shop"})
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    # Revoked: the token no longer opens anything.
    assert bakery.delete(f"/api/v1/me/tokens/{made.json()['id']}").status_code == 204
    refused_in_both_languages(
        lambda lang: pos.get("/api/v1/pos/payments", headers={"Accept-Language": lang}),
        401,
        "bad_token",
        "This API token is not valid (unknown or revoked).",
    )


def test_pos_payments_pages_reach_every_payment(
    site: TestClient, pair: tuple[Person, Person]
) -> None:
    """A page of the merchant's history full of its own spending must not end the paging
    before older payments received."""
    camille, louis = pair
    bakery = join(site, "Boulangerie", "merchant")
    received = [camille.pay(bakery, 100 + n).json()["transfer_id"] for n in range(3)]
    for _ in range(7):
        assert bakery.pay(louis, 1).status_code == 201
    token = bakery.post("/api/v1/me/tokens", json={"scope": "pos", "label": "c"}).json()
    pos = new_client(site)
    pos.headers["Authorization"] = f"Bearer {token['token']}"
    seen: list[int] = []
    before = None
    for _ in range(20):
        params = {"limit": 2} | ({"before": before} if before else {})
        page = pos.get("/api/v1/pos/payments", params=params).json()
        seen += [m["transfer_id"] for m in page["items"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == sorted(received, reverse=True)
