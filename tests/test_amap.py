"""The AMAP plugin: contracts of three natures from subscription to delivery, the money held
in each subscription's escrow and released to the producer (or refunded) exactly once, and
every refusal precise with nothing written. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from plugins.amap.models import TABLES, holds
from tests.conftest import Clock
from tests.people import Person, at_once, fund, join, operator

HOUR_S = 3600


@dataclass
class Amap:
    """A village AMAP: the admin, a farm (producer), a coordinator, a place, products."""

    site: TestClient
    admin: Person
    farm: Person
    coordinator: Person
    clock: Clock
    place: int
    products: dict[str, int] = field(default_factory=dict)
    days: int = 0

    @property
    def node(self) -> Any:
        return self.site.app.state.node  # type: ignore[attr-defined]

    def balance(self, account: str) -> int:
        return int(self.node.ledger.balance(account))

    def contract(self, nature: str, **fields: Any) -> dict[str, Any]:
        body = {
            "producer": self.farm.id,
            "title": f"Contrat {nature}",
            "nature": nature,
            "season": "2027",
            "coordinators": [self.coordinator.id],
            **fields,
        }
        if nature == "subscription":
            body.setdefault("basket", [{"product": self.products["carottes"], "quantity": 2}])
        made = self.admin.post("/api/v1/amap/contracts", json=body)
        assert made.status_code == 201, made.text
        return dict(made.json())

    def distribution(
        self, contract: int, cutoff_in_s: int = 24 * HOUR_S, stock: int = 10
    ) -> dict[str, Any]:
        self.days += 1
        body = {
            "day": (date(2027, 6, 1) + timedelta(days=self.days)).isoformat(),
            "place": self.place,
            "cutoff_ms": self.clock() + cutoff_in_s * 1000 + self.days,
            "stock": [{"product": p, "remaining": stock} for p in self.products.values()],
        }
        made = self.coordinator.post(f"/api/v1/amap/contracts/{contract}/distributions", json=body)
        assert made.status_code == 201, made.text
        return dict(made.json())

    def member(self, name: str, cents: int = 50_000) -> Person:
        person = join(self.site, name)
        fund(self.site, person, cents)
        return person

    def subscribe(
        self, person: Person, contract: int, first: str | None = "season"
    ) -> dict[str, Any]:
        """Subscribe as the page does: a subscription contract with its first payment (the
        whole `season`, or the first `instalment`; None: none, it waits)."""
        path = f"/api/v1/amap/contracts/{contract}/subscriptions"
        made = person.post(path)
        assert made.status_code == 201, made.text
        sub = dict(made.json())
        if sub["state"] != "pending" or first is None:
            return sub
        amount = sub["due"] if first == "season" else sub["next_instalment"]
        payment = person.order("escrow_payment", to=sub["escrow"], amount=amount)
        paid = person.post(path, json={"payment": payment})
        assert paid.status_code == 201, paid.text
        return dict(paid.json())

    def pay(self, person: Person, sub: dict[str, Any], amount: int) -> Any:
        payment = person.order("escrow_payment", to=sub["escrow"], amount=amount)
        return person.post(f"/api/v1/amap/subscriptions/{sub['id']}/payments", json=payment)

    def order(
        self, person: Person, sub: dict[str, Any], dist: int, lines: dict[str, int], pay: int = 0
    ) -> Any:
        body: dict[str, Any] = {
            "lines": [{"product": self.products[n], "quantity": q} for n, q in lines.items()]
        }
        if pay:
            body["payment"] = person.order("escrow_payment", to=sub["escrow"], amount=pay)
        return person.put(f"/api/v1/amap/subscriptions/{sub['id']}/orders/{dist}", json=body)

    def mine(self, person: Person, sub: dict[str, Any]) -> dict[str, Any]:
        found = person.get("/api/v1/amap/subscriptions").json()
        return dict(next(s for s in found if s["id"] == sub["id"]))

    def mine_id(self, person: Person, contract: int) -> int:
        found = person.get("/api/v1/amap/subscriptions").json()
        return int(next(s["id"] for s in found if s["contract"] == contract))

    def deliver(self, dist: int) -> Any:
        return self.coordinator.post(f"/api/v1/amap/distributions/{dist}/delivered")

    def counts(self) -> dict[str, int]:
        with self.node.ledger.reading() as conn:
            return {
                t.name: int(conn.scalar(select(func.count()).select_from(t)) or 0) for t in TABLES
            }


def make_amap(site: TestClient, clock: Clock) -> Amap:
    admin = operator(site, "admin")
    farm = join(site, "Ferme", "merchant")
    coordinator = join(site, "Coordinatrice")
    named = admin.post("/api/v1/amap/producers", json={"member": farm.id})
    assert named.status_code == 201, named.text
    place = admin.post("/api/v1/amap/places", json={"name": "Halle", "address": "Place du marché"})
    assert place.status_code == 201, place.text
    amap = Amap(site, admin, farm, coordinator, clock, place.json()["id"])
    for name, price in (("carottes", 250), ("oeufs", 40)):
        made = farm.post("/api/v1/amap/products", json={"name": name, "unit": "kg", "price": price})
        assert made.status_code == 201, made.text
        amap.products[name] = made.json()["id"]
    return amap


@pytest.fixture
def amap(site: TestClient, clock: Clock) -> Amap:
    return make_amap(site, clock)


# -- the three natures, from subscription to delivery ---------------------------------------


def test_a_subscription_is_paid_in_instalments_and_released_per_distribution(amap: Amap) -> None:
    deal = amap.contract("subscription", instalments=2)
    dists = [amap.distribution(deal["id"], cutoff_in_s=(i + 1) * 24 * HOUR_S) for i in range(4)]
    camille = amap.member("Camille")
    path = f"/api/v1/amap/contracts/{deal['id']}/subscriptions"
    waiting = camille.post(path).json()
    # Subscribing names the escrow and what starting costs: the season, or its first half.
    assert (waiting["state"], waiting["due"], waiting["next_instalment"]) == (
        "pending",
        2_000,
        1_000,
    )
    wrong = camille.order("escrow_payment", to=waiting["escrow"], amount=500)
    refused = camille.post(path, json={"payment": wrong})
    assert refused.status_code == 422 and refused.json()["error"] == "wrong_payment"
    first = camille.order("escrow_payment", to=waiting["escrow"], amount=1_000)
    sub = camille.post(path, json={"payment": first})
    assert sub.status_code == 201, sub.text
    again = camille.post(path, json={"payment": first})  # sent again (no answer came): once
    assert again.status_code == 200 and amap.mine(camille, again.json())["paid"] == 1_000
    sub = amap.mine(camille, sub.json())
    assert sub["state"] == "active" and sub["total"] == 4 * 2 * 250 and sub["due"] == 1_000
    # Each instalment covers the next two distributions, due before the first one's cut-off.
    assert [(i["amount"], i["due_ms"], i["paid"]) for i in sub["schedule"]] == [
        (1_000, dists[0]["cutoff_ms"], True),
        (1_000, dists[2]["cutoff_ms"], False),
    ]
    assert (sub["next_instalment"], sub["next_due_ms"]) == (1_000, dists[2]["cutoff_ms"])
    assert amap.pay(camille, sub, 500).json()["error"] == "wrong_payment"
    assert amap.pay(camille, sub, 1_000).status_code == 201
    assert amap.mine(camille, sub)["due"] == 0
    assert amap.pay(camille, sub, 1_000).json()["error"] == "nothing_due"
    before = amap.balance(amap.farm.account)
    assert amap.deliver(dists[0]["id"]).status_code == 200
    assert amap.balance(amap.farm.account) == before + 500
    assert amap.balance(sub["escrow"]) == 1_500
    # A price change never alters a line already ordered.
    changed = amap.farm.client.patch(
        f"/api/v1/amap/products/{amap.products['carottes']}",
        json={"price": 999},
        headers=amap.farm.headers(),
    )
    assert changed.status_code == 200, changed.text
    assert amap.deliver(dists[1]["id"]).status_code == 200
    assert amap.balance(amap.farm.account) == before + 1_000
    statement = amap.mine(camille, sub)
    assert statement["released"] == 1_000 and statement["held"] == 1_000


def sheet_csv(amap: Amap, dist: int) -> str:
    answer = amap.coordinator.get(f"/amap/distributions/{dist}/sheet?format=csv")
    assert answer.status_code == 200, answer.text
    return answer.content.decode("utf-8-sig")


def test_a_basket_unpaid_at_its_cutoff_is_not_handed_over_and_paying_late_takes_the_next(
    amap: Amap,
) -> None:
    deal = amap.contract("subscription", instalments=2)
    dists = [amap.distribution(deal["id"], cutoff_in_s=(i + 1) * 24 * HOUR_S) for i in range(4)]
    hugo = amap.member("Hugo")
    sub = amap.subscribe(hugo, deal["id"], first="instalment")
    assert sub["paid"] == 1_000
    farm = amap.balance(amap.farm.account)
    for dist in dists[:2]:
        assert amap.deliver(dist["id"]).status_code == 200
    assert amap.balance(amap.farm.account) == farm + 1_000
    assert "Réglé" in sheet_csv(amap, dists[1]["id"])
    assert "À régler" in sheet_csv(amap, dists[2]["id"])  # due before its cut-off
    amap.clock.advance(3 * 24 * HOUR_S + 60)  # the second instalment's cut-off has passed
    sheet = sheet_csv(amap, dists[2]["id"])
    assert "Hugo" in sheet and "À régler" in sheet  # to settle at the distribution
    wallet = hugo.balance()
    assert amap.deliver(dists[2]["id"]).status_code == 200
    assert amap.balance(amap.farm.account) == farm + 1_000  # nothing released for it
    assert amap.balance(sub["escrow"]) == 0 and hugo.balance() == wallet
    shown = amap.mine(hugo, sub)
    assert shown["unpaid"] == [dists[2]["day"]]  # not carried: it left the season
    assert (shown["due"], shown["next_instalment"]) == (500, 500)
    assert shown["next_due_ms"] == dists[3]["cutoff_ms"]
    assert "À régler" in sheet_csv(amap, dists[2]["id"])
    # Paid late, before the next cut-off: the next basket is handed over and paid for.
    assert amap.pay(hugo, sub, 500).status_code == 201
    assert "À régler" not in sheet_csv(amap, dists[3]["id"])
    assert amap.deliver(dists[3]["id"]).status_code == 200
    assert amap.balance(amap.farm.account) == farm + 1_500
    assert amap.balance(sub["escrow"]) == 0 and amap.mine(hugo, sub)["due"] == 0
    assert_audit(amap)


def test_subscribing_without_its_first_payment_puts_no_basket_on_a_sheet_and_lapses(
    amap: Amap,
) -> None:
    deal = amap.contract("subscription", instalments=2)
    dists = [amap.distribution(deal["id"], cutoff_in_s=(i + 1) * 24 * HOUR_S) for i in range(2)]
    nora = amap.member("Nora")
    waiting = amap.subscribe(nora, deal["id"], first=None)
    assert waiting["state"] == "pending" and waiting["baskets"] == []
    assert "Nora" not in sheet_csv(amap, dists[0]["id"])
    path = f"/api/v1/amap/subscriptions/{waiting['id']}"
    absent = nora.post(f"{path}/absences", json={"distribution": dists[0]["id"]})
    assert absent.status_code == 409 and absent.json()["error"] == "first_payment_needed"
    left = nora.post(f"{path}/leave")
    assert left.status_code == 409 and left.json()["error"] == "first_payment_needed"
    amap.clock.advance(2 * HOUR_S)
    assert amap.mine(nora, waiting)["state"] == "expired"
    farm = amap.balance(amap.farm.account)
    assert amap.deliver(dists[0]["id"]).status_code == 200
    assert amap.balance(amap.farm.account) == farm and amap.balance(waiting["escrow"]) == 0
    # Subscribing again starts afresh, with the distributions still open.
    again = amap.subscribe(nora, deal["id"])
    assert again["id"] == waiting["id"] and again["state"] == "active"
    assert again["paid"] == 500 and "Nora" in sheet_csv(amap, dists[1]["id"])
    assert_audit(amap)


def test_free_choice_orders_are_paid_changed_and_delivered(amap: Amap) -> None:
    deal = amap.contract("free_choice")
    dist = amap.distribution(deal["id"], stock=5)
    louis = amap.member("Louis")
    sub = amap.subscribe(louis, deal["id"])
    wallet = louis.balance()
    needs = amap.order(louis, sub, dist["id"], {"carottes": 2})
    assert needs.status_code == 422 and needs.json()["error"] == "payment_needed"
    done = amap.order(louis, sub, dist["id"], {"carottes": 2}, pay=500)
    assert done.status_code == 200, done.text
    assert louis.balance() == wallet - 500
    # A higher order takes a new payment of the difference; a lower one refunds it.
    assert amap.order(louis, sub, dist["id"], {"carottes": 3}, pay=250).status_code == 200
    assert amap.order(louis, sub, dist["id"], {"carottes": 1, "oeufs": 1}).status_code == 200
    assert louis.balance() == wallet - 290
    # Lowered twice in a row, then raised again: each refund is a move of its own.
    assert amap.order(louis, sub, dist["id"], {"oeufs": 1}).status_code == 200
    assert amap.order(louis, sub, dist["id"], {}).status_code == 200
    assert louis.balance() == wallet
    again = amap.order(louis, sub, dist["id"], {"carottes": 1, "oeufs": 1}, pay=290)
    assert again.status_code == 200, again.text
    assert louis.balance() == wallet - 290
    assert amap.node.ledger.balance(sub["escrow"]) == 290
    farm_before = amap.balance(amap.farm.account)
    assert amap.deliver(dist["id"]).status_code == 200
    assert amap.balance(amap.farm.account) == farm_before + 290
    assert amap.balance(sub["escrow"]) == 0


def test_a_prepaid_card_is_loaded_and_orders_draw_from_it(amap: Amap) -> None:
    deal = amap.contract("prepaid")
    first, second = amap.distribution(deal["id"]), amap.distribution(deal["id"])
    ines = amap.member("Inès")
    sub = amap.subscribe(ines, deal["id"])
    assert amap.pay(ines, sub, 1_000).status_code == 201
    assert amap.mine(ines, sub)["credit"] == 1_000
    refused = amap.order(ines, sub, first["id"], {"carottes": 5})
    assert refused.status_code == 409 and refused.json()["error"] == "beyond_credit"
    assert amap.order(ines, sub, first["id"], {"carottes": 2}).status_code == 200
    assert amap.order(ines, sub, second["id"], {"oeufs": 5}).status_code == 200
    assert amap.mine(ines, sub)["credit"] == 300
    farm_before = amap.balance(amap.farm.account)
    assert amap.deliver(first["id"]).status_code == 200
    assert amap.balance(amap.farm.account) == farm_before + 500
    # A cancelled distribution: its share stays on the card.
    cancelled = amap.coordinator.post(f"/api/v1/amap/distributions/{second['id']}/cancelled")
    assert cancelled.status_code == 200, cancelled.text
    assert amap.mine(ines, sub)["credit"] == 500
    assert amap.balance(sub["escrow"]) == 500
    # Leaving gives back what is on the card.
    wallet = ines.balance()
    assert ines.post(f"/api/v1/amap/subscriptions/{sub['id']}/leave").status_code == 200
    assert ines.balance() == wallet + 500 and amap.balance(sub["escrow"]) == 0


# -- cancellation, jokers, leaving -------------------------------------------------------------


def test_a_cancelled_distribution_refunds_each_subscriber(amap: Amap) -> None:
    deal = amap.contract("subscription")
    dists = [amap.distribution(deal["id"]) for _ in range(2)]
    hugo = amap.member("Hugo")
    sub = amap.subscribe(hugo, deal["id"])  # and pays the season
    assert sub["paid"] == 1_000
    wallet = hugo.balance()
    cancelled = amap.coordinator.post(f"/api/v1/amap/distributions/{dists[0]['id']}/cancelled")
    assert cancelled.status_code == 200, cancelled.text
    assert hugo.balance() == wallet + 500 and amap.balance(sub["escrow"]) == 500
    again = amap.deliver(dists[0]["id"])
    assert again.status_code == 409 and again.json()["error"] == "distribution_closed"


@pytest.mark.parametrize("rule", ["carry", "refund"])
def test_a_joker_skips_a_basket_within_the_limit(amap: Amap, rule: str) -> None:
    deal = amap.contract("subscription", jokers=1, joker_rule=rule)
    dists = [amap.distribution(deal["id"]) for _ in range(3)]
    lea = amap.member("Léa")
    sub = amap.subscribe(lea, deal["id"])
    assert sub["paid"] == 1_500
    wallet = lea.balance()
    path = f"/api/v1/amap/subscriptions/{sub['id']}/absences"
    assert lea.post(path, json={"distribution": dists[0]["id"]}).status_code == 200
    before = amap.counts()
    beyond = lea.post(path, json={"distribution": dists[1]["id"]})
    assert beyond.status_code == 409 and beyond.json()["error"] == "no_jokers"
    assert amap.counts() == before
    farm = amap.balance(amap.farm.account)
    for dist in dists:
        assert amap.deliver(dist["id"]).status_code == 200
    if rule == "carry":  # received and paid at the next distribution
        assert lea.balance() == wallet
        assert amap.balance(amap.farm.account) == farm + 1_500
    else:
        assert lea.balance() == wallet + 500
        assert amap.balance(amap.farm.account) == farm + 1_000
    assert amap.balance(sub["escrow"]) == 0


@pytest.mark.parametrize(("rule", "notice", "back"), [("all", 0, 1_500), ("notice", 1, 1_000)])
def test_leaving_early_gives_back_what_is_not_delivered(
    amap: Amap, rule: str, notice: int, back: int
) -> None:
    deal = amap.contract("subscription", leave_rule=rule, notice=notice)
    dists = [amap.distribution(deal["id"]) for _ in range(4)]
    jules = amap.member("Jules")
    sub = amap.subscribe(jules, deal["id"])
    assert sub["paid"] == 2_000
    assert amap.deliver(dists[0]["id"]).status_code == 200
    wallet = jules.balance()
    left = jules.post(f"/api/v1/amap/subscriptions/{sub['id']}/leave")
    assert left.status_code == 200, left.text
    assert jules.balance() == wallet + back
    assert amap.balance(sub["escrow"]) == 1_500 - back
    again = jules.post(f"/api/v1/amap/subscriptions/{sub['id']}/leave")
    assert again.status_code == 409 and again.json()["error"] == "subscription_left"
    assert_audit(amap)


def test_a_payment_posted_but_not_recorded_is_recorded_by_the_reaction(amap: Amap) -> None:
    """As if the node died between posting a member's escrow payment and recording it: the
    reaction to the ledger's events records it, once."""
    from ledger.signing import SignedOrder
    from runtime.signing import post
    from tests.stripe_server import wait_until

    deal = amap.contract("prepaid")
    camille = amap.member("Camille")
    sub = amap.subscribe(camille, deal["id"])
    payment = camille.order("escrow_payment", to=sub["escrow"], amount=700)
    post(amap.node, SignedOrder.from_json(payment))  # straight to the ledger
    amap.node.new_sealer().seal_all()
    wait_until(lambda: amap.mine(camille, sub)["credit"] == 700, what="the reaction")
    assert amap.mine(camille, sub)["paid"] == 700
    replayed = camille.post(f"/api/v1/amap/subscriptions/{sub['id']}/payments", json=payment)
    assert replayed.status_code == 200  # the same order again: recorded once
    assert amap.mine(camille, sub)["credit"] == 700
    assert_audit(amap)


