"""A stateful test of the AMAP's escrows, on SQLite and PostgreSQL: whatever members and
coordinators do (subscribe with a first payment or without, pay instalments, order, declare
absences, leave, let cut-offs pass; deliver or cancel distributions), for
every subscription what the member paid is what was released to the producer, plus what was
refunded, plus what its escrow holds; the producer received exactly the releases; and
`sou audit` finds nothing, after every step.

The money is read from the ledger (balances of the wallets, the escrows and the farm), the
payments from what the test itself sent and saw accepted.

Deeper runs: SOU_AMAP_EXAMPLES=200 SOU_AMAP_STEPS=40 pytest tests/test_amap_stateful.py
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from audits.audit import audit
from tests.conftest import Clock
from tests.people import Person
from tests.test_amap import Amap, make_amap

WALLET = 20_000
DAY_S = 24 * 3600
SETTINGS = settings(
    max_examples=int(os.environ.get("SOU_AMAP_EXAMPLES", "15")),
    stateful_step_count=int(os.environ.get("SOU_AMAP_STEPS", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_serial = iter(range(1, 10**9))


class EscrowMachine(RuleBasedStateMachine):
    amap: ClassVar[Amap]

    @initialize(
        nature=st.sampled_from(["subscription", "free_choice", "prepaid"]),
        joker_rule=st.sampled_from(["carry", "refund"]),
        leave_rule=st.sampled_from(["all", "notice"]),
        instalments=st.integers(1, 3),
        firsts=st.lists(st.sampled_from(["season", "instalment", None]), min_size=2, max_size=2),
    )
    def contract(
        self,
        nature: str,
        joker_rule: str,
        leave_rule: str,
        instalments: int,
        firsts: list[str | None],
    ) -> None:
        a = self.amap
        self.nature = nature
        self.deal = a.contract(
            nature,
            jokers=1,
            joker_rule=joker_rule,
            leave_rule=leave_rule,
            notice=1,
            instalments=instalments,
        )
        self.dists = [
            a.distribution(self.deal["id"], cutoff_in_s=(d + 1) * DAY_S, stock=4)["id"]
            for d in range(3)
        ]
        self.farm_start = a.balance(a.farm.account)
        self.people: list[Person] = []
        self.subs: list[dict[str, Any]] = []
        self.paid: list[int] = []
        for first in firsts:  # a subscription starts with its first payment (or waits)
            person = a.member(f"Membre {next(_serial)}", WALLET)
            self.people.append(person)
            self.subs.append(a.subscribe(person, self.deal["id"], first))
            self.paid.append(self.subs[-1]["paid"])

    def _paying(self, i: int, answer: Any, amount: int) -> None:
        if answer.status_code in (200, 201) and amount:
            self.paid[i] += amount

    @rule(i=st.integers(0, 1), load=st.integers(1, 800))
    def pay(self, i: int, load: int) -> None:
        a, sub = self.amap, self.subs[i]
        mine = a.mine(self.people[i], sub)
        amount = load if self.nature == "prepaid" else mine["next_instalment"]
        if amount <= 0:
            return
        self._paying(i, a.pay(self.people[i], sub, amount), amount)

    @rule(
        i=st.integers(0, 1), d=st.integers(0, 2), carrots=st.integers(0, 3), eggs=st.integers(0, 3)
    )
    def order(self, i: int, d: int, carrots: int, eggs: int) -> None:
        if self.nature == "subscription":
            return
        a, sub = self.amap, self.subs[i]
        had = [
            b for b in a.mine(self.people[i], sub)["baskets"] if b["distribution"] == self.dists[d]
        ]
        before = sum(b["quantity"] * b["unit_price"] for b in had)
        after = carrots * 250 + eggs * 40  # prices never change in this machine
        pay = after - before if self.nature == "free_choice" and after > before else 0
        answer = a.order(
            self.people[i], sub, self.dists[d], {"carottes": carrots, "oeufs": eggs}, pay
        )
        assert answer.status_code in (200, 404, 409, 422), answer.text
        self._paying(i, answer, pay)

    @rule()
    def a_day_passes(self) -> None:
        """Cut-offs pass: an instalment not paid by then leaves its basket unpaid."""
        self.amap.clock.advance(DAY_S)

    @rule(i=st.integers(0, 1), d=st.integers(0, 2))
    def absent(self, i: int, d: int) -> None:
        answer = self.people[i].post(
            f"/api/v1/amap/subscriptions/{self.subs[i]['id']}/absences",
            json={"distribution": self.dists[d]},
        )
        assert answer.status_code in (200, 409), answer.text

    @rule(d=st.integers(0, 2))
    def deliver(self, d: int) -> None:
        answer = self.amap.deliver(self.dists[d])
        assert answer.status_code in (200, 409), answer.text

    @rule(d=st.integers(0, 2))
    def cancel(self, d: int) -> None:
        answer = self.amap.coordinator.post(f"/api/v1/amap/distributions/{self.dists[d]}/cancelled")
        assert answer.status_code in (200, 409), answer.text

    @rule(i=st.integers(0, 1))
    def leave(self, i: int) -> None:
        answer = self.people[i].post(f"/api/v1/amap/subscriptions/{self.subs[i]['id']}/leave")
        assert answer.status_code in (200, 409), answer.text

    @invariant()
    def paid_is_released_plus_refunded_plus_held(self) -> None:
        if not hasattr(self, "subs"):
            return
        a = self.amap
        released_total = 0
        for person, sub, paid in zip(self.people, self.subs, self.paid, strict=True):
            held = a.balance(sub["escrow"])
            refunded = a.balance(person.account) - (WALLET - paid)
            released = paid - refunded - held
            assert held >= 0 and refunded >= 0 and released >= 0, (paid, refunded, held)
            shown = a.mine(person, sub)
            assert (shown["paid"], shown["held"]) == (paid, held)
            assert (shown["released"], shown["refunded"]) == (released, refunded)
            released_total += released
        assert a.balance(a.farm.account) - self.farm_start == released_total

    @invariant()
    def the_audit_finds_nothing(self) -> None:
        node = self.amap.node
        node.new_sealer().seal_all()
        report = audit(node.engine, node_public_key=node.node_key.public_key, workers=1)
        assert report.ok, report.findings


def test_amap_escrows_conserve_the_units(site: TestClient, clock: Clock) -> None:
    machine = type("AmapEscrows", (EscrowMachine,), {"amap": make_amap(site, clock)})
    run_state_machine_as_test(machine, settings=SETTINGS)
