"""Card payments taken back after their units were spent, end to end: the real `stripe`
library against localstripe, signed webhooks delivered to the node served by uvicorn, the
treasurer's API and page, on SQLite and PostgreSQL.

A charge disputed again after a dispute closed is held and decided anew; a refund after a
lost dispute takes back only what no reversal took yet; the treasurer takes a member's
later units back or writes the shortfall off (one transfer: the association's euros into the
reserve, the card euros Stripe kept out of clearing), and unfreezes a wallet only when nothing
is owed; a settlement interrupted is finished or dropped.
Deliveries and settlements racing each other act once; refusals say why in French and
English and change nothing; the audit stays clean after every scenario.
"""

from __future__ import annotations

import ast
import fcntl
import json
import os
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.pool import NullPool

from ledger import repository as ledger_repo
from ledger.models import transfers
from ledger.operations import card_escrow
from members.access import forget_principals
from members.models import members
from members.service import get_member
from runtime.signing import post, sign_as
from tests.people import Person, fund, join, operator
from tests.test_card_topups import (
    _audit_clean,
    _balance,
    _charge,
    _credited,
    _dispute,
    _payment,
    _pick,
    _refund,
    _row,
    _top_up,
)
from tests.test_pages import french_catalogue, python_msgids, template_msgids
from wallet_api.cards import service, shortfalls
from wallet_api.cards.models import card_disputes, card_settlements
from web.refusals import Refusal

if TYPE_CHECKING:
    from tests.stripe_server import StripeSite

pytest_plugins = ["tests.stripe_server"]

API = "/api/v1/treasury"
FROZEN_EN = "A card payment was taken back after its units were spent"
FROZEN_FR = "Un paiement par carte a été repris après que ses unités ont été dépensées"

# -- helpers ---------------------------------------------------------------------------------


def _count(s: StripeSite, kind: str, client_id_prefix: str = "") -> int:
    """Transfers of this kind in the ledger (whose client id starts so)."""
    with s.node.ledger.reading() as conn:
        query = select(func.count()).where(transfers.c.kind == kind)
        if client_id_prefix:
            query = query.where(transfers.c.client_id.startswith(client_id_prefix))
        return int(conn.scalar(query) or 0)


def _taken_back(s: StripeSite, intent: str) -> int:
    """What the ledger gave back of this card payment's top-up: the units its reversals took
    out, and what the treasurer wrote off."""
    topup = _row(s, intent)["topup_transfer_id"]  # type: ignore[index]
    with s.node.ledger.reading() as conn:
        rows = conn.execute(
            select(transfers.c.order_json).where(
                transfers.c.kind.in_(("card_reversal", "card_write_off")),
                transfers.c.ref_id == topup,
            )
        ).scalars()
        return sum(int(json.loads(row)["amount"]) for row in rows)


def _frozen(person: Person) -> bool:
    return bool(person.get("/api/v1/me").json()["frozen"])


def _owing(s: StripeSite, person: Person, paid: int, spent: int, refunded: int) -> str:
    """A card top-up of `paid`, `spent` paid to someone else, then `refunded` at Stripe: a
    shortfall of what the wallet lacked."""
    intent = _top_up(s, person, paid)
    _credited(s, person, intent)
    if spent:
        other = join(s.site, "Marchand", "merchant")
        assert person.pay(other, spent).status_code == 201
    assert _refund(s, intent, refunded).status_code == 200
    return intent


def _state(s: StripeSite, *people: Person) -> dict[str, Any]:
    """What a refusal must leave as it was."""
    with s.node.ledger.reading() as conn:
        return {
            "transfers": conn.scalar(select(func.count()).select_from(transfers)),
            "settlements": conn.scalar(select(func.count()).select_from(card_settlements)),
            "frozen": [
                conn.scalar(select(members.c.frozen_reason).where(members.c.id == p.id))
                for p in people
            ],
            "balances": [_balance(s, p.account) for p in people],
            "rows": [dict(r._mapping) for r in conn.execute(select(card_disputes))],
        }


