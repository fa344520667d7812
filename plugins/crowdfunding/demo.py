"""The crowdfunding part of the demo village: one open campaign with a few pledges, and
one that reached its goal and was paid out. `seed(node, village.sign)` after node/demo.py's
`seed` (its `Village.sign` posts an order signed by a demo member)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plugins.crowdfunding import repository as repo
from plugins.crowdfunding import service
from runtime.node import Node

Sign = Callable[..., Any]


def _campaign(
    node: Node, owner: str, title: str, description: str, goal: int, days: int, opens_ms: int
) -> int:
    beneficiary = service.settings(node).commune or owner
    row = {
        "owner": owner,
        "beneficiary": beneficiary,
        "title": title,
        "description": description,
        "goal": goal,
        "days": days,
        "state": "proposed",
        "created_ms": opens_ms,
    }
    with node.engine.begin() as conn:
        campaign_id = repo.insert_campaign(conn, row)
    service.publish(node, campaign_id, opens_ms)
    return campaign_id


def _pledge(node: Node, sign: Sign, campaign_id: int, who: str, cents: int) -> None:
    to = service.escrow(campaign_id)
    posted = sign(
        f"member:{who}",
        "escrow_payment",
        payer=f"member:{who}",
        to=to,
        amount=cents,
        currency=node.ledger.chart.local,
    )
    service.record_payment(
        node, posted.transfer_id, to, campaign_id, who, posted.postings[to], posted.created_ms
    )


def seed(node: Node, sign: Sign) -> None:
    """Two campaigns of the demo village: « Réparer le lavoir », open, and « Des bancs pour
    la place », funded and paid out to its beneficiary."""
    now = service.now_ms()
    lavoir = _campaign(
        node,
        "camille",
        "Réparer le lavoir",
        "Le toit du lavoir fuit\u202f: tuiles, charpente et un après-midi de chantier "
        "participatif.",
        50_000,
        30,
        now - 3 * service.DAY_MS,
    )
    for who, cents in (("louis", 2_000), ("ines", 1_500), ("hugo", 1_000)):
        _pledge(node, sign, lavoir, who, cents)
    benches = _campaign(
        node,
        "hugo",
        "Des bancs pour la place",
        "Trois bancs en chêne du pays autour de la fontaine.",
        3_000,
        14,
        now - 20 * service.DAY_MS,
    )
    for who, cents in (("lea", 2_000), ("jules", 1_000)):
        _pledge(node, sign, benches, who, cents)
    service.close_due(node, now)
