"""The refusals of members, sessions and keys, and those every feature shares (an unknown
member, a frozen wallet, a role that may not...): each code with its HTTP status and its
one message (msgids; French in web/locale/fr/LC_MESSAGES/core.po, the shops' in
members.po).

Features raise these and their own `errors.py`, never another feature's.
"""

from __future__ import annotations

from web.refusals import NamedRefusal

# -- joining, logging in -----------------------------------------------------------------------
BAD_NAME = NamedRefusal(422, "bad_name", "Give a name (120 characters at most).")
BAD_ROLE = NamedRefusal(
    422,
    "bad_role",
    "This role cannot be chosen here: one joins as a resident or as a merchant with a trade; "
    "an operator works at the exchange office, as treasurer or as admin.",
)
BAD_SIRET = NamedRefusal(422, "bad_siret", "A SIRET number has 14 digits.")
BAD_TRADE = NamedRefusal(422, "bad_trade", "Merchants give their trade name, category and address.")
BAD_PLACE = NamedRefusal(
    422, "bad_place", "Give the town or village of the shop (80 characters at most)."
)
BAD_EMAIL = NamedRefusal(422, "bad_email", "This email address does not look right.")
EMAIL_TAKEN = NamedRefusal(409, "email_taken", "An account already uses this email address.")
WEAK_PASSWORD = NamedRefusal(422, "weak_password", "The password needs at least 10 characters.")
LONG_PASSWORD = NamedRefusal(
    422, "long_password", "The password is too long (200 characters at most)."
)
BAD_OFFICE = NamedRefusal(422, "bad_office", "An exchange-office operator works at one office.")
TOO_MANY_LOGINS = NamedRefusal(
    429, "too_many_logins", "Too many failed logins. Wait {minutes} minutes and try again."
)
LOGIN_TOO_SOON = NamedRefusal(
    429, "login_too_soon", "Several wrong passwords in a row: wait {seconds} seconds and try again."
)
ACCOUNT_GUARDED = NamedRefusal(
    429,
    "account_guarded",
    "Someone has tried many wrong passwords on this account. To protect it, it can only be "
    "logged in to from a device that was used before, for {minutes} min.",
)
TOO_MANY_JOINS = NamedRefusal(
    429,
    "too_many_joins",
    "Many accounts were just made from this network. Wait {minutes} min and try again, or "
    "ask an exchange office.",
)
NETWORK_GUARDED = NamedRefusal(
    429,
    "network_guarded",
    "Too many failed logins from this network. Wait {minutes} min, or log in from a device "
    "used before.",
)
BAD_LOGIN = NamedRefusal(401, "bad_login", "Wrong email or password.")

# -- who may do what ---------------------------------------------------------------------------
LOGIN_REQUIRED = NamedRefusal(401, "login_required", "Please log in first.")
BAD_TOKEN = NamedRefusal(401, "bad_token", "This API token is not valid (unknown or revoked).")
CSRF = NamedRefusal(
    403,
    "csrf",
    "This form has expired or did not come from this site. Reload the page and try again.",
)
TOKEN_SCOPE = NamedRefusal(403, "token_scope", "This API token may not do this.")
COUNTER_DEVICE = NamedRefusal(
    403,
    "counter_device",
    "This device is a shop's till: it takes payments and refunds, nothing else. "
    "The merchant signs in with their password on their own device for the rest.",
)
FORBIDDEN = NamedRefusal(403, "forbidden", "Your role does not allow this.")
NO_WALLET = NamedRefusal(403, "no_wallet", "Operators have no wallet.")

# -- the member directory, tokens and device keys ----------------------------------------------
UNKNOWN_MEMBER = NamedRefusal(404, "unknown_member", "There is no member with this id.")
BAD_SEARCH = NamedRefusal(422, "bad_search", "Search with at most 120 characters, on one line.")
BAD_ROLE_FILTER = NamedRefusal(422, "bad_role_filter", "There is no such role.")
UNKNOWN_TOKEN = NamedRefusal(404, "unknown_token", "You have no API token with this id.")
TOO_MANY_TOKENS = NamedRefusal(
    409, "too_many_tokens", "You have {count} API tokens: revoke one you no longer use first."
)
TOO_MANY_KEYS = NamedRefusal(
    409, "too_many_keys", "You have {count} active device keys: revoke one first."
)
BAD_PUBLIC_KEY = NamedRefusal(
    422, "bad_public_key", "A device key is 32 bytes of Ed25519, in base64url."
)
UNKNOWN_DEVICE_KEY = NamedRefusal(404, "unknown_device_key", "You have no device key with this id.")
KEY_EXISTS = NamedRefusal(
    409,
    "key_exists",
    "This device key was registered before: the new device must make a new one.",
)

# -- shops and whom one pays ------------------------------------------------------------------
UNKNOWN_SHOP = NamedRefusal(
    404, "unknown_shop", "There is no shop here: it may not be approved by the association yet."
)

# -- shared by the features that take signed orders and forms ----------------------------------
WALLET_FROZEN = NamedRefusal(403, "wallet_frozen", "Your wallet is frozen: {reason}")
NOT_YOUR_WALLET = NamedRefusal(
    403, "not_your_wallet", "An order can only spend from your own wallet."
)
BAD_SIGNATURE_ENCODING = NamedRefusal(
    422, "bad_signature_encoding", "The signature is not base64url."
)
BAD_REQUEST_ID = NamedRefusal(
    422, "bad_request_id", "A request id is 1 to 48 letters, digits or _.:- (a UUID is fine)."
)
IDEMPOTENCY_CONFLICT = NamedRefusal(
    409, "idempotency_conflict", "This request id was already used for a different request."
)
BAD_FORM = NamedRefusal(422, "bad_form", "This form is not one of this page's.")
AMOUNT_TOO_LARGE = NamedRefusal(
    422, "amount_too_large", "The amount is over the largest allowed, {maximum}."
)


# -- codes several features raise: one message each --------------------------------------------
BAD_KIND = NamedRefusal(
    422,
    "bad_kind",
    "This kind of order cannot be sent here: a wallet sends payments, and a reconversion is "
    "asked with a signed redemption order.",
)
BAD_AMOUNT = NamedRefusal(
    422, "bad_amount", "The amount must be a whole number of cents above zero."
)
MEMBERSHIP_LAPSED = NamedRefusal(
    403,
    "membership_lapsed",
    "The membership has lapsed: renew it before converting between euros and units.",
)
BANK_REF_MISSING = NamedRefusal(
    422, "bank_ref_missing", "Give the bank's reference (of the statement or of the transfer)."
)
REASON_MISSING = NamedRefusal(
    422, "reason_missing", "Say why, in a few words (at most {maximum} characters)."
)
