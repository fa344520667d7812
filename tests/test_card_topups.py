"""Card top-ups with Stripe, end to end: the real `stripe` library against localstripe, which
delivers signed webhooks to the node served by uvicorn, on SQLite and PostgreSQL.

A wallet is credited once per PaymentIntent whatever the deliveries (duplicated, replayed,
late, out of order, eight at once); forged, tampered and stale webhooks are refused; refunds
and disputes take units back or hold them, never below zero, freezing who owes; the ledger
stays balanced and passes the audit. localstripe sends `payment_intent.*` events itself;
refunds and disputes it does not announce are signed here as Stripe signs them. Checkout
(the node's default) is paid on the session's page, which localstripe serves here
(`tests/localstripe_checkout.py`), as its customer pays on Stripe's.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import func, select, update

from audits.audit import audit
from ledger.models import log_queue, transfers
from ledger.operations import card_escrow
from members.access import forget_principals
from members.models import members
from tests.live import free_port
from tests.people import Person, join, operator
from wallet_api.models import card_payments, stripe_events

if TYPE_CHECKING:
    from tests.stripe_server import StripeSite

# The fixtures `localstripe`, `stripe_node` and `stripe_site` (not imported: pytest loads it).
pytest_plugins = ["tests.stripe_server"]

# -- helpers ---------------------------------------------------------------------------------


def _payment(person: Person, intent: str) -> dict[str, Any]:
    answer = person.get(f"/api/v1/topups/card/{intent}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _credited(s: StripeSite, person: Person, intent: str) -> dict[str, Any]:
    """Wait for Stripe's webhook to credit the payment."""
    return dict(
        s.wait_until(
            lambda: (p := _payment(person, intent))["status"] == "credited" and p,
            what=f"the credit of {intent}",
        )
    )


def _top_up(s: StripeSite, person: Person, cents: int) -> str:
    """A card top-up through the API, paid at Stripe, credited by the webhook."""
    answer = person.post("/api/v1/topups/card", json={"amount": cents})
    assert answer.status_code == 201, answer.text
    intent = str(answer.json()["payment_intent"])
    s.stripe.pay(intent)
    return intent


def _topups(s: StripeSite, intent: str) -> int:
    """How many top-ups the ledger holds for this PaymentIntent."""
    with s.node.ledger.reading() as conn:
        query = select(func.count()).where(
            transfers.c.kind == "topup", transfers.c.client_id == f"card:{intent}"
        )
        return int(conn.scalar(query) or 0)


def _row(s: StripeSite, intent: str) -> dict[str, Any] | None:
    with s.node.ledger.reading() as conn:
        found = conn.execute(
            select(card_payments).where(card_payments.c.payment_intent == intent)
        ).first()
    return None if found is None else dict(found._mapping)


def _charge(s: StripeSite, intent: str) -> dict[str, Any]:
    return dict(s.stripe.charge_of(intent).to_dict())


def _refund(s: StripeSite, intent: str, cents: int) -> httpx.Response:
    """Refund at Stripe, then deliver the `charge.refunded` event Stripe would send."""
    s.stripe.client.v1.refunds.create(params={"payment_intent": intent, "amount": cents})
    return s.deliver(s.event("charge.refunded", _charge(s, intent)))


def _dispute(s: StripeSite, intent: str, dispute: str, cents: int, status: str) -> dict[str, Any]:
    return {
        "id": dispute,
        "object": "dispute",
        "amount": cents,
        "currency": "eur",
        "charge": _charge(s, intent)["id"],
        "payment_intent": intent,
        "status": status,
    }


def _audit_clean(s: StripeSite) -> None:
    """Once everything is sealed, the audit finds nothing wrong."""

    def sealed() -> bool:
        with s.node.ledger.reading() as conn:
            return not conn.scalar(select(func.count()).select_from(log_queue))

    s.wait_until(sealed, what="sealing")
    report = audit(s.node.engine, node_public_key=s.node.node_key.public_key, workers=1)
    assert report.ok, report.findings


