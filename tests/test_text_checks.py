"""Names, labels and memos read as what they hold: a control or invisible character (a
bidirectional override such as `pay \u202e0001 SOU`, a zero-width space, a line break...) is
refused with a 422 naming the field, in French too, and nothing changes. Any visible text is
taken, in any script."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import InvalidOrder
from ledger.orders import MAX_MEMO, read_common
from ledger.signing import new_order
from ledger.text import HIDDEN_CATEGORIES, hidden_character
from members import service as members
from tests.factories import Book, refused
from tests.people import fund, join, new_client, operator
from tests.test_pos import _shop
from web.refusals import Refusal

SPOOF = "pay \u202e0001 SOU"
HIDDEN = st.characters(categories=sorted(HIDDEN_CATEGORIES))  # type: ignore[arg-type]
VISIBLE = st.characters(exclude_categories=sorted(HIDDEN_CATEGORIES))  # type: ignore[arg-type]
# Bidi embeddings, overrides and isolates, marks, zero-width characters, BOM, controls.
NAMED_HIDDEN = [
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
    "\u200e",
    "\u200f",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\n",
    "\t",
    "\x7f",
    "\x85",
    "\ue000",
    "\u2028",
]
SCRIPTS = ["Café Zoé", "مقهى السوق", "שוק הכפר", "村の市場", "마을 시장", "pain 🥖 & 🧀", "👍🏽"]


def _memo_order(memo: str) -> dict[str, Any]:
    common = {"v": 1, "node": "sou.test", "kind": "payment", "id": "o-1"}
    return common | {"key": "abcdefgh", "nonce": "abcdefgh", "expires": 0, "memo": memo}


def _memo_refusal(memo: str) -> InvalidOrder | None:
    try:
        read_common(_memo_order(memo), bytes(64))
    except InvalidOrder as exc:
        return exc
    return None


# -- the ledger --------------------------------------------------------------------------------


@given(
    before=st.text(VISIBLE, max_size=100),
    hidden=HIDDEN,
    after=st.text(VISIBLE, max_size=100),
)
def test_a_memo_with_a_hidden_character_is_refused_naming_the_memo(
    before: str, hidden: str, after: str
) -> None:
    refusal = _memo_refusal(before + hidden + after)
    assert refusal is not None
    assert refusal.params["field"] == "memo"


@given(memo=st.text(VISIBLE, min_size=1, max_size=MAX_MEMO))
def test_a_memo_of_visible_characters_is_taken(memo: str) -> None:
    assert _memo_refusal(memo) is None


@pytest.mark.parametrize("memo", SCRIPTS)
def test_memos_in_every_script_are_taken(memo: str) -> None:
    assert _memo_refusal(memo) is None


@pytest.mark.parametrize("char", NAMED_HIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_each_spoofing_character_is_named(char: str) -> None:
    assert hidden_character(f"ab{char}c") == f"U+{ord(char):04X}"
    assert _memo_refusal(f"ab{char}c") is not None


def test_an_emoji_joined_by_a_zero_width_joiner_is_refused() -> None:
    # The joiner is invisible; the family emoji written apart stays readable and is taken.
    assert _memo_refusal("👩\u200d👩\u200d👦") is not None
    assert _memo_refusal("👩👩👦") is None


def test_a_spoofing_payment_is_refused_and_moves_nothing(book: Book) -> None:
    alice, bob = book.member("alice", 10_000), book.member("bob")
    key = book.keys[alice]
    with book.ledger.reading() as conn:
        from ledger import repository as repo

        before = repo.balances(conn)
    order = new_order(
        "payment", key, book.ledger.origin, to=bob, amount=100, currency="SOU", memo=SPOOF
    )
    order["from"] = alice
    assert refused(book.post(key.sign(order))) == "invalid_order"
    with book.ledger.reading() as conn:
        assert repo.balances(conn) == before


# -- the API and the pages' services -----------------------------------------------------------


def _refused(answer: Any, field: str) -> None:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert (body["error"], body["field"]) == ("invalid_request", field)
    assert "invisible" in body["message"]


def _joining(name: str = "Camille", **more: Any) -> dict[str, Any]:
    return {"display_name": name, "email": "camille@village.test", "password": "x" * 12} | more


def test_a_spoofed_display_name_is_refused_and_nobody_joins(site: TestClient) -> None:
    client = new_client(site)
    _refused(client.post("/api/v1/members", json=_joining(SPOOF)), "display_name")
    french = client.post(
        "/api/v1/members", json=_joining("Ca\u200bmille"), headers={"Accept-Language": "fr"}
    )
    assert french.status_code == 422
    assert "invisibles" in french.json()["message"]
    assert client.post("/api/v1/members", json=_joining("مقهى 村 👍🏽")).status_code == 201


@pytest.mark.parametrize("field", ["trade_name", "category", "address", "place"])
def test_spoofed_trade_details_are_refused(site: TestClient, field: str) -> None:
    trade = {"trade_name": "Le Fournil", "category": "bakery", "address": "2 rue Haute"}
    body = _joining(role="merchant", merchant=trade | {field: "Le \u2067Fournil"})
    _refused(new_client(site).post("/api/v1/members", json=body), f"merchant.{field}")


def test_a_spoofed_operator_name_is_refused(site: TestClient) -> None:
    admin = operator(site, "admin")
    body = _joining("Ad\u202emin", role="treasurer", email="t2@village.test")
    _refused(admin.post("/api/v1/admin/operators", json=body), "display_name")


def test_spoofed_token_and_key_labels_are_refused_and_change_nothing(site: TestClient) -> None:
    camille = join(site, "Camille")
    tokens = camille.get("/api/v1/me/tokens").json()
    body = {"scope": "wallet", "label": "phone\u200d"}
    _refused(camille.post("/api/v1/me/tokens", json=body), "label")
    assert camille.get("/api/v1/me/tokens").json() == tokens
    keys = camille.get("/api/v1/me/keys").json()
    key = {"public_key": "A" * 43, "label": "\u202ephone"}
    _refused(camille.post("/api/v1/me/keys", json=key), "label")
    assert camille.get("/api/v1/me/keys").json() == keys


def test_the_pages_services_refuse_spoofed_names_and_labels(site: TestClient) -> None:
    node = site.app.state.node  # type: ignore[attr-defined]
    camille = members.get_member(node, join(site, "Camille", key=False).id)
    with pytest.raises(Refusal) as token:
        members.create_token(node, camille, "wallet", "pho\u200bne")
    with pytest.raises(Refusal) as key:
        members.add_device_key(node, camille, "A" * 43, "\u2066phone")
    with pytest.raises(Refusal) as name:
        members.join(node, display_name=SPOOF, email="z@village.test", password="x" * 12)
    fields = [r.value.params["field"] for r in (token, key, name)]
    assert fields == ["label", "label", "display_name"]
    assert members.api_tokens(node, camille) == []


def test_spoofed_invoice_and_device_labels_are_refused(site: TestClient) -> None:
    zoe = _shop(site)
    _refused(zoe.post("/api/v1/pos/invoices", json={"amount": 100, "label": SPOOF}), "label")
    _refused(zoe.post("/api/v1/pos/devices", json={"label": "Caisse\u200b1"}), "label")


def test_a_spoofed_memo_is_refused_by_the_api_and_moves_nothing(site: TestClient) -> None:
    alice, bob = join(site, "Alice"), join(site, "Bob")
    fund(site, alice, 1_000)
    answer = alice.pay(bob, 100, memo=SPOOF)
    assert answer.status_code == 422, answer.text
    assert (answer.json()["error"], answer.json()["field"]) == ("invalid_order", "memo")
    assert (alice.balance(), bob.balance()) == (1_000, 0)


def test_the_pairing_page_refuses_a_spoofed_device_label(site: TestClient) -> None:
    from pos.devices import service as devices

    node = site.app.state.node  # type: ignore[attr-defined]
    zoe = members.get_member(node, _shop(site).id)
    with pytest.raises(Refusal) as refused_label:
        devices.new_pairing_code(node, zoe, "Caisse \u202e1")
    assert refused_label.value.code == "bad_device_label"
    assert devices.new_pairing_code(node, zoe, "Caisse 村 1").device.label == "Caisse 村 1"
