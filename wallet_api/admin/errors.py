"""The refusals of the admin's pages (operators, memberships, key recovery): each code with
its HTTP status and its one message (msgids; French in web/locale/fr/LC_MESSAGES/admin.po).
Refusals every feature shares (an unknown member, a bad email...) are in members/errors.py.
"""

from __future__ import annotations

from web.refusals import NamedRefusal

# -- a new operator ----------------------------------------------------------------------------
BAD_OFFICE_ID = NamedRefusal(
    422,
    "bad_office_id",
    "An office's id is 1 to 48 lowercase letters, digits, - or _, "
    "starting with a letter or a digit (like mairie).",
)

# -- memberships and key recovery --------------------------------------------------------------
BAD_DAY = NamedRefusal(
    422, "bad_day", "Give the day the membership is paid up to, like 31/12/2026."
)
IDENTITY_UNCHECKED = NamedRefusal(
    422,
    "identity_unchecked",
    "Check the member's identity document in person, then tick the box.",
)
BAD_LABEL = NamedRefusal(422, "bad_label", "Name the device in at most 80 characters, on one line.")
