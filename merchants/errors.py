"""The refusals of reconversion (a merchant's units back to euros) and of the treasurer's
decisions on it: each code with its HTTP status and its one message (msgids; French in
web/locale/fr/LC_MESSAGES/merchants.po). Refusals every feature shares (a frozen wallet,
an amount over the largest...) are in members/errors.py.
"""

from __future__ import annotations

from web.refusals import NamedRefusal

# -- asking for a reconversion -----------------------------------------------------------------
RECONVERSION_NOT_ALLOWED = NamedRefusal(
    403, "reconversion_not_allowed", "Only merchants can reconvert units to euros here."
)
AMOUNT_TOO_SMALL = NamedRefusal(
    422, "amount_too_small", "This amount is too small to reconvert: the fee takes it all."
)
FEE_MISMATCH = NamedRefusal(
    422,
    "fee_mismatch",
    "For {amount} the fee is {fee}, of which {cause_fee} for the cause: "
    "ask for a new quote and sign again.",
)
RESERVE_SHORT = NamedRefusal(
    409,
    "reserve_short",
    "The association's bank reserve cannot cover this reconversion right now: "
    "try a smaller amount, or ask the treasurer.",
)

# -- the treasurer pays or rejects -------------------------------------------------------------
UNKNOWN_RECONVERSION = NamedRefusal(
    404, "unknown_reconversion", "There is no reconversion request with this id."
)
ALREADY_DECIDED = NamedRefusal(409, "already_decided", "This reconversion was already decided.")
NOT_SETTLED = NamedRefusal(
    409, "not_settled", "The ledger did not record this decision; try again."
)
FEES_SPENT = NamedRefusal(
    409,
    "fees_spent",
    "The association's account {account} no longer holds this fee: "
    "the units cannot be given back until it does.",
)
