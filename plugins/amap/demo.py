"""The AMAP of the demo village (`sou init --demo`): the Ferme des Trois Chênes, a vegetable
subscription and a free-choice contract of eggs and cheese, a few distributions, baskets
paid from the residents' wallets (signed with their demo keys; leaving enough for the
crowdfunding's pledges) and one distribution delivered, so that the farm's statement and
the members' baskets have something to show.

Called by node/demo.py as `seed(node, village.sign)` once the village is told."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from ledger.posting import Posted
from members import service as members_service
from plugins.amap import service
from runtime.node import Node

FARM = "ferme-des-trois-chenes"
DAY_MS = 86_400_000
Sign = Callable[..., Posted]


def seed(node: Node, sign: Sign) -> None:
    """`sign(who, kind, **fields)` posts an order signed by `who` ("member:camille"...),
    `payer` standing for the order's "from"."""
    admin = members_service.get_member(node, "admin")
    farm = members_service.get_member(node, FARM)
    service.name_producer(node, FARM)
    hall = service.add_place(node, "Halle du village", "Place de l'Église")
    made = {
        name: service.add_product(node, farm, name, unit, price)["id"]
        for name, unit, price in (
            ("Panier de légumes", "panier", 600),
            ("Œufs", "douzaine", 450),
            ("Fromage de chèvre", "pièce", 380),
        )
    }
    now = service.now_ms()
    today = date.today()

    def weekly(contract: int, weeks: int, stock: dict[int, int]) -> list[int]:
        return [
            service.plan_distribution(
                node,
                admin,
                contract,
                today + timedelta(days=7 * w + 2),
                hall["id"],
                now + (7 * w + 1) * DAY_MS,
                stock,
            )["id"]
            for w in range(weeks)
        ]

    base = {"producer": FARM, "season": "Été", "leave_rule": "notice", "notice": 1}
    vegetables = service.create_contract(
        node,
        {
            **base,
            "title": "Légumes de saison",
            "nature": "subscription",
            "jokers": 2,
            "joker_rule": "carry",
            "instalments": 2,
        },
        {made["Panier de légumes"]: 1},
        ["camille"],
    )
    veg_days = weekly(vegetables["id"], 3, {})
    for who, instalments in (("camille", 2), ("louis", 1), ("ines", 2)):
        _pay_season(node, sign, who, vegetables["id"], instalments)
    service.deliver(node, admin, veg_days[0])

    dairy = service.create_contract(
        node,
        {
            **base,
            "title": "Œufs et fromages",
            "nature": "free_choice",
            "jokers": 0,
            "joker_rule": "refund",
            "instalments": 1,
            "leave_rule": "all",
            "notice": 0,
        },
        {},
        ["louis"],
    )
    dairy_days = weekly(dairy["id"], 2, {made["Œufs"]: 20, made["Fromage de chèvre"]: 12})
    for who, eggs, cheese in (("camille", 1, 1), ("lea", 1, 0), ("ines", 0, 1)):
        member = members_service.get_member(node, who)
        sub, _ = service.subscribe(node, member, dairy["id"])
        quantities = {made["Œufs"]: eggs, made["Fromage de chèvre"]: cheese}
        service.order(
            node,
            member,
            sub["id"],
            dairy_days[0],
            {k: v for k, v in quantities.items() if v},
            None,
            payer=_payer(node, sign, who, sub["escrow"]),
        )


def _payer(node: Node, sign: Sign, who: str, escrow: str) -> Callable[[int], Posted]:
    def pay(amount: int) -> Posted:
        return sign(
            f"member:{who}",
            "escrow_payment",
            payer=f"member:{who}",
            to=escrow,
            amount=amount,
            currency=node.ledger.chart.local,
        )

    return pay


def _pay_season(node: Node, sign: Sign, who: str, contract: int, instalments: int) -> None:
    member = members_service.get_member(node, who)
    sub, _ = service.subscribe(node, member, contract)
    for _ in range(instalments):
        due = service.subscription(node, member, sub["id"])["next_instalment"]
        posted = _payer(node, sign, who, sub["escrow"])(due)
        service.record_payment(node, sub["id"], posted.transfer_id, due)