def assert_audit(amap: Amap) -> None:
    from audits.audit import audit

    node = amap.node
    node.new_sealer().seal_all()
    report = audit(node.engine, node_public_key=node.node_key.public_key, workers=1)
    assert report.ok, report.findings


def test_releases_decided_before_a_crash_are_posted_by_the_job_once(
    amap: Amap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node dies after deciding a delivery's releases, before posting them: the job
    posts them later, and marking the distribution delivered again moves nothing more."""
    from members import service as members_service
    from plugins.amap import service

    deal = amap.contract("subscription")
    dist = amap.distribution(deal["id"])
    people = [amap.member(f"C{i}") for i in range(2)]
    for p in people:
        assert amap.subscribe(p, deal["id"])["paid"] == 500
    farm = amap.balance(amap.farm.account)

    def crash(*_: Any) -> None:
        raise RuntimeError("killed")

    posting = service.posted_or_existing
    monkeypatch.setattr(service, "posted_or_existing", crash)
    coordinator = members_service.get_member(amap.node, amap.coordinator.id)
    with pytest.raises(RuntimeError):
        service.deliver(amap.node, coordinator, dist["id"])
    assert amap.balance(amap.farm.account) == farm  # decided, not posted
    monkeypatch.setattr(service, "posted_or_existing", posting)  # the node is back
    assert service.post_pending(amap.node) == "2 moves posted"
    assert amap.balance(amap.farm.account) == farm + 1_000
    assert amap.deliver(dist["id"]).status_code == 200
    assert service.post_pending(amap.node) == "0 moves posted"
    assert amap.balance(amap.farm.account) == farm + 1_000
    assert_audit(amap)


def test_an_order_whose_payment_never_came_is_given_back_once_it_expired(
    amap: Amap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node dies after taking the stock of a free-choice order, before its payment is
    posted (or after it is posted, before it is recorded). Once the signed payment can no
    longer land, the job gives an unpaid order back, and leaves a paid one alone."""
    from ledger.signing import SignedOrder
    from members import service as members_service
    from plugins.amap import service
    from tests.stripe_server import wait_until

    deal = amap.contract("free_choice")
    dist = amap.distribution(deal["id"], stock=5)
    louis, lea = amap.member("Louis"), amap.member("Léa")
    subs = {p.id: amap.subscribe(p, deal["id"]) for p in (louis, lea)}
    carrots = amap.products["carottes"]

    def killed(person: Person, after_posting: bool) -> None:
        sub = subs[person.id]
        signed = person.order("escrow_payment", to=sub["escrow"], amount=500)
        envelope = SignedOrder.from_json(signed)
        member = members_service.get_member(amap.node, person.id)

        def dies(*_: Any) -> None:
            raise RuntimeError("killed")

        if after_posting:
            monkeypatch.setattr(service, "_record", dies)
        else:
            monkeypatch.setattr(service, "post", dies)
        with pytest.raises(RuntimeError):
            service.order(amap.node, member, sub["id"], dist["id"], {carrots: 2}, envelope)
        monkeypatch.undo()  # the node is back

    def holds_of(amap: Amap) -> list[dict[str, Any]]:
        with amap.node.ledger.reading() as conn:
            return [dict(r) for r in conn.execute(select(holds)).mappings()]

    killed(louis, after_posting=False)
    killed(lea, after_posting=True)
    # Both baskets hold their stock; another order of theirs waits for the first one.
    assert service.distribution(amap.node, dist["id"])["stock"][carrots] == 1
    again = amap.order(louis, subs[louis.id], dist["id"], {"carottes": 1}, pay=250)
    assert again.status_code == 409 and again.json()["error"] == "order_being_paid"
    # Léa's payment reached the log: the reaction records it, as after a restart.
    amap.node.new_sealer().seal_all()
    wait_until(lambda: amap.mine(lea, subs[lea.id])["paid"] == 500, what="the reaction")
    # Before the payments expire nothing is given back; after, only Louis's unpaid order.
    # Léa may order again at once: her payment is known to have come.
    more = amap.order(lea, subs[lea.id], dist["id"], {"carottes": 2, "oeufs": 1}, pay=40)
    assert more.status_code == 200, more.text
    expires = max(h["expires_ms"] for h in holds_of(amap))
    assert "given back" not in service.post_pending(amap.node, expires)
    later = expires + service.HOLD_MARGIN_MS + 1
    assert service.post_pending(amap.node, later).endswith("1 unpaid orders given back")
    assert service.post_pending(amap.node, later) == "0 moves posted"  # once
    assert not holds_of(amap)
    assert service.distribution(amap.node, dist["id"])["stock"][carrots] == 3
    assert amap.mine(louis, subs[louis.id])["paid"] == 0
    farm = amap.balance(amap.farm.account)
    assert amap.deliver(dist["id"]).status_code == 200
    assert amap.balance(amap.farm.account) == farm + 540  # Léa's basket, paid; Louis has none
    assert_audit(amap)


# -- refusals: precise, and nothing written ----------------------------------------------------


def test_bad_requests_are_refused_precisely_and_change_nothing(amap: Amap) -> None:
    deal = amap.contract("free_choice")
    dist = amap.distribution(deal["id"], cutoff_in_s=HOUR_S, stock=2)
    camille, louis = amap.member("Camille"), amap.member("Louis")
    sub = amap.subscribe(camille, deal["id"])
    other = amap.subscribe(louis, deal["id"])
    assert amap.order(camille, sub, dist["id"], {"carottes": 1}, pay=250).status_code == 200
    before, wallets = amap.counts(), (camille.balance(), louis.balance())
    escrow = amap.balance(sub["escrow"])

    def refused(answer: Any, status: int, error: str) -> None:
        assert answer.status_code == status, answer.text
        assert answer.json()["error"] == error
        assert amap.counts() == before
        assert (camille.balance(), louis.balance()) == wallets
        assert amap.balance(sub["escrow"]) == escrow

    refused(amap.order(camille, sub, dist["id"], {"carottes": 3}, pay=500), 409, "beyond_stock")
    refused(amap.order(camille, sub, dist["id"], {"carottes": 2}, pay=400), 422, "wrong_payment")
    # Another member's subscription is not found: nothing about it is revealed.
    refused(
        amap.order(louis, sub, dist["id"], {"carottes": 1}, pay=250), 404, "unknown_subscription"
    )
    refused(amap.pay(louis, sub, 250), 404, "unknown_subscription")
    # A payment into the wrong escrow (the other member's subscription).
    wrong = camille.order("escrow_payment", to=other["escrow"], amount=250)
    body = {"lines": [{"product": amap.products["carottes"], "quantity": 2}], "payment": wrong}
    refused(
        camille.put(f"/api/v1/amap/subscriptions/{sub['id']}/orders/{dist['id']}", json=body),
        422,
        "wrong_payment",
    )
    refused(
        camille.post(
            f"/api/v1/amap/subscriptions/{sub['id']}/absences", json={"distribution": dist["id"]}
        ),
        409,
        "not_subscription",
    )
    amap.clock.advance(2 * HOUR_S)
    refused(amap.order(camille, sub, dist["id"], {"carottes": 2}, pay=250), 409, "after_cutoff")


FRENCH = {"Accept-Language": "fr"}


def test_each_bad_input_gets_its_reason_in_french_and_writes_nothing(amap: Amap) -> None:
    """Orders after the cut-off, beyond the stock or the contract's limits, another
    member's subscription: a precise 4xx whose message is French, and nothing changed."""
    free, card = amap.contract("free_choice"), amap.contract("prepaid")
    basket = amap.contract("subscription", jokers=1)
    late = amap.distribution(free["id"], cutoff_in_s=HOUR_S, stock=2)
    soon = amap.distribution(free["id"], stock=2)
    on_card = amap.distribution(card["id"])
    fixed = [amap.distribution(basket["id"]) for _ in range(2)]
    camille, louis = amap.member("Camille"), amap.member("Louis")
    for person in (camille, louis):
        person.extra_headers.update(FRENCH)
    sub = amap.subscribe(camille, free["id"])
    prepaid = amap.subscribe(camille, card["id"])
    season = amap.subscribe(camille, basket["id"])
    amap.subscribe(louis, free["id"])
    assert amap.pay(camille, prepaid, 300).status_code == 201
    assert season["paid"] == 1_000
    absences = f"/api/v1/amap/subscriptions/{season['id']}/absences"
    assert camille.post(absences, json={"distribution": fixed[0]["id"]}).status_code == 200
    assert amap.order(camille, sub, soon["id"], {"carottes": 1}, pay=250).status_code == 200
    # A product added after the distribution was planned: not offered at it.
    other = amap.farm.post(
        "/api/v1/amap/products", json={"name": "pain", "unit": "pièce", "price": 100}
    )
    assert other.status_code == 201, other.text
    amap.clock.advance(2 * HOUR_S)  # the first distribution's cut-off has passed
    before, escrows = amap.counts(), [amap.balance(s["escrow"]) for s in (sub, prepaid, season)]
    wallets = (camille.balance(), louis.balance(), amap.balance(amap.farm.account))

    def refused(answer: Any, status: int, error: str, french: str) -> None:
        assert answer.status_code == status, answer.text
        assert answer.json()["error"] == error, answer.text
        assert answer.json()["message"] == french
        assert amap.counts() == before
        assert [amap.balance(s["escrow"]) for s in (sub, prepaid, season)] == escrows
        assert (camille.balance(), louis.balance(), amap.balance(amap.farm.account)) == wallets

    refused(
        amap.order(camille, sub, late["id"], {"carottes": 1}, pay=250),
        409,
        "after_cutoff",
        "Les commandes de cette distribution sont closes.",
    )
    refused(
        amap.order(camille, sub, soon["id"], {"carottes": 3}, pay=500),
        409,
        "beyond_stock",
        "Pas assez de «\u202fcarottes\u202f»\u202f: il en reste 1 pour cette distribution.",
    )
    refused(
        amap.order(camille, prepaid, on_card["id"], {"carottes": 2}),
        409,
        "beyond_credit",
        _french_money(
            "Cette commande coûte {a}, mais il ne reste que {b} sur votre carte.", a=500, b=300
        ),
    )
    refused(
        camille.put(
            f"/api/v1/amap/subscriptions/{prepaid['id']}/orders/{on_card['id']}",
            json={"lines": [{"product": other.json()["id"], "quantity": 1}]},
        ),
        422,
        "not_in_contract",
        "Ce produit ou cette distribution ne fait pas partie du contrat.",
    )
    too_many = camille.put(
        f"/api/v1/amap/subscriptions/{prepaid['id']}/orders/{on_card['id']}",
        json={"lines": [{"product": amap.products["oeufs"], "quantity": 10_001}]},
    )
    refused(too_many, 422, "invalid_request", too_many.json()["message"])
    assert too_many.json()["message"].startswith("Le champ")
    assert "doit valoir au plus 10000" in too_many.json()["message"]
    refused(
        amap.order(camille, season, fixed[1]["id"], {"carottes": 1}),
        409,
        "not_orderable",
        "Le panier d’un abonnement est fixe\u202f: il ne se commande pas.",
    )
    refused(
        camille.post(absences, json={"distribution": fixed[1]["id"]}),
        409,
        "no_jokers",
        "Vous avez déjà déclaré toutes les absences que permet ce contrat (1).",
    )
    # Another member's subscription: not found, and nothing about it is told.
    unknown = "Cet abonnement n’existe pas."
    theirs = f"/api/v1/amap/subscriptions/{sub['id']}"
    refused(
        amap.order(louis, sub, soon["id"], {"carottes": 1}, pay=250),
        404,
        "unknown_subscription",
        unknown,
    )
    refused(amap.pay(louis, sub, 250), 404, "unknown_subscription", unknown)
    refused(louis.post(f"{theirs}/leave"), 404, "unknown_subscription", unknown)
    refused(
        louis.post(
            f"/api/v1/amap/subscriptions/{season['id']}/absences",
            json={"distribution": fixed[1]["id"]},
        ),
        404,
        "unknown_subscription",
        unknown,
    )


def _french_money(text: str, **cents: int) -> str:
    from web.i18n import money

    return text.format(**{k: money(v, "fr", "SOU") for k, v in cents.items()})


def test_only_coordinators_and_producers_act_on_their_own(amap: Amap) -> None:
    deal = amap.contract("free_choice")
    camille = amap.member("Camille")
    body = {"day": "2027-07-01", "place": amap.place, "cutoff_ms": amap.clock() + 10_000}
    refused = camille.post(f"/api/v1/amap/contracts/{deal['id']}/distributions", json=body)
    assert refused.status_code == 403 and refused.json()["error"] == "not_coordinator"
    other_farm = join(amap.site, "Autre", "merchant")
    theirs = other_farm.client.patch(
        f"/api/v1/amap/products/{amap.products['oeufs']}",
        json={"price": 1},
        headers=other_farm.headers(),
    )
    assert theirs.status_code == 403 and theirs.json()["error"] == "not_your_product"
    not_farm = amap.admin.post("/api/v1/amap/producers", json={"member": camille.id})
    assert not_farm.status_code == 409 and not_farm.json()["error"] == "not_a_merchant"


# -- races -----------------------------------------------------------------------------------


def test_the_admin_changes_who_coordinates_a_contract(amap: Amap) -> None:
    deal = amap.contract("subscription")
    dist = amap.distribution(deal["id"])
    jeanne = join(amap.site, "Jeanne")
    path = f"/api/v1/amap/contracts/{deal['id']}/coordinators"
    unknown = amap.admin.put(path, json={"coordinators": [jeanne.id, "nobody-here"]})
    assert unknown.status_code == 409 and unknown.json()["error"] == "not_a_member"
    assert amap.admin.get(f"/api/v1/amap/contracts/{deal['id']}").status_code == 403
    changed = amap.admin.put(path, json={"coordinators": [jeanne.id]})
    assert changed.status_code == 200 and changed.json()["coordinators"] == [jeanne.id]
    # The one before may no longer close a distribution; the new one may.
    before = amap.coordinator.post(f"/api/v1/amap/distributions/{dist['id']}/delivered")
    assert before.status_code == 403, before.text
    now = jeanne.post(f"/api/v1/amap/distributions/{dist['id']}/delivered")
    assert now.status_code == 200, now.text


def test_racing_orders_never_oversell_the_stock(amap: Amap) -> None:
    deal = amap.contract("free_choice")
    dist = amap.distribution(deal["id"], stock=3)
    people = [amap.member(f"M{i}") for i in range(6)]
    subs = [amap.subscribe(p, deal["id"]) for p in people]
    bodies = [
        {
            "lines": [{"product": amap.products["carottes"], "quantity": 1}],
            "payment": p.order("escrow_payment", to=s["escrow"], amount=250),
        }
        for p, s in zip(people, subs, strict=True)
    ]
    answers = at_once(
        [
            lambda p=p, s=s, b=b: p.put(
                f"/api/v1/amap/subscriptions/{s['id']}/orders/{dist['id']}", json=b
            )
            for p, s, b in zip(people, subs, bodies, strict=True)
        ]
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 200, 409, 409, 409], [a.text for a in answers]
    assert all(a.json()["error"] == "beyond_stock" for a in answers if a.status_code == 409)
    assert sum(amap.balance(s["escrow"]) for s in subs) == 750
    # The coordinator sets two more units: of the three left out, two get one, at once.
    more = {"stock": [{"product": amap.products["carottes"], "remaining": 2}]}
    path = f"/api/v1/amap/distributions/{dist['id']}/stock"
    assert amap.coordinator.put(path, json=more).status_code == 200
    late = [(p, s) for p, s, a in zip(people, subs, answers, strict=True) if a.status_code == 409]
    again = at_once(
        [lambda p=p, s=s: amap.order(p, s, dist["id"], {"carottes": 1}, pay=250) for p, s in late]
    )
    assert sorted(a.status_code for a in again) == [200, 200, 409]
    assert sum(amap.balance(s["escrow"]) for s in subs) == 1_250
    farm = amap.balance(amap.farm.account)
    assert amap.deliver(dist["id"]).status_code == 200
    assert amap.balance(amap.farm.account) == farm + 1_250


def test_orders_racing_the_cutoff_are_taken_before_and_refused_after(amap: Amap) -> None:
    deal = amap.contract("prepaid")
    dist = amap.distribution(deal["id"], cutoff_in_s=HOUR_S)
    people = [amap.member(f"P{i}") for i in range(4)]
    subs = [amap.subscribe(p, deal["id"]) for p in people]
    for p, s in zip(people, subs, strict=True):
        assert amap.pay(p, s, 1_000).status_code == 201
    early = at_once(
        [
            lambda p=p, s=s: amap.order(p, s, dist["id"], {"oeufs": 1})
            for p, s in zip(people[:2], subs[:2], strict=True)
        ]
    )
    amap.clock.advance(HOUR_S + 1)  # the cut-off has passed
    late = at_once(
        [
            lambda p=p, s=s: amap.order(p, s, dist["id"], {"oeufs": 1})
            for p, s in zip(people[2:], subs[2:], strict=True)
        ]
    )
    assert [a.status_code for a in early] == [200, 200]
    assert [a.json()["error"] for a in late] == ["after_cutoff", "after_cutoff"]
    assert [amap.mine(p, s)["credit"] for p, s in zip(people, subs, strict=True)] == [
        960,
        960,
        1_000,
        1_000,
    ]


def test_orders_sent_as_the_cutoff_passes_are_each_whole_or_nothing(amap: Amap) -> None:
    """Eight members order the last units while the clock crosses the cut-off in the middle
    of their requests: whatever each one got, the stock taken, the cards drawn and the lines
    written agree, and nothing is taken after the cut-off."""
    from plugins.amap import service

    deal = amap.contract("prepaid")
    dist = amap.distribution(deal["id"], cutoff_in_s=1, stock=5)
    people = [amap.member(f"R{i}") for i in range(8)]
    subs = [amap.subscribe(p, deal["id"]) for p in people]
    for p, s in zip(people, subs, strict=True):
        assert amap.pay(p, s, 1_000).status_code == 201
    orders: list[Callable[[], Any]] = [
        lambda p=p, s=s: amap.order(p, s, dist["id"], {"oeufs": 1})
        for p, s in zip(people, subs, strict=True)
    ]
    answers = at_once([*orders, lambda: amap.clock.advance(2)])[:-1]
    taken = [a for a in answers if a.status_code == 200]
    refused = {a.json()["error"] for a in answers if a.status_code != 200}
    assert refused <= {"after_cutoff", "beyond_stock"}, refused
    assert len(taken) <= 5
    left = service.distribution(amap.node, dist["id"])["stock"][amap.products["oeufs"]]
    assert left == 5 - len(taken)
    credits = [amap.mine(p, s)["credit"] for p, s in zip(people, subs, strict=True)]
    assert sorted(credits) == sorted([960] * len(taken) + [1_000] * (8 - len(taken)))
    late = amap.order(people[0], subs[0], dist["id"], {"oeufs": 2})
    assert late.json()["error"] == "after_cutoff", late.text
    assert service.distribution(amap.node, dist["id"])["stock"][amap.products["oeufs"]] == left


def test_marking_delivered_twice_at_once_and_again_pays_the_producer_once(amap: Amap) -> None:
    deal = amap.contract("subscription")
    dist = amap.distribution(deal["id"])
    people = [amap.member(f"S{i}") for i in range(3)]
    for p in people:
        sub = amap.subscribe(p, deal["id"])
        assert sub["paid"] == 500
    farm = amap.balance(amap.farm.account)
    answers = at_once([lambda: amap.deliver(dist["id"]) for _ in range(3)])
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert amap.deliver(dist["id"]).status_code == 200
    assert amap.balance(amap.farm.account) == farm + 1_500
    assert_audit(amap)


# -- pages and sheets --------------------------------------------------------------------------

HTML = {"Accept": "text/html"}


def test_the_pages_speak_french_and_the_sheets_list_who_takes_what(amap: Amap) -> None:
    deal = amap.contract("free_choice")
    dist = amap.distribution(deal["id"])
    camille = amap.member("Camille")
    sub = amap.subscribe(camille, deal["id"])
    assert amap.order(camille, sub, dist["id"], {"oeufs": 6}, pay=240).status_code == 200
    home = camille.client.get("/amap", headers=HTML)
    assert home.status_code == 200 and '<a href="/amap">AMAP</a>' in home.text
    assert "Mes paniers" in home.text and "Contrat free_choice" in home.text
    page = camille.client.get(f"/amap/contracts/{deal['id']}", headers=HTML)
    assert page.status_code == 200 and "Prochaines distributions" in page.text
    assert 'src="/static/amap/amap.js"' in page.text and "<script>" not in page.text
    farm = amap.farm.client.get("/amap/producer", headers=HTML)
    assert farm.status_code == 200 and "Relevé" in farm.text and "carottes" in farm.text
    coord = amap.coordinator.client.get("/amap/coordination", headers=HTML)
    assert coord.status_code == 200 and "Contrat free_choice" in coord.text
    csv = amap.coordinator.get(f"/amap/distributions/{dist['id']}/sheet?format=csv")
    assert csv.status_code == 200 and "Camille" in csv.text and "6 kg" in csv.text
    pdf = amap.coordinator.get(f"/amap/distributions/{dist['id']}/sheet?format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    refused = camille.client.get(f"/amap/distributions/{dist['id']}/sheet", headers=HTML)
    assert refused.status_code == 403
    mine = camille.get("/amap?format=csv")
    assert mine.status_code == 200 and "oeufs" in mine.text
    assert amap.farm.get("/amap/producer?format=pdf").content.startswith(b"%PDF")
    assert amap.site.get("/static/amap/amap.css").status_code == 200


@pytest.mark.one_database
def test_the_printed_sheet_shows_its_day_and_place_and_keeps_each_cell_in_its_column(
    tmp_path: Any,
) -> None:
    import shutil
    import subprocess

    from plugins.amap import sheets

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (Debian's poppler-utils) reads the sheet back: not installed")
    long_name = "Marie-Geneviève de La Tour-d’Auvergne-Montmorency"
    body = sheets.as_pdf(
        "Œufs et fromages",
        "5 décembre 2026 · Halle du village",
        ["Adhérent", "Produit", "Quantité", "Prix"],
        [[long_name, "Œufs", "2 douzaine", "9,00 SOU"]],
        tick=True,
    )
    path = tmp_path / "sheet.pdf"
    path.write_bytes(body)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "OEufs et fromages" in text
    assert "5 décembre 2026 · Halle du village" in text  # on the page, under the title
    row = next(line for line in text.splitlines() if "Marie" in line)
    assert long_name not in row and "..." in row and "OEufs" in row  # cut, not overlapping


@pytest.mark.one_database
def test_every_message_of_the_plugin_has_its_french() -> None:
    from pathlib import Path

    from babel.messages.pofile import read_po

    from plugins.amap.service import ESCROW_NAME
    from tests.test_pages import LOCALE, python_msgids, template_msgids

    here = Path(__file__).parent.parent / "plugins" / "amap"
    msgids = python_msgids(here / "errors.py")
    for path in (here / "templates" / "amap").glob("*.html"):
        msgids |= template_msgids(path)
    msgids |= {"subscription", "free choice", "prepaid card", "planned", "delivered"}
    msgids |= {ESCROW_NAME}
    assert len(msgids) > 60
    catalogue: dict[str, str] = {}
    for part in [*sorted(LOCALE.glob("*.po")), here / "locale/fr/LC_MESSAGES/amap.po"]:
        with part.open("rb") as po:
            catalogue |= {str(m.id): str(m.string) for m in read_po(po) if m.id}
    missing = sorted(m for m in msgids if not catalogue.get(m))
    assert not missing, missing
    for msgid in msgids:
        french = catalogue[msgid]
        assert " :" not in french and " ?" not in french, french  # a narrow no-break space


# -- the demo village ----------------------------------------------------------------------------


def test_the_demo_village_has_an_amap_whose_money_the_audit_passes(
    tmp_path: Any, empty_db_url: str
) -> None:
    """`sou init --demo` calls `plugins.amap.demo.seed(node, village.sign)`."""
    from typer.testing import CliRunner

    from audits.audit import audit
    from node.cli import app as cli
    from plugins.amap import service
    from runtime.node import open_node
    from runtime.settings import Settings

    env = {"SOU_DATA_DIR": str(tmp_path / "data"), "SOU_DATABASE_URL": empty_db_url}
    made = CliRunner().invoke(cli, ["init", "--demo"], env=env)
    assert made.exit_code == 0, made.output
    assert "AMAP" in made.output
    node = open_node(Settings(data_dir=tmp_path / "data", database_url=empty_db_url))
    try:
        titles = [c["title"] for c in service.all_contracts(node)]
        assert titles == ["Légumes de saison", "Œufs et fromages"]
        farm = service.statement(node, "ferme-des-trois-chenes")
        assert farm["delivered"] == 3 * 600 and farm["paid"] == 3 * 600
        assert farm["to_deliver"] > 0
        node.new_sealer().seal_all()
        report = audit(node.engine, node_public_key=node.node_key.public_key, workers=1)
        assert report.ok, report.findings
    finally:
        node.close()
