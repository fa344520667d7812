"""The SEPA credit-transfer file (pain.001.001.03, the version French banks import), written
by `sepaxml`, which validates it against the schema it ships before giving it out."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import defusedxml.ElementTree as SafeTree
from sepaxml import SepaTransfer

from merchants.payouts.banking import checked_bic, checked_iban
from merchants.payouts.errors import DEBTOR_NOT_SET
from web.refusals import Refusal

if TYPE_CHECKING:
    from merchants.payouts.service import Ready

SCHEMA = "pain.001.001.03"
NS = {"p": f"urn:iso:std:iso:20022:tech:xsd:{SCHEMA}"}


@dataclass(frozen=True)
class Debtor:
    name: str
    iban: str
    bic: str


@dataclass(frozen=True)
class Written:
    message_id: str
    xml: bytes


def debtor(settings: Any) -> Debtor:
    """The association's account from the plugin's settings, checked like a merchant's."""
    name = str(getattr(settings, "debtor_name", "") or "").strip()
    iban_text = str(getattr(settings, "debtor_iban", "") or "")
    bic_text = str(getattr(settings, "debtor_bic", "") or "")
    if not (name and iban_text and bic_text):
        raise DEBTOR_NOT_SET(why="empty")
    try:
        iban = checked_iban(iban_text)
        bic = checked_bic(bic_text, iban)
    except Refusal as refusal:
        raise DEBTOR_NOT_SET(why=refusal.code) from None
    return Debtor(name[:70], iban.compact, bic.compact)


def transfer_file(debtor: Debtor, ready: Sequence[Ready], village: str) -> Written:
    """One payment information block per reconversion, each asking the bank to book its
    transfer on its own statement line (BtchBookg false): each line then carries its
    EndToEndId `SOU-RECONVERSION-<id>` and the reconciliation matches it to that
    reconversion's payout by reference (one line for the whole file would match none)."""
    sepa = SepaTransfer(
        {
            "name": debtor.name,
            "IBAN": debtor.iban,
            "BIC": debtor.bic,
            "batch": False,
            "currency": "EUR",
        },
        schema=SCHEMA,
        clean=True,
    )
    today = datetime.date.today()
    for r in ready:
        sepa.add_payment(
            {
                "name": r.details.holder,
                "IBAN": r.details.iban,
                "BIC": r.details.bic,
                "amount": r.reconversion.net,  # euro cents
                "execution_date": today,
                "description": f"Reconversion {r.reconversion.id} {village}",
                "endtoend_id": f"SOU-RECONVERSION-{r.reconversion.id}",
            }
        )
    xml = sepa.export(validate=True)
    tree = SafeTree.fromstring(xml)
    message_id = tree.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", namespaces=NS)
    assert message_id, "sepaxml always writes a MsgId"
    return Written(message_id, xml)
