"""The crowdfunding escrows under random pledges, changes and deadlines: for every campaign
and the matching fund, what was paid in equals what was released plus what was refunded plus
what the escrow holds, and the ledger's audit passes after every step.

Deeper runs:
SOU_CROWDFUNDING_EXAMPLES=100 SOU_CROWDFUNDING_STEPS=40 pytest tests/test_crowdfunding_stateful.py
"""

from __future__ import annotations

import os
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from audits.audit import audit
from plugins.crowdfunding import service
from plugins.crowdfunding.models import movements, payments
from tests.people import Person, fund, join
from tests.test_crowdfunding import opened, pledge, with_commune

EXAMPLES = int(os.environ.get("SOU_CROWDFUNDING_EXAMPLES", "15"))
STEPS = int(os.environ.get("SOU_CROWDFUNDING_STEPS", "15"))
MEMBERS = 3


def paid_in_and_out(node: Any, escrow: str) -> tuple[int, int]:
    with node.ledger.reading() as conn:
        paid = conn.scalar(
            select(func.coalesce(func.sum(payments.c.amount), 0)).where(payments.c.escrow == escrow)
        )
        out = conn.scalar(
            select(func.coalesce(func.sum(movements.c.amount), 0)).where(
                movements.c.escrow == escrow
            )
        )
    return int(paid or 0), int(out or 0)


class Campaigns(RuleBasedStateMachine):
    site: TestClient

    def __init__(self) -> None:
        super().__init__()
        site = self.site
        self.node = site.app.state.node  # type: ignore[attr-defined]
        commune = join(site, "Mairie")
        with_commune(site, commune)
        fund(site, commune, 5_000)
        paid = commune.post(
            "/api/v1/campaigns/matching/payments",
            json=commune.order("escrow_payment", to=service.MATCHING, amount=2_000),
        )
        assert paid.status_code == 201, paid.text
        self.members: list[Person] = [join(site, f"M{n}") for n in range(MEMBERS)]
        for member in self.members:
            fund(site, member, 5_000)
        self.campaigns = [
            opened(
                site,
                commune,
                goal=3_000,
                days=5,
                for_commune=True,
                match_per_unit_bp=5_000,
                match_cap=1_000,
            ),
            opened(site, self.members[0], goal=20_000, days=10),
        ]
        self.now_ms = self.campaigns[0]["opens_ms"]

    @rule(who=st.integers(0, MEMBERS - 1), which=st.integers(0, 1), cents=st.integers(1, 3_000))
    def pledge(self, who: int, which: int, cents: int) -> None:
        answer = pledge(self.members[who], self.campaigns[which], cents)
        assert answer.status_code in (201, 409), answer.text
        if answer.status_code == 409:
            assert answer.json()["error"] in ("insufficient_funds", "campaign_not_open")

    @rule(who=st.integers(0, MEMBERS - 1), which=st.integers(0, 1), to=st.integers(0, 3_000))
    def lower(self, who: int, which: int, to: int) -> None:
        campaign = self.campaigns[which]
        answer = self.members[who].post(
            f"/api/v1/campaigns/{campaign['id']}/pledge/lower", json={"amount": to}
        )
        assert answer.status_code in (200, 409, 422), answer.text

    @rule(which=st.integers(0, 1))
    def deadline(self, which: int) -> None:
        self.now_ms = max(self.now_ms, self.campaigns[which]["deadline_ms"] + 1)
        service.close_due(self.node, self.now_ms)

    @rule()
    def job_again(self) -> None:
        service.close_due(self.node, self.now_ms)

    @invariant()
    def escrows_balance(self) -> None:
        for escrow in [c["escrow"] for c in self.campaigns] + [service.MATCHING]:
            paid, out = paid_in_and_out(self.node, escrow)
            assert paid == out + self.node.ledger.balance(escrow), escrow
        for campaign in self.campaigns:
            state = service.campaign(self.node, campaign["id"])["state"]
            if state != "open" and self.now_ms > campaign["deadline_ms"]:
                assert self.node.ledger.balance(campaign["escrow"]) == 0  # nothing left stuck

    @invariant()
    def audit_passes(self) -> None:
        self.node.new_sealer().seal_all()  # every transfer in the signed log, as `sou seal`
        report = audit(self.node.engine, node_public_key=self.node.node_key.public_key, workers=1)
        assert report.ok, "\n".join(f"{f.check}: {f.message}" for f in report.findings)


def test_pledged_is_released_refunded_or_held(site: TestClient) -> None:
    Campaigns.site = site
    run_state_machine_as_test(
        Campaigns,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
