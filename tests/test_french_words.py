"""The French the pages speak, as a French reader would notice it: a top-up is a
"rechargement" (never "alimentation", which reads as food), a receipt is titled by what was
done ("Reçu du paiement"), names rather than account codes, and French typography: a
narrow no-break space before ":", ";", "!" and "?", so that no line starts with one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from tests.conftest import Clock
from tests.people import Person, fund, join, movements_of, words_of
from tests.test_amap import make_amap
from tests.test_crowdfunding import opened, pledge
from tests.test_pages import HTML, french, node_of
from web.i18n import _parts, add_catalogue, elided, first_day, translations

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "web" / "locale" / "fr" / "LC_MESSAGES"
# A colon, semicolon, exclamation or question mark that ends a clause (followed by a space
# or the end), with no (narrow) no-break space before it: "Solde:" or "Solde :".
UNSPACED = re.compile(r"(?:^|[^\u202f\u00a0])[:;!?](?=\s|$)")


def french_messages() -> list[tuple[str, str, str]]:
    found = []
    for part in sorted(LOCALE.glob("*.po")):
        with part.open("rb") as po:
            for message in read_po(po):
                if not message.id:
                    continue
                ids, said = message.id, message.string
                if isinstance(ids, tuple):  # a count's forms, each said apart
                    found += [(part.name, str(ids[0]), str(form)) for form in said if form]
                else:
                    found.append((part.name, str(ids), str(said)))
    return found


def test_french_puts_a_no_break_space_before_high_punctuation() -> None:
    wrong = [(f, s) for f, _, s in french_messages() if UNSPACED.search(s)]
    assert not wrong, wrong


def test_labels_carry_their_colon_in_the_message() -> None:
    """A colon after a translated word in a template ({{ _("Balance") }}:) cannot get
    French spacing: it belongs in the message ("Balance:" → "Solde :")."""
    outside = re.compile(r"""_\(["'][^"']*["']\)\s*}}\s*[:;!?]""")
    wrong = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "web" / "templates").rglob("*.html")
        if outside.search(path.read_text(encoding="utf-8"))
    ]
    assert not wrong, wrong
    assert french("Balance:") == "Solde\u202f:"


def test_a_top_up_is_a_rechargement() -> None:
    assert french("Top-up") == "Rechargement"
    food = [(f, s) for f, _, s in french_messages() if re.search(r"[Aa]liment", s)]
    assert not food, food


@pytest.mark.parametrize(
    ("lang", "payment", "top_up"),
    [
        ("fr", "Reçu du paiement {id}", "Reçu du rechargement {id}"),
        ("en", "Receipt of the payment {id}", "Receipt of the top-up {id}"),
    ],
)
def test_a_receipt_is_titled_by_what_was_done_and_names_people(
    site: TestClient, lang: str, payment: str, top_up: str
) -> None:
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, camille, 1_000)
    paid = camille.pay(louis, 250).json()["transfer_id"]
    node_of(site).new_sealer().seal_all()
    history = camille.get("/api/v1/wallet/history").json()["items"]
    topped = next(item["transfer_id"] for item in history if item["kind"] == "topup")
    headers = {**HTML, "Accept-Language": lang}
    page = camille.client.get(f"/wallet/receipts/{paid}", headers=headers).text
    assert f"<h1>{payment.format(id=paid)}</h1>" in page
    summary = page[page.index('id="receipt-summary"') : page.index("</section>")]
    assert "Camille" in summary and "Louis" in summary
    assert "member:" not in summary  # people by their names, not their account codes
    page = camille.client.get(f"/wallet/receipts/{topped}", headers=headers).text
    assert f"<h1>{top_up.format(id=topped)}</h1>" in page


# What a raw account or kind would look like in a page's text: a code, an operation's name.
RAW = re.compile(r"escrow:|member:|\b[a-z]+_[a-z_]+\b")


def receipt_summary(person: Person, transfer_id: int, lang: str) -> str:
    page = person.client.get(f"/wallet/receipts/{transfer_id}?lang={lang}", headers=HTML).text
    return words_of(page[page.index('id="receipt-summary"') : page.index("</section>")])


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        (
            "fr",
            {
                "basket": "Mis de côté · à AMAP · Légumes de saison",
                "pledge": "Mis de côté · à Projet · Réparer le lavoir",
                "lowered": "Mise de côté rendue · de Projet · Réparer le lavoir",
                "delivered": "Versé depuis une mise de côté · de AMAP · Légumes de saison",
                "to": "À AMAP · Légumes de saison",
            },
        ),
        (
            "en",
            {
                "basket": "Put aside · to AMAP · Légumes de saison",
                "pledge": "Put aside · to Project · Réparer le lavoir",
                "lowered": "Money set aside given back · from Project · Réparer le lavoir",
                "delivered": "Paid out of money set aside · from AMAP · Légumes de saison",
                "to": "To AMAP · Légumes de saison",
            },
        ),
    ],
)
def test_the_wallet_names_what_money_set_aside_is_for_never_its_escrow(
    site: TestClient, clock: Clock, lang: str, said: dict[str, str]
) -> None:
    """A basket paid to the AMAP and a pledge to a village project read, in the wallet's
    history and on the receipt, as what they are for: the contract, the campaign."""
    amap = make_amap(site, clock)
    deal = amap.contract("subscription", title="Légumes de saison")
    distribution = amap.distribution(deal["id"])
    camille = amap.member("Camille")
    sub = amap.subscribe(camille, deal["id"])
    campaign = opened(site, join(site, "Louis"), title="Réparer le lavoir")
    assert pledge(camille, campaign, 3_000).status_code == 201
    lower = camille.post(f"/api/v1/campaigns/{campaign['id']}/pledge/lower", json={"amount": 1})
    assert lower.status_code == 200, lower.text
    assert amap.deliver(distribution["id"]).status_code == 200
    node_of(site).new_sealer().seal_all()

    mine = movements_of(camille, lang)
    for what in ("basket", "pledge", "lowered"):
        assert said[what] in mine, mine
    assert not RAW.search(mine), mine
    farm = movements_of(amap.farm, lang)
    assert said["delivered"] in farm and not RAW.search(farm), farm

    items = camille.get(f"/api/v1/wallet/history?lang={lang}").json()
    basket = next(i for i in items["items"] if i["counterparty"] == sub["escrow"])
    assert basket["counterparty_name"] == "AMAP · Légumes de saison"  # the API says it too
    summary = receipt_summary(camille, basket["transfer_id"], lang)
    assert said["to"] in summary and said["basket"].split(" · ")[0] in summary, summary
    assert not RAW.search(summary), summary


# Every operation of the ledger that can post to a member's account (ledger/operations.py).
MEMBER_KINDS = (
    "payment",
    "collection",
    "refund",
    "topup",
    "redemption",
    "correction",
    "allowance_hold",
    "allowance_release",
    "escrow_payment",
    "escrow_release",
    "escrow_refund",
    "note_deposit",
    "card_hold",
    "card_release",
    "card_reversal",
)


def test_each_movement_of_a_wallet_is_said_in_words_and_a_new_kind_generically() -> None:
    from ledger.operations import OPERATIONS
    from wallet_api.pages import kind_label

    assert set(MEMBER_KINDS) <= OPERATIONS.keys()
    labels = {kind: kind_label(kind) for kind in MEMBER_KINDS}
    assert all(label != "Movement" and french(label) for label in labels.values()), labels
    assert french(kind_label("escrow_payment")) == "Mis de côté"
    assert french(kind_label("collection")) == "Paiement en caisse"
    # An operation the ledger gains later never shows its code to a resident.
    assert french(kind_label("a_future_kind")) == "Mouvement"
    assert french(kind_label(None)) == "Mouvement"


def test_every_count_is_said_in_french() -> None:
    """French counts in three forms (one, the millions, other) where most catalogues give
    two: no count may fall back to the English ("2 payments" on the counter's day)."""
    for plugin_locale in sorted(ROOT.glob("plugins/*/locale")):
        add_catalogue(plugin_locale)  # as each plugin does when it is plugged in
    counted = []
    for part in _parts("fr"):
        with part.open("rb") as po:
            counted += [m.id for m in read_po(po, locale="fr") if isinstance(m.id, tuple)]
    assert len(counted) >= 8  # the counter's, the payouts', the audit's
    french = translations("fr")
    left_english = [
        (one, n)
        for one, many in counted
        for n in (0, 1, 2, 5, 1_000_000)
        if french.ngettext(one, many, n) in (one, many)
    ]
    assert not left_english, left_english


def test_the_first_of_a_month_is_written_as_french_writes_it() -> None:
    """« le 1er janvier », never « le 1 janvier »; any other day, and English, as Babel says."""
    from datetime import date

    from audits.reports.sections import Writer

    french, english = Writer(str, "fr", "SOU", str), Writer(str, "en", "SOU", str)
    assert french.day(date(2026, 1, 1)) == "1er janv. 2026"
    assert french.short_day(date(2026, 3, 1)) == "1er mars"
    assert french.day(date(2026, 1, 11)) == "11 janv. 2026"
    assert english.day(date(2026, 1, 1)) == "1 Jan 2026"
    assert first_day("jeudi 1 janvier 2026, 10:01", 1, "fr_FR") == "jeudi 1er janvier 2026, 10:01"


def test_de_is_elided_before_a_name_that_starts_with_a_vowel(site: TestClient) -> None:
    """« d’Inès », never « de Inès »: in a sentence a template fills ({% trans %}), and in
    one the page's code fills."""
    ines, louis = join(site, "Inès"), join(site, "Louis")
    fund(site, ines, 1_000)
    assert ines.pay(louis, 250).status_code in (200, 201)
    french = movements_of(louis, "fr")
    assert "Paiement · d’Inès" in french and "de Inès" not in french, french
    assert "Payment · from Inès" in movements_of(louis, "en")
    assert elided("le portefeuille de Inès, de Hugo, de AMAP, de 12 €", "fr") == (
        "le portefeuille d’Inès, de Hugo, de AMAP, de 12 €"
    )
    assert elided("de Inès", "en") == "de Inès"
