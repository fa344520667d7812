"""What a customer's code, a collection or an offline allowance may be refused for. The
messages are msgids, translated with the rest of the counter's in pos.po."""

from __future__ import annotations

from web.refusals import NamedRefusal

# -- codes customers show (authorisations to collect) ------------------------------------------
BAD_AUTHORISATION = NamedRefusal(
    422,
    "bad_authorisation",
    "This payment code is not valid: {reason}. Make a new one from the wallet.",
)
AUTHORISATION_EXPIRED = NamedRefusal(
    409, "authorisation_expired", "This payment code has expired: the customer makes a new one."
)
UNKNOWN_CODE = NamedRefusal(404, "unknown_code", "No payment code has this number.")
AUTHORISATION_USED = NamedRefusal(
    409, "authorisation_used", "This payment code was already used: the customer makes a new one."
)
OVER_CAP = NamedRefusal(
    422, "over_cap", "The customer authorised at most {cap}: ask for a new code for more."
)
OTHER_SHOP = NamedRefusal(409, "other_shop", "The customer made this code for another shop.")

# -- offline allowances ------------------------------------------------------------------------
NO_ALLOWANCE = NamedRefusal(409, "no_allowance", "Set some units aside for offline payments first.")
NOT_YOUR_DEVICE = NamedRefusal(
    403, "not_your_device", "This device key is not one of yours, or it was revoked."
)
CERTIFICATE_LIVE = NamedRefusal(
    409,
    "certificate_live",
    "Shops may still be holding offline payments you made: the allowance comes back after {until}.",
)
