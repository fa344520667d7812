"""Bank accounts: an IBAN checked by its checksum and its country's format, a BIC checked
and consistent with the IBAN's bank where schwifty knows it, a holder's name; and how an
IBAN is shown to people who should not read it whole."""

from __future__ import annotations

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from merchants.payouts.errors import BAD_BIC, BAD_HOLDER, BAD_IBAN, BIC_MISMATCH

HOLDER_MAX = 70  # what a SEPA file carries of a name


def checked_iban(text: str) -> IBAN:
    try:
        return IBAN(str(text)[:64])
    except SchwiftyException as exc:
        raise BAD_IBAN(why=str(exc)) from None


def checked_bic(text: str, iban: IBAN) -> BIC:
    """The BIC, which must name the IBAN's bank (its first 6 characters: bank and country)
    where schwifty's registry knows that bank, and else at least the IBAN's country."""
    try:
        bic = BIC(str(text)[:32])
    except SchwiftyException as exc:
        raise BAD_BIC(why=str(exc)) from None
    expected = iban.bic
    if expected is not None:
        if str(bic.compact)[:6] != str(expected.compact)[:6]:
            raise BIC_MISMATCH(bic=bic.compact, expected=expected.compact)
    elif bic.country_code != iban.country_code:
        raise BIC_MISMATCH(bic=bic.compact, expected=iban.country_code)
    return bic


def checked_holder(text: str) -> str:
    holder = " ".join(str(text).split())
    if not holder or len(holder) > HOLDER_MAX or not holder.isprintable():
        raise BAD_HOLDER()
    return holder


def masked(iban: str) -> str:
    """Every character hidden but the last 4, in groups of 4 as banks print them."""
    shown = "•" * (len(iban) - 4) + iban[-4:]
    return " ".join(shown[i : i + 4] for i in range(0, len(shown), 4))


def grouped(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