def _pick(found: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The part of `found` that `expected` speaks of (so that a failure shows the diff)."""
    return {key: found.get(key) for key in expected}


def _balance(s: StripeSite, account: str) -> int:
    return int(s.node.ledger.balance(account))


# -- crediting -------------------------------------------------------------------------------


def test_a_paid_topup_is_credited_once_whatever_stripe_sends(stripe_site: StripeSite) -> None:
    s = stripe_site
    camille, louis = join(s.site, "Camille"), join(s.site, "Louis")
    started = camille.post("/api/v1/topups/card", json={"amount": 2_050})
    assert started.status_code == 201, started.text
    body = started.json()
    assert set(body) == {"payment_intent", "client_secret", "status"}
    intent = body["payment_intent"]
    assert body["status"] == "created" and body["client_secret"].startswith(intent)
    assert _payment(camille, intent)["status"] == "created"
    assert louis.get(f"/api/v1/topups/card/{intent}").status_code == 404

    s.stripe.pay(intent)
    credited = _credited(s, camille, intent)
    assert credited["amount"] == 2_050 and credited["topup_transfer_id"] is not None
    assert camille.balance() == 2_050
    listed = camille.get("/api/v1/topups/card").json()
    assert [p["payment_intent"] for p in listed] == [intent]

    # Stripe's own event again (the same id), then new events about the same intent: one
    # as Stripe had it when the intent was made (out of order), one a late failure.
    sent = s.stripe.sent("payment_intent.succeeded", intent)
    again = s.deliver(sent)
    assert again.status_code == 200 and again.json()["outcome"].startswith("duplicate")
    assert s.deliver(s.event("payment_intent.succeeded", sent["data"]["object"])).json() == {
        "received": True,
        "outcome": "already credited",
    }
    stale_object = {**sent["data"]["object"], "status": "requires_payment_method"}
    assert s.deliver(s.event("payment_intent.succeeded", stale_object)).status_code == 200
    assert s.deliver(s.event("payment_intent.payment_failed", stale_object)).status_code == 200
    assert _topups(s, intent) == 1
    assert camille.balance() == 2_050
    assert _payment(camille, intent)["status"] == "credited"
    _audit_clean(s)


def test_an_intent_made_elsewhere_credits_the_member_it_names(stripe_site: StripeSite) -> None:
    """Checkout, the dashboard: the intent carries our metadata but we never recorded it."""
    s = stripe_site
    ines = join(s.site, "Inès")
    made = s.stripe.intent(1_500, {"sou_member": ines.id, "sou_node": s.node.ledger.origin})
    s.stripe.pay(made.id)
    s.wait_until(lambda: (_row(s, made.id) or {}).get("status") == "credited", what="the credit")
    assert _payment(ines, made.id)["amount"] == 1_500
    assert ines.balance() == 1_500


def test_eight_deliveries_at_once_credit_once(stripe_site: StripeSite) -> None:
    s = stripe_site
    s.stripe.hold_webhooks(s.webhook_url)
    hugo = join(s.site, "Hugo")
    intent = _top_up(s, hugo, 3_000)
    current = s.stripe.client.v1.payment_intents.retrieve(intent).to_dict()
    payload, headers = s.signed(s.event("payment_intent.succeeded", current))
    start = threading.Barrier(8)

    def deliver(_: int) -> int:
        start.wait()
        return httpx.post(s.webhook_url, content=payload, headers=headers, timeout=60).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(deliver, range(8))) == [200] * 8
    assert hugo.balance() == 3_000
    assert _topups(s, intent) == 1
    with s.node.ledger.reading() as conn:
        seen = conn.scalar(select(func.count()).where(stripe_events.c.payment_intent == intent))
    assert seen == 1
    _audit_clean(s)


# -- refused deliveries ----------------------------------------------------------------------


def test_forged_tampered_and_stale_webhooks_change_nothing(stripe_site: StripeSite) -> None:
    s = stripe_site
    s.stripe.hold_webhooks(s.webhook_url)
    lea = join(s.site, "Léa")
    intent = _top_up(s, lea, 2_000)
    real = s.event(
        "payment_intent.succeeded", s.stripe.client.v1.payment_intents.retrieve(intent).to_dict()
    )
    payload, headers = s.signed(real)
    refused = [
        httpx.post(s.webhook_url, content=payload, headers={}),  # no signature
        s.deliver(real, secret="whsec_someone_else"),  # forged
        httpx.post(
            s.webhook_url,
            content=payload.replace(b'"amount": 2000', b'"amount": 9000'),
            headers=headers,
        ),  # tampered after signing
        s.deliver(real, timestamp=int(real["created"]) - 301),  # stale: a replay
        httpx.post(s.webhook_url, content=payload, headers={"Stripe-Signature": "t=x,v1=y"}),
        s.deliver(b"not json at all"),
    ]
    assert [r.status_code for r in refused] == [400] * 6
    assert {r.json()["error"] for r in refused[:5]} == {"bad_webhook_signature"}
    assert _payment(lea, intent)["status"] == "created"
    assert lea.balance() == 0 and _topups(s, intent) == 0
    with s.node.ledger.reading() as conn:
        assert conn.scalar(select(func.count()).where(stripe_events.c.event_id == real["id"])) == 0
    # The very same event, signed by Stripe's secret and fresh, is believed.
    assert s.deliver(real).status_code == 200
    assert lea.balance() == 2_000


def test_unknown_intents_and_changed_amounts_credit_nothing(stripe_site: StripeSite) -> None:
    s = stripe_site
    s.stripe.hold_webhooks(s.webhook_url)
    jules = join(s.site, "Jules")
    origin = s.node.ledger.origin
    strangers = [
        s.stripe.intent(1_000),  # no metadata: not a top-up
        s.stripe.intent(1_000, {"sou_member": jules.id, "sou_node": "elsewhere.example/x"}),
        s.stripe.intent(1_000, {"sou_member": "nobody-0000", "sou_node": origin}),
    ]
    for made in strangers:
        s.stripe.pay(made.id)
        answer = s.deliver(s.event("payment_intent.succeeded", made.to_dict()))
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"] == "unknown_payment_intent"
    never_made = s.deliver(s.event("payment_intent.succeeded", {"id": "pi_neverMadeAtAll"}))
    assert never_made.status_code == 404

    started = jules.post("/api/v1/topups/card", json={"amount": 2_000}).json()
    intent = started["payment_intent"]
    s.stripe.client.v1.payment_intents.update(intent, params={"amount": 2_500})
    s.stripe.pay(intent)
    for _ in range(2):  # Stripe retries; the answer stays the same
        answer = s.deliver(s.event("payment_intent.succeeded", {"id": intent}))
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"] == "amount_changed"
    assert _payment(jules, intent)["status"] == "created"
    assert jules.balance() == 0
    with s.node.ledger.reading() as conn:
        assert conn.scalar(select(func.count()).where(transfers.c.kind == "topup")) == 0


# -- refunds and disputes --------------------------------------------------------------------


def test_refunds_take_units_back_and_freeze_who_spent_them(stripe_site: StripeSite) -> None:
    s = stripe_site
    camille, louis = join(s.site, "Camille"), join(s.site, "Louis")
    intent = _top_up(s, camille, 3_000)
    _credited(s, camille, intent)

    assert _refund(s, intent, 1_000).status_code == 200
    assert camille.balance() == 2_000
    expected = {"status": "refunded", "reversed": 1_000}
    assert _pick(_payment(camille, intent), expected) == expected
    again = s.deliver(s.event("charge.refunded", _charge(s, intent)))  # redelivered
    assert again.json()["outcome"] == "already taken back"
    assert camille.balance() == 2_000

    assert camille.pay(louis, 1_500).status_code == 201  # spent before the next refund
    answer = _refund(s, intent, 2_000)
    assert answer.status_code == 200, answer.text
    assert camille.balance() == 0  # never below zero
    payment = _payment(camille, intent)
    assert (payment["reversed"], payment["shortfall"]) == (1_500, 1_500)
    assert camille.get("/api/v1/me").json()["frozen"] is True
    frozen = camille.pay(louis, 1)
    assert frozen.status_code == 403 and frozen.json()["error"] == "wallet_frozen"
    refused = camille.post("/api/v1/topups/card", json={"amount": 1_000})
    assert refused.status_code == 403 and refused.json()["error"] == "wallet_frozen"
    assert louis.balance() == 1_500
    assert s.deliver(s.event("charge.refunded", _charge(s, intent))).status_code == 200
    assert camille.balance() == 0 and _payment(camille, intent)["shortfall"] == 1_500
    _audit_clean(s)


def test_disputes_hold_the_units_then_release_or_take_them(stripe_site: StripeSite) -> None:
    s = stripe_site
    camille, louis, ines = (join(s.site, name) for name in ("Camille", "Louis", "Inès"))
    won = _top_up(s, camille, 3_000)
    lost = _top_up(s, ines, 2_500)
    escrow_won = card_escrow(_credited(s, camille, won)["topup_transfer_id"])
    escrow_lost = card_escrow(_credited(s, ines, lost)["topup_transfer_id"])
    assert camille.pay(louis, 1_000).status_code == 201

    # Opened: what the wallet holds goes to the escrow; the rest is owed, the wallet frozen.
    opened = _dispute(s, won, "dp_won", 3_000, "needs_response")
    assert s.deliver(s.event("charge.dispute.created", opened)).status_code == 200
    assert s.deliver(s.event("charge.dispute.created", opened)).status_code == 200  # again
    assert (camille.balance(), _balance(s, escrow_won)) == (0, 2_000)
    expected = {"status": "disputed", "held": 2_000, "shortfall": 1_000}
    assert _pick(_payment(camille, won), expected) == expected
    assert camille.get("/api/v1/me").json()["frozen"] is True

    # Won: the units come back, nothing is owed, the wallet thaws.
    closed = _dispute(s, won, "dp_won", 3_000, "won")
    assert s.deliver(s.event("charge.dispute.closed", closed)).status_code == 200
    assert s.deliver(s.event("charge.dispute.closed", closed)).status_code == 200  # again
    assert (camille.balance(), _balance(s, escrow_won)) == (2_000, 0)
    expected = {"status": "credited", "held": 0, "shortfall": 0}
    assert _pick(_payment(camille, won), expected) == expected
    assert camille.get("/api/v1/me").json()["frozen"] is False
    assert camille.pay(louis, 100).status_code == 201

    # Lost: the held units leave circulation with the euros Stripe took back.
    clearing = _balance(s, "clearing:stripe")
    s.deliver(s.event("charge.dispute.created", _dispute(s, lost, "dp_lost", 2_500, "open")))
    assert (ines.balance(), _balance(s, escrow_lost)) == (0, 2_500)
    s.deliver(s.event("charge.dispute.closed", _dispute(s, lost, "dp_lost", 2_500, "lost")))
    assert (ines.balance(), _balance(s, escrow_lost)) == (0, 0)
    assert _balance(s, "clearing:stripe") == clearing - 2_500
    expected = {"status": "dispute_lost", "reversed": 2_500, "held": 0}
    assert _pick(_payment(ines, lost), expected) == expected
    assert ines.get("/api/v1/me").json()["frozen"] is False  # nothing owed
    _audit_clean(s)


def test_a_dispute_closed_before_it_opened_is_not_held_again(stripe_site: StripeSite) -> None:
    s = stripe_site
    hugo, lea = join(s.site, "Hugo"), join(s.site, "Léa")
    won, lost = _top_up(s, hugo, 1_000), _top_up(s, lea, 1_200)
    _credited(s, hugo, won)
    _credited(s, lea, lost)
    assert lea.pay(hugo, 200).status_code == 201

    s.deliver(s.event("charge.dispute.closed", _dispute(s, won, "dp_a", 1_000, "won")))
    s.deliver(s.event("charge.dispute.created", _dispute(s, won, "dp_a", 1_000, "open")))
    assert hugo.balance() == 1_200 and _payment(hugo, won)["held"] == 0

    s.deliver(s.event("charge.dispute.closed", _dispute(s, lost, "dp_b", 1_200, "lost")))
    s.deliver(s.event("charge.dispute.created", _dispute(s, lost, "dp_b", 1_200, "open")))
    assert lea.balance() == 0
    expected = {"status": "dispute_lost", "reversed": 1_000, "shortfall": 200}
    assert _pick(_payment(lea, lost), expected) == expected
    assert lea.get("/api/v1/me").json()["frozen"] is True
    _audit_clean(s)


def test_events_ahead_of_the_payments_own_credit_it_first(stripe_site: StripeSite) -> None:
    """Our endpoint was down, Stripe redelivers in any order: a refund or a dispute may
    come before the payment's own `succeeded` event."""
    s = stripe_site
    s.stripe.hold_webhooks(s.webhook_url)
    jules = join(s.site, "Jules")
    refunded, disputed = _top_up(s, jules, 2_000), _top_up(s, jules, 1_000)
    s.stripe.client.v1.refunds.create(params={"payment_intent": refunded, "amount": 500})
    answer = s.deliver(s.event("charge.refunded", _charge(s, refunded)))
    assert answer.status_code == 200, answer.text
    assert jules.balance() == 1_500  # credited, then the refund taken back
    opened = s.event("charge.dispute.created", _dispute(s, disputed, "dp_c", 1_000, "open"))
    assert s.deliver(opened).status_code == 200
    escrow = card_escrow(_payment(jules, disputed)["topup_transfer_id"])
    assert (jules.balance(), _balance(s, escrow)) == (1_500, 1_000)

    for intent in (refunded, disputed):
        late = s.deliver(s.event("payment_intent.succeeded", {"id": intent}))
        assert late.json()["outcome"] == "already credited"
        assert _topups(s, intent) == 1
    assert jules.balance() == 1_500
    stranger = s.stripe.intent(700)
    s.stripe.pay(stranger.id)
    answer = s.deliver(s.event("charge.refunded", _charge(s, stranger.id)))
    assert answer.status_code == 200 and answer.json()["outcome"].startswith("never credited")
    _audit_clean(s)


# -- refusals when starting, and the node without Stripe -------------------------------------


def test_without_stripe_keys_the_node_says_how_to_set_them(site: Any) -> None:
    camille = join(site, "Camille")
    answer = camille.post("/api/v1/topups/card", json={"amount": 2_000})
    assert answer.status_code == 409 and answer.json()["error"] == "card_topup_unavailable"
    # Residents are told where else to top up; the setting names are the admin's page's.
    assert answer.json()["message"] == (
        "Le rechargement par carte n’est pas encore disponible\u202f; rechargez dans un "
        "comptoir de change."
    )
    webhook = site.post("/stripe/webhook", content=b"{}", headers={"Stripe-Signature": "t=1"})
    assert webhook.status_code == 409

    page = camille.get("/topup?lang=en")
    assert page.status_code == 200
    for words in (
        "Card top-ups are not available yet; here are the exchange offices.",
        "mairie",  # the exchange office, which works without Stripe
        camille.id,
    ):
        assert words in page.text, words
    assert 'id="card-form"' not in page.text
    # How to set Stripe up is the admin's business: on the admin's page, not the resident's.
    assert "SOU_STRIPE" not in page.text and "/stripe/webhook" not in page.text
    assert camille.get("/admin/cards").status_code == 403
    setup = operator(site, "admin").get("/admin/cards?lang=en")
    assert setup.status_code == 200
    for words in (
        "not set up",
        "SOU_STRIPE_SECRET_KEY",
        "SOU_STRIPE_WEBHOOK_SECRET",
        "SOU_STRIPE_PUBLISHABLE_KEY",
        "http://127.0.0.1/stripe/webhook",
    ):
        assert words in setup.text, words
    form = camille.post("/topup/card", data={"amount": "20", "csrf": camille.csrf})
    assert form.status_code == 409 and "SOU_STRIPE" not in form.text
    assert "top up at an exchange office" in form.text  # the language chosen above


BAD_AMOUNTS: list[tuple[Any, str]] = [
    (499, "topup_amount"),
    (50_001, "topup_amount"),
    (0, "topup_amount"),
    (-500, "topup_amount"),
    (20.5, "invalid_request"),
    (2000.0, "invalid_request"),
    ("2000", "invalid_request"),
    (True, "invalid_request"),
    (None, "invalid_request"),
]


def test_amounts_outside_the_limits_are_refused(site: Any) -> None:
    camille = join(site, "Camille")
    for amount, code in BAD_AMOUNTS:
        answer = camille.post("/api/v1/topups/card", json={"amount": amount})
        assert (answer.status_code, answer.json()["error"]) == (422, code), amount
        if code == "topup_amount":
            limits = {"min_cents": 500, "max_cents": 50_000}
            assert _pick(answer.json(), limits) == limits
            assert "5,00" in answer.json()["message"] and "500,00" in answer.json()["message"]
    missing = camille.post("/api/v1/topups/card", json={})
    assert missing.status_code == 422


def test_membership_frozen_wallets_and_operators_are_refused(node: Any, site: Any) -> None:
    camille = join(site, "Camille")
    node.settings.membership_required = True
    lapsed = camille.post("/api/v1/topups/card", json={"amount": 2_000})
    assert lapsed.status_code == 403 and lapsed.json()["error"] == "membership_required"
    admin = operator(site, "admin")
    renewed = admin.put(
        f"/api/v1/members/{camille.id}/membership",
        json={"until": (date.today() + timedelta(days=300)).isoformat()},
    )
    assert renewed.status_code == 200, renewed.text
    paid_up = camille.post("/api/v1/topups/card", json={"amount": 2_000})
    assert paid_up.json()["error"] == "card_topup_unavailable"  # the next check: no keys

    with node.engine.begin() as conn:
        conn.execute(update(members).where(members.c.id == camille.id).values(frozen_reason="x"))
    forget_principals(node)  # as a freeze made by the node does
    frozen = camille.post("/api/v1/topups/card", json={"amount": 2_000})
    assert frozen.status_code == 403 and frozen.json()["error"] == "wallet_frozen"

    office = operator(site, "office")
    assert office.post("/api/v1/topups/card", json={"amount": 2_000}).status_code == 403
    assert site.post("/api/v1/topups/card", json={"amount": 2_000}).status_code == 401


# -- pages -----------------------------------------------------------------------------------


def test_the_topup_page_follows_a_card_payment_until_credited(stripe_site: StripeSite) -> None:
    s = stripe_site
    anonymous = s.site.get("/topup", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    camille = join(s.site, "Camille")
    page = camille.get("/topup")
    assert page.status_code == 200
    for words in ("Recharger votre portefeuille", "5,00", "500,00", "mairie", camille.id):
        assert words in page.text, words

    for typed, status in (("20,505", 422), ("abc", 422), ("2", 422), ("-20", 422)):
        refused = camille.post("/topup/card", data={"amount": typed, "csrf": camille.csrf})
        assert refused.status_code == status, typed
        assert 'id="topup-refusal"' in refused.text and f'value="{typed}"' in refused.text
    no_csrf = camille.client.post("/topup/card", data={"amount": "20"})
    assert no_csrf.status_code == 403
    assert camille.get("/api/v1/topups/card").json() == []

    started = camille.post(
        "/topup/card", data={"amount": "20,50", "csrf": camille.csrf}, follow_redirects=False
    )
    assert started.status_code == 303, started.text
    where = started.headers["location"]
    intent = where.rsplit("/", 1)[-1]
    assert where == f"/topup/card/{intent}" and intent.startswith("pi_")
    waiting = camille.get(where)
    assert 'id="topup-status"' in waiting.text and 'data-status="created"' in waiting.text
    assert "/static/cards.js" in waiting.text
    assert camille.get("/static/cards.js").status_code == 200

    s.stripe.pay(intent)
    _credited(s, camille, intent)
    done = camille.get(where)
    assert 'data-status="credited"' in done.text and "20,50 SOU" in done.text
    assert camille.balance() == 2_050
    louis = join(s.site, "Louis")
    assert louis.get(where).status_code == 404


# -- Stripe Checkout (the node's default) ------------------------------------------------------


def _checkout(person: Person, cents: int) -> str:
    """Start a card top-up through the API: the address of Stripe's Checkout page."""
    answer = person.post("/api/v1/topups/card", json={"amount": cents})
    assert answer.status_code == 201, answer.text
    assert set(answer.json()) == {"checkout_url"}
    return str(answer.json()["checkout_url"])


def _return(person: Person, paid: httpx.Response) -> Any:
    """Follow Stripe's page back to the node, as the payer's browser does."""
    assert paid.status_code == 303, paid.text
    back = httpx.URL(paid.headers["location"])
    assert str(back).startswith("http://127.0.0.1/topup/card/checkout?session_id=cs_"), back
    return person.get(back.raw_path.decode(), follow_redirects=False)


def _received(s: StripeSite, kind: str) -> int:
    """How many events of `kind` the node took in."""
    with s.node.ledger.reading() as conn:
        return int(conn.scalar(select(func.count()).where(stripe_events.c.type == kind)) or 0)


def test_checkout_is_paid_on_stripes_page_and_credited_once_by_the_webhook(
    checkout_site: StripeSite,
) -> None:
    s = checkout_site
    camille = join(s.site, "Camille")
    url = _checkout(camille, 2_000)
    assert url.startswith(s.stripe.url + "/")
    # What the node asked of Stripe: one payment of the amount, for this member, back to us.
    session = s.stripe.checkout_session(url).to_dict()
    expected = {
        "mode": "payment",
        "status": "open",
        "payment_status": "unpaid",
        "payment_intent": None,
        "amount_total": 2_000,
        "currency": "eur",
        "client_reference_id": camille.id,
        "success_url": "http://127.0.0.1/topup/card/checkout?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1/topup?cancelled=1",
    }
    assert _pick(session, expected) == expected
    page = httpx.get(url)
    assert "Top-up SOU" in page.text and "20.00 EUR" in page.text
    assert camille.get("/api/v1/topups/card").json() == []  # nothing before it is paid

    declined = s.stripe.pay_checkout(url, card="4000 0000 0000 0341")
    assert declined.status_code == 402 and "Your card was declined." in declined.text
    assert s.stripe.checkout_session(url).status == "open"  # the payer may try another card
    paid = s.stripe.pay_checkout(url)
    back = _return(camille, paid)
    intent = s.stripe.checkout_session(url).payment_intent
    assert back.status_code == 303 and back.headers["location"] == f"/topup/card/{intent}"
    # The payment Checkout made names the member and this node (`payment_intent_data`).
    made = s.stripe.client.v1.payment_intents.retrieve(intent).to_dict()
    assert made["metadata"] == {"sou_member": camille.id, "sou_node": s.node.ledger.origin}
    assert _credited(s, camille, intent)["amount"] == 2_000
    assert camille.balance() == 2_000

    # Once everything Stripe sent has come (the declined attempt, the session completed),
    # and the payer came back a second time, the wallet still holds one top-up.
    for kind in ("payment_intent.payment_failed", "checkout.session.completed"):
        s.wait_until(partial(_received, s, kind), what=f"{kind} delivered")
    again = _return(camille, paid)
    assert again.headers["location"] == f"/topup/card/{intent}"
    assert [p["payment_intent"] for p in camille.get("/api/v1/topups/card").json()] == [intent]
    assert camille.balance() == 2_000 and _topups(s, intent) == 1
    _audit_clean(s)


def test_back_from_checkout_before_the_webhook_the_payment_is_under_way(
    checkout_site: StripeSite,
) -> None:
    s = checkout_site
    s.stripe.hold_webhooks(s.webhook_url)  # Stripe's webhook comes when the test says
    camille, louis = join(s.site, "Camille"), join(s.site, "Louis")
    url = _checkout(camille, 2_500)
    session_id = url.rsplit("/", 1)[-1]
    unpaid = camille.get(f"/topup/card/checkout?session_id={session_id}")
    assert unpaid.status_code == 404  # back without paying: no payment to follow
    paid = s.stripe.pay_checkout(url)

    # Someone else who gets hold of the address Stripe sent Camille back to sees nothing.
    assert _return(louis, paid).status_code == 404
    assert louis.get("/api/v1/topups/card").json() == []
    back = _return(camille, paid)
    assert back.status_code == 303, back.text
    intent = back.headers["location"].rsplit("/", 1)[-1]
    waiting = camille.get(f"/topup/card/{intent}?lang=en")
    assert 'data-status="created"' in waiting.text
    assert "Waiting for Stripe to confirm your payment" in waiting.text
    assert camille.balance() == 0 and _payment(camille, intent)["status"] == "created"
    assert louis.get(f"/topup/card/{intent}").status_code == 404

    # Stripe's own webhook, signed by localstripe, arrives: the wallet is credited.
    assert s.deliver(s.stripe.sent("payment_intent.succeeded", intent)).status_code == 200
    done = camille.get(f"/topup/card/{intent}?lang=en")
    assert 'data-status="credited"' in done.text, done.text
    assert "Paid: your wallet was credited with 25.00 SOU" in done.text
    assert camille.balance() == 2_500
    completed = s.stripe.sent("checkout.session.completed", session_id)
    assert completed["data"]["object"]["payment_intent"] == intent
    assert s.deliver(completed).json()["outcome"] == "ignored"  # it credits nothing more
    assert camille.balance() == 2_500 and _topups(s, intent) == 1
    _audit_clean(s)


def test_a_cancelled_checkout_or_stripe_unreachable_pays_nothing(
    checkout_site: StripeSite,
) -> None:
    s = checkout_site
    camille = join(s.site, "Camille")
    started = camille.post(
        "/topup/card", data={"amount": "20", "csrf": camille.csrf}, follow_redirects=False
    )
    assert started.status_code == 303, started.text
    url = started.headers["location"]
    assert url.startswith(s.stripe.url + "/") and "20.00 EUR" in httpx.get(url).text
    # The payer changes their mind on Stripe's page and takes its way back.
    way_back = re.search(r'id="back" href="([^"]+)"', httpx.get(url).text)
    assert way_back is not None and way_back[1] == "http://127.0.0.1/topup?cancelled=1"
    cancelled = camille.get(httpx.URL(way_back[1]).raw_path.decode() + "&lang=en")
    assert "The card payment was cancelled: nothing was paid." in cancelled.text
    assert camille.get("/api/v1/topups/card").json() == [] and camille.balance() == 0
    unknown = camille.get("/topup/card/checkout?session_id=cs_test_neverMade")
    assert unknown.status_code == 404

    s.node.settings.stripe_api_base = f"http://127.0.0.1:{free_port()}"  # Stripe is down
    down = camille.post("/api/v1/topups/card", json={"amount": 2_000})
    assert down.status_code == 502 and down.json()["error"] == "stripe_error"
    form = camille.post("/topup/card", data={"amount": "20", "csrf": camille.csrf})
    assert form.status_code == 502 and 'id="topup-refusal"' in form.text
    back = camille.get(f"/topup/card/checkout?session_id={url.rsplit('/', 1)[-1]}")
    assert back.status_code == 502
    assert camille.get("/api/v1/topups/card").json() == [] and camille.balance() == 0


def test_a_signed_event_whose_data_is_not_an_object_is_refused(stripe_site: StripeSite) -> None:
    s = stripe_site
    s.stripe.hold_webhooks(s.webhook_url)
    shapes = [[1, 2], "payment", 7, None, {"object": ["pi_1"]}]
    refused = [
        s.deliver({**s.event("payment_intent.succeeded", {"id": "pi_x"}), "data": data})
        for data in shapes
    ]
    assert [r.status_code for r in refused] == [400] * len(shapes)
    assert {r.json()["error"] for r in refused} == {"bad_webhook_event"}
    with s.node.ledger.reading() as conn:
        assert conn.scalar(select(func.count()).select_from(stripe_events)) == 0
