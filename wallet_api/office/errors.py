"""The refusals of the exchange offices (cash in, deposits) and of the treasurer's bank
reconciliation: each code with its HTTP status and its one message (msgids; French in
web/locale/fr/LC_MESSAGES/office.po). Refusals every feature shares (an unknown member, a
reused request id...) are in members/errors.py.
"""

from __future__ import annotations

from web.refusals import NamedRefusal

# -- euros in, units out -----------------------------------------------------------------------
MEMBER_MISSING = NamedRefusal(
    422, "member_missing", "Give the member's wallet id or email address."
)
NOT_A_WALLET = NamedRefusal(
    422, "not_a_wallet", "Operators have no wallet: only a member can be credited."
)

# -- the till's cash to the bank ---------------------------------------------------------------
BAD_SLIP_REF = NamedRefusal(
    422,
    "bad_slip_ref",
    "Give the paying-in slip's reference: letters, digits, spaces and _./#- only.",
)
TILL_SHORT = NamedRefusal(
    409, "till_short", "The till holds only {available}: a deposit cannot be more than that."
)
UNKNOWN_DEPOSIT = NamedRefusal(404, "unknown_deposit", "There is no cash deposit with this id.")
ALREADY_RECONCILED = NamedRefusal(
    409, "already_reconciled", "This deposit was already reconciled with the bank."
)
