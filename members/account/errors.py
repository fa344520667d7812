"""The refusals of one's account: changing the password, ending sessions, reset links
(msgids; French in web/locale/fr/LC_MESSAGES/account.po). Refusals every feature shares
(a weak password, login required...) are in members/errors.py.
"""

from __future__ import annotations

from web.refusals import NamedRefusal

WRONG_PASSWORD = NamedRefusal(
    403, "wrong_password", "The current password is not right: nothing was changed."
)
TOO_MANY_WRONG_PASSWORDS = NamedRefusal(
    401,
    "too_many_wrong_passwords",
    "The current password was wrong too many times: you are logged out. Log in again.",
)
UNKNOWN_SESSION = NamedRefusal(404, "unknown_session", "You have no open session with this id.")
TOO_MANY_RESETS = NamedRefusal(
    429,
    "too_many_resets",
    "Too many password resets were asked for this address. Wait {minutes} minutes and try again.",
)
RESET_LINK_UNKNOWN = NamedRefusal(
    404,
    "reset_link_unknown",
    "This password-reset link is not known here: ask for a new one.",
)
RESET_LINK_USED = NamedRefusal(
    409,
    "reset_link_used",
    "This password-reset link was already used: ask for a new one if you need it.",
)
RESET_LINK_EXPIRED = NamedRefusal(
    410,
    "reset_link_expired",
    "This password-reset link has expired (it lasts {minutes} minutes): ask for a new one.",
)
OPERATOR_RESET = NamedRefusal(
    403,
    "operator_reset",
    "An operator's password is reset by an admin, not at an exchange office.",
)
RESETS_AT_OFFICE = NamedRefusal(
    409,
    "resets_at_office",
    "This node sends no mail: a forgotten password is reset at an exchange office, with an "
    "identity document.",
)
PASSWORDS_DIFFER = NamedRefusal(
    422, "passwords_differ", "The two new passwords are not the same: type them again."
)
