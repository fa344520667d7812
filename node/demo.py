"""The demo village: residents, shops, an exchange office and a few weeks of life.

Everything goes through the ledger's public functions with real signed orders, so the
audit and the pages have real data. Members' device keys are kept in `keys/demo/` so that
later tools can act as them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ledger.canonical import canonical
from ledger.chart import member_account, office_cash
from ledger.operations import NODE
from ledger.posting import Posted
from ledger.service import key_event
from ledger.signing import SigningKey, new_order
from runtime.keystore import key_path, save_key
from runtime.node import Node, add_operator

RESIDENTS = ("camille", "louis", "ines", "hugo", "lea", "jules")
MERCHANTS = (
    "boulangerie-du-lavoir",
    "ferme-des-trois-chenes",
    "librairie-la-plume",
    "cafe-de-la-place",
)
OFFICE = "mairie"
DEMO_DOMAIN = "val-de-sou.test"
DEMO_PASSWORD = "demo-val-de-sou"
NAMES = {
    "camille": "Camille Martin",
    "louis": "Louis Bernard",
    "ines": "Inès Dubois",
    "hugo": "Hugo Petit",
    "lea": "Léa Moreau",
    "jules": "Jules Laurent",
    "boulangerie-du-lavoir": "Boulangerie du Lavoir",
    "ferme-des-trois-chenes": "Ferme des Trois Chênes",
    "librairie-la-plume": "Librairie La Plume",
    "cafe-de-la-place": "Café de la Place",
    "admin": "Anne Administratrice",
    "tresorier": "Thomas Trésorier",
    OFFICE: "Accueil de la mairie",
}
# (category, address, place: None for the village itself)
SHOPS = {
    "boulangerie-du-lavoir": ("bakery", "2 rue du Lavoir", None),
    "ferme-des-trois-chenes": ("farm", "Chemin des Trois Chênes", "Hameau des Chênes"),
    "librairie-la-plume": ("bookshop", "5 Grand-Rue", None),
    "cafe-de-la-place": ("café", "1 place de l'Église", None),
}
# The shops that agreed to be named among the most active in the treasurer's reports; the
# others never answered, and are not.
LISTED = ("boulangerie-du-lavoir", "ferme-des-trois-chenes")

# The village's life is told over the weeks before `sou init --demo` (the README's "few
# weeks"): each transfer is posted at its (day, hour), days counted from the first morning.
DEMO_DAYS = 35
# (day, hour, payer, payee, cents, memo), in the order they happen
PAYMENTS = (
    (7, 8, "camille", "boulangerie-du-lavoir", 420, "Pain de campagne et croissants"),
    (8, 17, "louis", "ferme-des-trois-chenes", 1850, "Panier de légumes"),
    (10, 11, "ines", "librairie-la-plume", 2290, "Roman et carnet"),
    (11, 9, "hugo", "cafe-de-la-place", 380, "Deux cafés"),
    (13, 16, "lea", "boulangerie-du-lavoir", 655, "Tarte aux pommes"),
    (14, 12, "jules", "ferme-des-trois-chenes", 1200, "Œufs et fromage de chèvre"),
    (16, 8, "camille", "ferme-des-trois-chenes", 2475, "Panier de la semaine"),
    (18, 12, "louis", "cafe-de-la-place", 950, "Déjeuner"),
    (19, 18, "ines", "boulangerie-du-lavoir", 310, "Baguette tradition"),
    (21, 9, "camille", "louis", 1500, "Part du covoiturage"),
    (22, 7, "cafe-de-la-place", "boulangerie-du-lavoir", 3600, "Pain pour la semaine"),
    (24, 7, "cafe-de-la-place", "ferme-des-trois-chenes", 4200, "Lait et légumes"),
    (26, 15, "hugo", "librairie-la-plume", 1590, "Bande dessinée"),
    (28, 10, "lea", "ferme-des-trois-chenes", 980, "Pommes de terre"),
)


@dataclass
class Calendar:
    """The ledger's clock while the demo is told: the first morning is DEMO_DAYS days before
    today (UTC midnight), so that every transfer lies in the past, in the order posted. It
    starts at 7 that morning, when the association sets its node up (the node's, treasurer's
    and office's keys), so that every key is registered before anything it signs."""

    start: float = field(default_factory=lambda: (time.time() // 86_400 - DEMO_DAYS) * 86_400)
    now: float = 0.0

    def __post_init__(self) -> None:
        self.at(0, 7)

    def at(self, day: int, hour: int) -> None:
        self.now = self.start + day * 86_400 + hour * 3_600

    def __call__(self) -> float:
        return self.now


@dataclass
class Village:
    node: Node
    keys: dict[str, SigningKey]
    posted: int = 0

    def sign(self, who: str, kind: str, **fields: Any) -> Posted:
        """Post an order signed by `who` (`payer` stands for the order's "from" field),
        signed at the ledger's time (the demo's calendar while it is told)."""
        if "payer" in fields:
            fields["from"] = fields.pop("payer")
        key = self.keys[who]
        ledger = self.node.ledger
        order = new_order(kind, key, ledger.origin, now=ledger.clock(), **fields)
        posted = ledger.transfer(key.sign(order))
        self.posted += 1
        return posted


def seed(
    node: Node, say: Callable[[str], None] = print, calendar: Calendar | None = None
) -> Village:
    """The demo village on `node`'s ledger, its transfers posted over the DEMO_DAYS days
    before today through the ledger itself (signed, chained), with its clock set to the
    demo's `calendar` meanwhile (the one the node was initialised with, if it was) and the
    real clock afterwards. The office's key is registered on the first morning."""
    ledger = node.ledger
    calendar = calendar or Calendar()
    clock = time.time if ledger.clock is calendar else ledger.clock
    ledger.clock = calendar
    try:
        keys: dict[str, SigningKey] = {NODE: node.node_key}
        keys["role:treasurer"] = _role_key(node, "role:treasurer")
        keys[f"role:office:{OFFICE}"] = add_operator(node, f"role:office:{OFFICE}")
        village = _told(node, keys, calendar, say)
    finally:
        ledger.clock = clock
    _civic(village, say)
    return village


def _civic(village: Village, say: Callable[[str], None]) -> None:
    """The civic plugins' part of the village, told today by each one that is switched on:
    an AMAP's contracts and baskets, the village's crowdfunding campaigns."""
    from plugins.amap import demo as amap
    from plugins.crowdfunding import demo as crowdfunding

    for name, told, what in (
        ("amap", amap, "an AMAP: contracts with the farm, baskets paid and delivered"),
        ("crowdfunding", crowdfunding, "crowdfunding: a campaign open, one funded"),
    ):
        plugin = village.node.plugins.found.get(name)
        if plugin is not None and plugin.active:
            told.seed(village.node, village.sign)
            say(f"  {what}")


def _told(
    node: Node, keys: dict[str, SigningKey], calendar: Calendar, say: Callable[[str], None]
) -> Village:
    ledger, settings = node.ledger, node.settings
    calendar.at(0, 8)
    ledger.open_account(office_cash(OFFICE))
    for member in RESIDENTS + MERCHANTS:
        code = member_account(member)
        ledger.open_account(code)
        key = SigningKey.generate()
        save_key(key_path(settings.keys_dir / "demo", code), key, code)
        event = key_event(
            "register",
            origin=ledger.origin,
            owner=code,
            public_key=key.public_key,
            signer=node.node_key,
            now=int(calendar() * 1000),
        )
        ledger.register_key(event, node.node_key.sign_bytes(canonical(event)))
        keys[code] = key
    village = Village(node, keys)
    say(f"  {len(RESIDENTS)} residents, {len(MERCHANTS)} shops, exchange office '{OFFICE}'")
    _people(node, int(calendar() * 1000))
    _life(village, calendar)
    say(
        f"  {village.posted} signed transfers: top-ups, payments, a refund, a reconversion paid out"
    )
    say(f"  logins: <name>@{DEMO_DOMAIN} (e.g. camille@{DEMO_DOMAIN}, admin@{DEMO_DOMAIN},")
    say(f"  tresorier@{DEMO_DOMAIN}, mairie@{DEMO_DOMAIN}), password '{DEMO_PASSWORD}'")
    return village


def _people(node: Node, joined_ms: int) -> None:
    """The demo's people, joined on the demo's first morning: members who log in (one
    password for all: it is a demo); the shops, approved by the admin."""
    from audits.reports.repository import record_consent
    from members import shops
    from members.access import hash_password
    from members.models import members

    password = hash_password(DEMO_PASSWORD)
    until = date(date.today().year + 1, 12, 31)
    people: list[tuple[str, str, str | None]] = [(name, "resident", None) for name in RESIDENTS]
    people += [(name, "merchant", None) for name in MERCHANTS]
    people += [("admin", "admin", None), ("tresorier", "treasurer", None)]
    people += [(OFFICE, "office", OFFICE)]
    with node.engine.begin() as conn:
        for name, role, office in people:
            conn.execute(
                members.insert().values(
                    id=name,
                    role=role,
                    display_name=NAMES[name],
                    email=f"{name}@{DEMO_DOMAIN}",
                    password_hash=password,
                    office=office,
                    membership_until=until if role in ("resident", "merchant") else None,
                    created_ms=joined_ms,
                )
            )
        for name, (category, address, place) in SHOPS.items():
            shops.add_shop(
                conn,
                name,
                trade_name=NAMES[name],
                category=category,
                address=address,
                place=place or node.settings.village,
            )
            shops.decide(conn, name, "approved", "admin", joined_ms)
        for name in LISTED:
            record_consent(conn, name, True, joined_ms)


def _role_key(node: Node, role: str) -> SigningKey:
    from runtime.node import role_key

    return role_key(node.settings, role)


def _life(v: Village, calendar: Calendar) -> None:
    local = v.node.ledger.chart.local
    for day, hour, member, cents in (
        (0, 9, "camille", 10_000),
        (0, 11, "louis", 5_000),
        (1, 10, "ines", 8_000),
        (2, 18, "hugo", 4_000),
    ):
        calendar.at(day, hour)
        credit = v.sign(
            NODE,
            "topup",
            client_id=f"card:pi_demo_{member}",
            to=member_account(member),
            amount=cents,
            currency=local,
            source="card",
            rule="stripe.payment_intent.succeeded",
            ext=f"pi_demo_{member}",
        )
        _card_payment(v.node, f"pi_demo_{member}", member, credit)
    for day, hour, member, cents in (
        (3, 10, "lea", 6_000),
        (3, 11, "jules", 3_000),
        (4, 9, "cafe-de-la-place", 15_000),
    ):
        calendar.at(day, hour)
        v.sign(
            f"role:office:{OFFICE}",
            "topup",
            to=member_account(member),
            amount=cents,
            currency=local,
            source=f"office:{OFFICE}",
        )
    calendar.at(5, 14)
    v.sign("role:treasurer", "settlement", amount=27_000, ext="po_demo_1")
    calendar.at(6, 15)
    v.sign("role:treasurer", "cash_deposit", office=OFFICE, amount=24_000, to="reserve:digital")
    payments = []
    for day, hour, payer, payee, cents, memo in PAYMENTS:
        calendar.at(day, hour)
        payments.append(
            v.sign(
                member_account(payer),
                "payment",
                payer=member_account(payer),
                to=member_account(payee),
                amount=cents,
                currency=local,
                memo=memo,
            )
        )
    shop, customer = member_account("boulangerie-du-lavoir"), member_account("camille")
    calendar.at(29, 10)
    v.sign(
        shop,
        "refund",
        payer=shop,
        to=customer,
        amount=120,
        currency=local,
        ref=payments[0].transfer_id,
        memo="Croissant manquant",
    )
    farm = member_account("ferme-des-trois-chenes")
    calendar.at(31, 11)
    redemption = v.sign(
        farm,
        "redemption",
        payer=farm,
        amount=5_000,
        fee=150,
        currency=local,
        memo="Reconversion mensuelle",
    )
    calendar.at(33, 15)
    payout = v.sign(
        "role:treasurer",
        "payout",
        ref=redemption.transfer_id,
        amount=4_850,
        bank_ref="VIR-2026-11-0042",
    )
    _reconversion_paid(v.node, "ferme-des-trois-chenes", redemption, payout)


def _card_payment(node: Node, intent: str, member: str, credit: Posted) -> None:
    from wallet_api.models import card_payments

    with node.engine.begin() as conn:
        conn.execute(
            card_payments.insert().values(
                payment_intent=intent,
                member_id=member,
                amount=credit.postings[member_account(member)],
                status="credited",
                topup_transfer_id=credit.transfer_id,
                created_ms=credit.created_ms,
                updated_ms=credit.created_ms,
            )
        )


def _reconversion_paid(node: Node, member: str, redemption: Posted, payout: Posted) -> None:
    from merchants.models import reconversions

    with node.engine.begin() as conn:
        conn.execute(
            reconversions.insert().values(
                member_id=member,
                amount=-redemption.postings[member_account(member)],
                fee=redemption.postings["association:fees"],
                cause_fee=0,
                redemption_id=redemption.transfer_id,
                status="paid",
                bank_ref="VIR-2026-11-0042",
                decided_by="tresorier",
                decision_id=payout.transfer_id,
                created_ms=redemption.created_ms,
                decided_ms=payout.created_ms,
            )
        )