def _refused(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = dict(answer.json())
    assert body["error"] == code, body
    return body


def _in_both_languages(
    send: Callable[[dict[str, str]], Any], status: int, code: str, english: str, french: str
) -> None:
    """The same refusal, read in English and in French."""
    en = _refused(send({"Accept-Language": "en"}), status, code)
    fr = _refused(send({"Accept-Language": "fr"}), status, code)
    assert english in en["message"], en
    assert french in fr["message"], fr


def _race(count: int, call: Callable[[int], Any]) -> list[Any]:
    """`count` calls started at the same moment, each in its own thread."""
    start = threading.Barrier(count)

    def run(i: int) -> Any:
        start.wait()
        return call(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def _live_headers(person: Person) -> dict[str, str]:
    """A person's session, for requests sent to the served node from other threads."""
    session = person.client.cookies.get("sou_session")
    return {"Cookie": f"sou_session={session}", "X-CSRF-Token": person.csrf}


def _new_id() -> str:
    return str(uuid.uuid4())


# -- a charge disputed again, and refunds after a lost dispute ----------------------------------


def test_a_charge_disputed_again_after_a_dispute_closed_is_held_anew(
    stripe_site: StripeSite,
) -> None:
    s = stripe_site
    camille = join(s.site, "Camille")
    intent = _top_up(s, camille, 3_000)
    escrow = card_escrow(_credited(s, camille, intent)["topup_transfer_id"])

    def deliver(kind: str, dispute: str, cents: int, status: str) -> str:
        answer = s.deliver(s.event(kind, _dispute(s, intent, dispute, cents, status)))
        assert answer.status_code == 200, answer.text
        return str(answer.json()["outcome"])

    # The first dispute, won: held, then given back.
    assert deliver("charge.dispute.created", "dp_first", 1_000, "needs_response").startswith(
        "dispute: held 1000"
    )
    assert deliver("charge.dispute.closed", "dp_first", 1_000, "won").startswith("dispute won")
    assert (camille.balance(), _balance(s, escrow)) == (3_000, 0)

    # Stripe opens another dispute on the same charge: held again, under its own id.
    assert deliver("charge.dispute.created", "dp_second", 2_000, "needs_response").startswith(
        "dispute: held 2000"
    )
    again = deliver("charge.dispute.created", "dp_second", 2_000, "needs_response")
    assert again == "this dispute was already handled"  # a new event about the same dispute
    assert deliver("charge.dispute.created", "dp_first", 1_000, "needs_response") == (
        "this dispute was already handled"
    )
    assert (camille.balance(), _balance(s, escrow)) == (1_000, 2_000)
    assert _payment(camille, intent)["status"] == "disputed"

    # Lost: the held units leave circulation; closed again, nothing more happens.
    assert deliver("charge.dispute.closed", "dp_second", 2_000, "lost").startswith(
        "dispute lost: 2000 held"
    )
    assert deliver("charge.dispute.closed", "dp_second", 2_000, "lost") == (
        "this dispute was already closed"
    )
    expected = {"status": "dispute_lost", "reversed": 2_000, "held": 0, "shortfall": 0}
    assert _pick(_payment(camille, intent), expected) == expected
    assert (camille.balance(), _balance(s, escrow)) == (1_000, 0)

    # A third one, for more than is left: only what the top-up still has is held, and lost.
    deliver("charge.dispute.created", "dp_third", 3_000, "needs_response")
    assert (camille.balance(), _balance(s, escrow)) == (0, 1_000)
    deliver("charge.dispute.closed", "dp_third", 3_000, "lost")
    assert _taken_back(s, intent) == 3_000  # never more than the top-up
    assert _pick(_payment(camille, intent), {"reversed": 3_000}) == {"reversed": 3_000}
    with s.node.ledger.reading() as conn:
        found = conn.execute(select(card_disputes.c.dispute_id, card_disputes.c.status))
        states = {dispute: status for dispute, status in found}
    assert states == {"dp_first": "won", "dp_second": "lost", "dp_third": "lost"}
    assert not _frozen(camille)
    _audit_clean(s)


def test_a_refund_after_a_lost_dispute_takes_back_only_the_rest(stripe_site: StripeSite) -> None:
    s = stripe_site
    ines = join(s.site, "Inès")
    intent = _top_up(s, ines, 3_000)
    _credited(s, ines, intent)
    s.deliver(s.event("charge.dispute.created", _dispute(s, intent, "dp_part", 1_000, "open")))
    s.deliver(s.event("charge.dispute.closed", _dispute(s, intent, "dp_part", 1_000, "lost")))
    assert ines.balance() == 2_000

    # The rest of the charge refunded afterwards: Stripe's amount_refunded does not count the
    # dispute, the units taken back do.
    answer = _refund(s, intent, 2_000)
    assert answer.status_code == 200 and answer.json()["outcome"].startswith(
        "refund: took back 2000"
    )
    assert ines.balance() == 0
    again = s.deliver(s.event("charge.refunded", _charge(s, intent)))
    assert again.json()["outcome"] == "already taken back"
    expected = {"status": "dispute_lost", "reversed": 3_000, "shortfall": 0}
    assert _pick(_payment(ines, intent), expected) == expected
    assert _taken_back(s, intent) == 3_000
    assert not _frozen(ines)
    _audit_clean(s)


def test_a_refund_whose_event_comes_after_the_dispute_is_not_taken_twice(
    stripe_site: StripeSite,
) -> None:
    """Refunded at Stripe, then disputed for the whole charge and lost; the refund's own
    event comes last. The same euros are never taken back twice."""
    s = stripe_site
    hugo = join(s.site, "Hugo")
    intent = _top_up(s, hugo, 3_000)
    _credited(s, hugo, intent)
    s.stripe.client.v1.refunds.create(params={"payment_intent": intent, "amount": 1_000})
    opened = s.deliver(
        s.event("charge.dispute.created", _dispute(s, intent, "dp_w", 3_000, "open"))
    )
    assert opened.json()["outcome"] == "dispute: held 2000 cents, 0 owed"  # the refund first
    s.deliver(s.event("charge.dispute.closed", _dispute(s, intent, "dp_w", 3_000, "lost")))
    late = s.deliver(s.event("charge.refunded", _charge(s, intent)))
    assert late.json()["outcome"] == "already taken back"
    assert hugo.balance() == 0
    assert _taken_back(s, intent) == 3_000
    assert _count(s, "card_reversal") == 2  # the refund's and the dispute's
    _audit_clean(s)


def test_deliveries_of_one_event_racing_act_once(stripe_site: StripeSite) -> None:
    s = stripe_site
    lea = join(s.site, "Léa")
    intent = _top_up(s, lea, 2_000)
    _credited(s, lea, intent)
    s.deliver(s.event("charge.dispute.created", _dispute(s, intent, "dp_1", 500, "open")))
    s.deliver(s.event("charge.dispute.closed", _dispute(s, intent, "dp_1", 500, "lost")))

    def racing(event: dict[str, Any]) -> list[int]:
        payload, headers = s.signed(event)
        return _race(
            6,
            lambda _: httpx.post(s.webhook_url, content=payload, headers=headers, timeout=60),
        )

    opened = s.event("charge.dispute.created", _dispute(s, intent, "dp_2", 1_000, "open"))
    assert [r.status_code for r in racing(opened)] == [200] * 6
    assert (lea.balance(), _payment(lea, intent)["held"]) == (500, 1_000)
    assert _count(s, "card_hold", "card-hold:dp_2") == 1

    closed = s.event("charge.dispute.closed", _dispute(s, intent, "dp_2", 1_000, "lost"))
    assert [r.status_code for r in racing(closed)] == [200] * 6
    s.stripe.client.v1.refunds.create(params={"payment_intent": intent, "amount": 500})
    refunded = s.event("charge.refunded", _charge(s, intent))
    assert [r.status_code for r in racing(refunded)] == [200] * 6
    assert lea.balance() == 0
    assert _taken_back(s, intent) == 2_000
    assert _count(s, "card_reversal") == 3  # dp_1, dp_2 and the refund, once each
    _audit_clean(s)


# -- the treasurer takes units back, writes off, unfreezes -------------------------------------


def test_the_treasurer_takes_back_later_units_until_nothing_is_owed(
    stripe_site: StripeSite,
) -> None:
    s = stripe_site
    treasurer = operator(s.site, "treasurer")
    camille = join(s.site, "Camille")
    intent = _owing(s, camille, 3_000, 2_500, 3_000)
    assert _frozen(camille)

    listed = treasurer.get(f"{API}/card-shortfalls").json()
    assert len(listed) == 1
    expected = {
        "payment_intent": intent,
        "member_id": camille.id,
        "member_name": "Camille",
        "amount": 3_000,
        "shortfall": 2_500,
        "settleable": 2_500,
        "wallet_balance": 0,
        "frozen": True,
    }
    assert _pick(listed[0], expected) == expected
    assert listed[0]["since_ms"] >= _row(s, intent)["created_ms"]  # type: ignore[index]

    take_back = f"{API}/card-shortfalls/{intent}/take-backs"
    before = _state(s, camille)
    _in_both_languages(
        lambda h: treasurer.client.post(
            take_back, json={"id": _new_id()}, headers={**treasurer.headers(), **h}
        ),
        409,
        "nothing_to_take_back",
        "Camille's wallet holds nothing to take back yet.",
        "Le portefeuille de Camille ne contient encore rien à reprendre.",
    )
    assert _state(s, camille) == before

    fund(s.site, camille, 1_000)  # cash at the office, later
    first_id = _new_id()
    first = treasurer.post(take_back, json={"id": first_id})
    assert first.status_code == 201, first.text
    assert _pick(first.json(), {"action": "taken_back", "amount": 1_000}) == {
        "action": "taken_back",
        "amount": 1_000,
    }
    assert camille.balance() == 0 and _payment(camille, intent)["shortfall"] == 1_500
    assert _frozen(camille)
    replay = treasurer.post(take_back, json={"id": first_id})
    assert replay.status_code == 200 and replay.json() == {**first.json(), "replayed": True}
    other = treasurer.post(
        f"{API}/card-shortfalls/{intent}/write-off", json={"id": first_id, "reason": "x"}
    )
    _refused(other, 409, "idempotency_conflict")

    fund(s.site, camille, 2_000)
    second = treasurer.post(take_back, json={"id": _new_id()})
    assert second.status_code == 201 and second.json()["amount"] == 1_500
    assert camille.balance() == 500
    expected_row = {"reversed": 3_000, "shortfall": 0, "status": "refunded"}
    assert _pick(_payment(camille, intent), expected_row) == expected_row
    assert not _frozen(camille)  # nothing owed any more: thawed
    assert camille.pay(join(s.site, "Louis"), 100).status_code == 201
    assert treasurer.get(f"{API}/card-shortfalls").json() == []
    history = treasurer.get(f"{API}/card-settlements").json()
    assert [(h["action"], h["amount"], h["treasurer_name"]) for h in history] == [
        ("taken_back", 1_500, "Treasurer"),
        ("taken_back", 1_000, "Treasurer"),
    ]
    _refused(treasurer.post(take_back, json={"id": _new_id()}), 409, "nothing_owed")
    assert _taken_back(s, intent) == 3_000
    _audit_clean(s)


def _postings(s: StripeSite, transfer_id: int) -> dict[str, int]:
    """A transfer's legs, as stored."""
    with s.node.ledger.reading() as conn:
        return ledger_repo.postings_of(conn, [transfer_id])[transfer_id]


def test_a_write_off_puts_the_associations_euros_in_and_takes_the_units_out(
    stripe_site: StripeSite,
) -> None:
    s = stripe_site
    treasurer = operator(s.site, "treasurer")
    hugo = join(s.site, "Hugo")
    intent = _owing(s, hugo, 2_000, 2_000, 2_000)
    write_off = f"{API}/card-shortfalls/{intent}/write-off"

    before = _state(s, hugo)
    _in_both_languages(
        lambda h: treasurer.client.post(
            write_off, json={"id": _new_id(), "reason": "  "}, headers={**treasurer.headers(), **h}
        ),
        422,
        "reason_missing",
        "Say why, in a few words (at most 200 characters).",
        "Dites pourquoi, en quelques mots (200 caractères au plus).",
    )
    _refused(
        treasurer.post(write_off, json={"id": _new_id(), "reason": ""}), 422, "invalid_request"
    )
    unknown = treasurer.post(
        f"{API}/card-shortfalls/pi_notOurs/write-off", json={"id": _new_id(), "reason": "x"}
    )
    _refused(unknown, 404, "unknown_card_payment")
    bad_id = treasurer.post(write_off, json={"id": "no spaces", "reason": "x"})
    assert bad_id.status_code == 422
    # Stripe paid nearly all its balance out to the bank: the node's Stripe account cannot
    # give back the euros a write-off takes out with the units.
    payout = sign_as(
        s.node,
        "role:treasurer",
        "settlement",
        "po-test-1",
        amount=_balance(s, "clearing:stripe") - 1_500,
        ext="po_test_1",
    )
    post(s.node, payout)
    before = _state(s, hugo)
    _in_both_languages(
        lambda h: treasurer.client.post(
            write_off, json={"id": _new_id(), "reason": "y"}, headers={**treasurer.headers(), **h}
        ),
        409,
        "clearing_short",
        "holds only 15.00 EUR, less than the 20.00 EUR to write off",
        "ne contient que 15,00 EUR, moins que les 20,00 EUR à passer en perte",
    )
    assert _state(s, hugo) == before
    louis = join(s.site, "Louis")
    _credited(s, louis, _top_up(s, louis, 1_000))  # more card euros come in

    reserve, clearing = _balance(s, "reserve:digital"), _balance(s, "clearing:stripe")
    issued = _balance(s, "issuance:digital")
    request_id = _new_id()
    answer = treasurer.post(write_off, json={"id": request_id, "reason": "Hugo moved away"})
    assert answer.status_code == 201, answer.text
    done = answer.json()
    expected = {
        "action": "written_off",
        "member_id": hugo.id,
        "payment_intent": intent,
        "amount": 2_000,
        "reason": "Hugo moved away",
        "treasurer_id": treasurer.id,
    }
    assert _pick(done, expected) == expected
    # One transfer brought the euros in and settled the card payment: nothing half done.
    assert done["topup_id"] == done["reversal_id"]
    # The association's 20 euros are in the reserve, the card euros Stripe kept out of the
    # node's Stripe account: every unit stays backed and the member's balance does not move.
    assert _balance(s, "reserve:digital") == reserve + 2_000
    assert _balance(s, "clearing:stripe") == clearing - 2_000
    assert _balance(s, "issuance:digital") == issued
    assert hugo.balance() == 0
    assert not _frozen(hugo)
    with s.node.ledger.reading() as conn:
        written = conn.execute(select(transfers).where(transfers.c.id == done["topup_id"])).one()
    assert (written.kind, written.initiator) == ("card_write_off", "role:treasurer")
    assert written.ref_id == _row(s, intent)["topup_transfer_id"]  # type: ignore[index]
    assert _postings(s, written.id) == {"reserve:digital": 2_000, "clearing:stripe": -2_000}
    assert f'"ext":"card-writeoff:{done["id"]}"' in written.order_json
    assert "Hugo moved away" in written.order_json  # the reason is in the signed order too
    assert _taken_back(s, intent) == 2_000
    assert _count(s, "topup", "card-writeoff:") == 0

    replay = treasurer.post(write_off, json={"id": request_id, "reason": "Hugo moved away"})
    assert replay.status_code == 200 and replay.json()["replayed"] is True
    _refused(treasurer.post(write_off, json={"id": _new_id(), "reason": "y"}), 409, "nothing_owed")
    assert _count(s, "card_write_off") == 1
    _audit_clean(s)


def test_what_an_open_dispute_left_owed_waits_for_stripe(stripe_site: StripeSite) -> None:
    s = stripe_site
    treasurer = operator(s.site, "treasurer")
    jules = join(s.site, "Jules")
    intent = _top_up(s, jules, 2_000)
    _credited(s, jules, intent)
    assert jules.pay(join(s.site, "Louis"), 1_500).status_code == 201
    s.deliver(s.event("charge.dispute.created", _dispute(s, intent, "dp_o", 2_000, "open")))
    assert _frozen(jules)
    listed = treasurer.get(f"{API}/card-shortfalls").json()
    assert _pick(listed[0], {"shortfall": 1_500, "settleable": 0}) == {
        "shortfall": 1_500,
        "settleable": 0,
    }
    before = _state(s, jules)
    for action, body in (("take-backs", {}), ("write-off", {"reason": "x"})):
        _in_both_languages(
            lambda h, action=action, body=body: treasurer.client.post(
                f"{API}/card-shortfalls/{intent}/{action}",
                json={"id": _new_id(), **body},
                headers={**treasurer.headers(), **h},
            ),
            409,
            "dispute_open",
            "a dispute still open",
            "un litige encore ouvert",
        )
    assert _state(s, jules) == before

    s.deliver(s.event("charge.dispute.closed", _dispute(s, intent, "dp_o", 2_000, "won")))
    assert not _frozen(jules) and jules.balance() == 500
    assert treasurer.get(f"{API}/card-shortfalls").json() == []
    _audit_clean(s)


def test_a_wallet_is_unfrozen_by_hand_only_when_nothing_is_owed(stripe_site: StripeSite) -> None:
    s = stripe_site
    treasurer = operator(s.site, "treasurer")
    lea, louis = join(s.site, "Léa"), join(s.site, "Louis")
    _owing(s, lea, 1_000, 1_000, 600)
    unfreeze = f"{API}/frozen-wallets/{lea.id}/unfrozen"

    frozen = treasurer.get(f"{API}/frozen-wallets").json()
    assert [(f["member_id"], f["owed"]) for f in frozen] == [(lea.id, 600)]
    before = _state(s, lea)
    _in_both_languages(
        lambda h: treasurer.client.post(
            unfreeze,
            json={"id": _new_id(), "reason": "asked"},
            headers={**treasurer.headers(), **h},
        ),
        409,
        "still_owed",
        "Léa still owes 6.00 SOU for card payments taken back",
        "Léa doit encore 6,00 SOU pour des paiements par carte repris",
    )
    assert _state(s, lea) == before and _frozen(lea)
    _refused(
        treasurer.post(
            f"{API}/frozen-wallets/{louis.id}/unfrozen", json={"id": _new_id(), "reason": "x"}
        ),
        409,
        "not_frozen",
    )
    _refused(
        treasurer.post(
            f"{API}/frozen-wallets/nobody-0000/unfrozen", json={"id": _new_id(), "reason": "x"}
        ),
        404,
        "unknown_member",
    )

    # Louis's wallet was left frozen though he owes nothing (a freeze set by hand, an old
    # node): the treasurer may lift it, saying why.
    with s.node.engine.begin() as conn:
        conn.execute(
            update(members).where(members.c.id == louis.id).values(frozen_reason=service.FROZEN)
        )
    forget_principals(s.node)
    assert _frozen(louis)
    request_id = _new_id()
    answer = treasurer.post(
        f"{API}/frozen-wallets/{louis.id}/unfrozen",
        json={"id": request_id, "reason": "Nothing owed: checked with Stripe"},
    )
    assert answer.status_code == 201, answer.text
    assert _pick(answer.json(), {"action": "unfrozen", "amount": 0, "payment_intent": None}) == {
        "action": "unfrozen",
        "amount": 0,
        "payment_intent": None,
    }
    assert not _frozen(louis)
    replay = treasurer.post(
        f"{API}/frozen-wallets/{louis.id}/unfrozen",
        json={"id": request_id, "reason": "Nothing owed: checked with Stripe"},
    )
    assert replay.status_code == 200
    assert [f["member_id"] for f in treasurer.get(f"{API}/frozen-wallets").json()] == [lea.id]
    _audit_clean(s)


# -- settlements racing each other and Stripe's events ---------------------------------------


def test_settlements_racing_settle_once(stripe_site: StripeSite) -> None:
    s = stripe_site
    treasurer = operator(s.site, "treasurer")
    ines, hugo = join(s.site, "Inès"), join(s.site, "Hugo")
    written = _owing(s, ines, 2_000, 2_000, 2_000)
    taken = _owing(s, hugo, 2_000, 2_000, 2_000)
    fund(s.site, hugo, 5_000)
    headers = _live_headers(treasurer)

    def write_off(_: int) -> httpx.Response:
        body = {"id": _new_id(), "reason": "Gone"}
        url = f"{s.url}{API}/card-shortfalls/{written}/write-off"
        return httpx.post(url, json=body, headers=headers, timeout=60)

    answers = _race(4, write_off)
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"nothing_owed"}
    assert _count(s, "card_write_off") == 1
    assert _taken_back(s, written) == 2_000

    same_id = _new_id()

    def take_back(_: int) -> httpx.Response:
        url = f"{s.url}{API}/card-shortfalls/{taken}/take-backs"
        return httpx.post(url, json={"id": same_id}, headers=headers, timeout=60)

    answers = _race(4, take_back)
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert hugo.balance() == 3_000 and _taken_back(s, taken) == 2_000
    assert not _frozen(ines) and not _frozen(hugo)
    _audit_clean(s)


def test_a_take_back_racing_a_new_refund_ends_the_same_either_way(
    stripe_site: StripeSite,
) -> None:
    s = stripe_site
    treasurer = operator(s.site, "treasurer")
    camille = join(s.site, "Camille")
    intent = _owing(s, camille, 3_000, 2_000, 1_500)  # takes 1000, owes 500
    fund(s.site, camille, 800)
    s.stripe.client.v1.refunds.create(params={"payment_intent": intent, "amount": 1_000})
    payload, webhook_headers = s.signed(s.event("charge.refunded", _charge(s, intent)))
    headers = _live_headers(treasurer)

    def one_of_two(i: int) -> httpx.Response:
        if i == 0:
            return httpx.post(s.webhook_url, content=payload, headers=webhook_headers, timeout=60)
        url = f"{s.url}{API}/card-shortfalls/{intent}/take-backs"
        return httpx.post(url, json={"id": _new_id()}, headers=headers, timeout=60)

    refund, take_back = _race(2, one_of_two)
    assert refund.status_code == 200, refund.text
    assert take_back.status_code in (201, 409), take_back.text
    # Refunded 2500 in all: 1800 taken from the wallet, 700 owed, whichever came first.
    expected = {"reversed": 1_800, "shortfall": 700}
    assert _pick(_payment(camille, intent), expected) == expected
    assert camille.balance() == 0 and _taken_back(s, intent) == 1_800
    assert _frozen(camille)
    _audit_clean(s)


def test_the_card_payments_lock_holds_between_the_nodes_processes(node: Any) -> None:
    """Webhooks and settlements take turns across the processes of `sou serve` too (and, on
    PostgreSQL, of nodes on other machines): while one holds the lock, another process
    cannot take it; once let go, it can."""
    if node.engine.dialect.name == "postgresql":
        other = create_engine(node.settings.resolved_database_url, poolclass=NullPool)

        def taken_elsewhere() -> bool:
            with other.connect() as conn:  # another session: as another process's
                lock = "SELECT pg_try_advisory_lock(%(k)s), pg_advisory_unlock_all()"
                got = conn.exec_driver_sql(lock, {"k": service.CARD_PAYMENTS_LOCK}).one()[0]
                return not got
    else:
        path = Path(node.settings.data_dir) / "card-payments.lock"

        def taken_elsewhere() -> bool:
            fd = os.open(path, os.O_RDWR | os.O_CREAT)  # another open file: another process's
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            finally:
                os.close(fd)
            return False

    with service.one_at_a_time(node):
        assert taken_elsewhere()
    assert not taken_elsewhere()
    with service.one_at_a_time(node):  # taken again after being let go
        assert taken_elsewhere()


# -- a settlement interrupted (the node stopped between posting and recording) ----------------


def test_an_interrupted_settlement_is_finished_or_undone(stripe_site: StripeSite) -> None:
    s = stripe_site
    node = s.node
    local = node.ledger.chart.local
    treasurer = operator(s.site, "treasurer")
    lea, jules, hugo = join(s.site, "Léa"), join(s.site, "Jules"), join(s.site, "Hugo")
    took = _owing(s, lea, 2_000, 2_000, 2_000)
    never = _owing(s, jules, 1_000, 1_000, 1_000)
    one_post = _owing(s, hugo, 1_200, 1_200, 1_200)
    fund(s.site, lea, 700)
    me = get_member(node, treasurer.id)

    # A take-back posted its reversal, then the node stopped before recording it.
    with service.one_at_a_time(node):
        row, owed = shortfalls._owed(node, took)
        begun = shortfalls._begin(node, _new_id(), "taken_back", row, me, owed, None)
        service.take(
            node,
            "card_reversal",
            shortfalls._order_id("card-takeback", begun),
            shortfalls.TAKE_BACK_RULE,
            source=lea.account,
            due=owed,
            at_once=True,
            ref=row["topup_transfer_id"],
        )
    # A write-off posted its transfer, then the node stopped before recording it.
    with service.one_at_a_time(node):
        row, owed = shortfalls._owed(node, one_post)
        new = shortfalls._begin(node, _new_id(), "written_off", row, me, owed, "one post")
        client_id = shortfalls._order_id("card-writeoff", new)
        written, _ = service.order(
            node,
            "role:treasurer",
            "card_write_off",
            client_id,
            at_once=True,
            amount=owed,
            currency=local,
            ref=row["topup_transfer_id"],
            ext=client_id,
        )
    # One begun and nothing posted.
    with service.one_at_a_time(node):
        row, owed = shortfalls._owed(node, never)
        shortfalls._begin(node, _new_id(), "written_off", row, me, owed, "never posted")
    assert all(_frozen(p) for p in (lea, jules, hugo))  # nothing recorded yet

    # The next look at the page finishes the first two from what they posted, drops the
    # third.
    assert treasurer.get("/treasurer/cards").status_code == 200
    assert _pick(_payment(lea, took), {"shortfall": 1_300}) == {"shortfall": 1_300}
    assert lea.balance() == 0
    assert _pick(_payment(jules, never), {"shortfall": 1_000}) == {"shortfall": 1_000}
    assert jules.balance() == 0
    assert _payment(hugo, one_post)["shortfall"] == 0
    assert hugo.balance() == 0 and not _frozen(hugo)
    history = treasurer.get(f"{API}/card-settlements").json()
    shown = [(h["action"], h["amount"], h["topup_id"], h["reversal_id"]) for h in history]
    assert shown[0] == ("written_off", 1_200, written, written)
    assert shown[1][:3] == ("taken_back", 700, None) and shown[1][3] is not None
    with node.ledger.reading() as conn:
        assert conn.scalar(select(func.count()).select_from(card_settlements)) == 2
    still_owed = treasurer.get(f"{API}/card-shortfalls").json()
    assert {o["payment_intent"] for o in still_owed} == {took, never}
    _audit_clean(s)


def test_a_write_off_the_ledger_refuses_changes_nothing(stripe_site: StripeSite) -> None:
    """Stripe's payout recorded between the check of the node's Stripe account and the post:
    the ledger refuses the write-off, and nothing of it stays, not even its row."""
    s = stripe_site
    node = s.node
    treasurer = operator(s.site, "treasurer")
    hugo = join(s.site, "Hugo")
    intent = _owing(s, hugo, 2_000, 2_000, 2_000)
    me = get_member(node, treasurer.id)
    payout = sign_as(
        node,
        "role:treasurer",
        "settlement",
        "po-meanwhile",
        amount=_balance(s, "clearing:stripe") - 500,
        ext="po_meanwhile",
    )
    post(node, payout)
    before = (_state(s, hugo), _payment(hugo, intent), _balance(s, "clearing:stripe"))

    request_id = _new_id()
    with service.one_at_a_time(node), pytest.raises(Refusal) as refused:
        row, owed = shortfalls._owed(node, intent)
        begun = shortfalls._begin(node, request_id, "written_off", row, me, owed, "Gone")
        shortfalls._finish_write_off(node, begun)
    assert (refused.value.status, refused.value.code) == (409, "insufficient_funds")
    assert (_state(s, hugo), _payment(hugo, intent), _balance(s, "clearing:stripe")) == before
    assert _frozen(hugo) and _count(s, "card_write_off") == 0

    # Once more card euros came in, the same request writes it off (its id was not spent).
    louis = join(s.site, "Louis")
    _credited(s, louis, _top_up(s, louis, 2_000))
    answer = treasurer.post(
        f"{API}/card-shortfalls/{intent}/write-off", json={"id": request_id, "reason": "Gone"}
    )
    assert answer.status_code == 201, answer.text
    assert not _frozen(hugo) and _taken_back(s, intent) == 2_000
    _audit_clean(s)


# -- the page ------------------------------------------------------------------------------------


def test_the_treasurers_page_settles_with_forms_in_french_and_english(
    stripe_site: StripeSite,
) -> None:
    s = stripe_site
    treasurer = operator(s.site, "treasurer")
    camille, hugo = join(s.site, "Camille"), join(s.site, "Hugo")
    owing = _owing(s, camille, 3_000, 2_500, 3_000)
    other = _owing(s, hugo, 1_000, 1_000, 1_000)
    html = {"Accept": "text/html"}

    assert camille.client.get("/treasurer/cards", headers=html).status_code == 403
    visitor = s.site.get("/treasurer/cards", follow_redirects=False)
    assert visitor.status_code == 303 and visitor.headers["location"].startswith("/login")
    page = treasurer.get("/treasurer/cards")
    assert page.status_code == 200
    for words in (
        "Paiements par carte repris",
        'href="/treasurer/cards"',  # in the treasurer's navigation
        "Camille",
        "25,00 SOU",
        f'id="write-off-{owing}"',
        f'id="take-back-{other}"',
        FROZEN_FR,
        "Rien à reprendre pour l’instant\u202f: le portefeuille est vide.",
    ):
        assert words in page.text, words
    english = treasurer.get("/treasurer/cards?lang=en")
    assert "Card payments taken back" in english.text and FROZEN_EN in english.text
    assert treasurer.get("/treasurer/cards?lang=fr").status_code == 200  # back to French

    no_csrf = treasurer.client.post(
        "/treasurer/cards", data={"action": "write-off", "id": _new_id(), "payment_intent": owing}
    )
    assert no_csrf.status_code == 403
    before = _state(s, camille)
    refused = treasurer.post(
        "/treasurer/cards",
        data={
            "csrf": treasurer.csrf,
            "action": "write-off",
            "id": _new_id(),
            "payment_intent": owing,
            "reason": "  ",
        },
    )
    assert refused.status_code == 422 and "Dites pourquoi" in refused.text
    assert _state(s, camille) == before

    fund(s.site, camille, 400)
    form = {"csrf": treasurer.csrf, "action": "take-back", "id": _new_id(), "payment_intent": owing}
    taken = treasurer.post("/treasurer/cards", data=form, follow_redirects=False)
    assert taken.status_code == 303
    shown = treasurer.get(taken.headers["location"])
    assert "4,00 SOU repris sur le portefeuille de Camille." in shown.text
    again = treasurer.post("/treasurer/cards", data=form, follow_redirects=False)
    assert again.status_code == 303  # a resent form settles once
    assert _payment(camille, owing)["shortfall"] == 2_100

    form = {
        "csrf": treasurer.csrf,
        "action": "write-off",
        "id": _new_id(),
        "payment_intent": other,
        "reason": "Hugo a déménagé",
    }
    written = treasurer.post("/treasurer/cards?lang=en", data=form, follow_redirects=False)
    shown = treasurer.get(written.headers["location"] + "&lang=en")
    assert "Wrote off 10.00 SOU for Hugo: transfer 10.00 EUR" in shown.text
    assert "Hugo a déménagé" in shown.text
    assert f'id="shortfall-{other}"' not in shown.text
    assert _taken_back(s, other) == 1_000
    _audit_clean(s)


# -- the catalogue -------------------------------------------------------------------------------


def test_every_message_of_card_payments_has_its_french() -> None:
    root = Path(__file__).resolve().parent.parent
    msgids: set[str] = {service.FROZEN}
    for path in (root / "wallet_api" / "cards").glob("*.py"):
        msgids |= python_msgids(path)
        for call in ast.walk(ast.parse(path.read_text())):  # say(request, "...")
            said = isinstance(call, ast.Call) and getattr(call.func, "id", None) == "say"
            if said and len(call.args) >= 2 and isinstance(call.args[1], ast.Constant):
                msgids.add(call.args[1].value)
    templates = [*(root / "web" / "templates" / "cards").glob("*.html")]
    for path in [*templates, root / "web" / "templates" / "treasurer" / "cards.html"]:
        msgids |= template_msgids(path)
    assert len(msgids) > 60  # the extraction found the messages, not nothing
    catalogue = french_catalogue()
    assert not sorted(m for m in msgids if not catalogue.get(m))
    assert catalogue.get("Card shortfalls")  # the treasurer's link in the navigation
    placeholders = re.compile(r"\{\w+\}")
    for msgid in msgids:
        assert sorted(placeholders.findall(msgid)) == sorted(
            placeholders.findall(catalogue[msgid])
        ), msgid
