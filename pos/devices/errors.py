"""The refusals of pairing a device with a shop's counter (msgids; French in
web/locale/fr/LC_MESSAGES/pos.po). Refusals every feature shares are in members/errors.py.
"""

from __future__ import annotations

from web.refusals import NamedRefusal

BAD_PAIRING_CODE = NamedRefusal(
    422,
    "bad_pairing_code",
    "A pairing code has 10 letters and digits, like ABCDE-FGH23: check what you typed.",
)
UNKNOWN_PAIRING_CODE = NamedRefusal(
    404,
    "unknown_pairing_code",
    "This pairing code is not known here: check it, or ask the merchant for a new one.",
)
PAIRING_CODE_USED = NamedRefusal(
    409,
    "pairing_code_used",
    "This pairing code was already used by another device: ask the merchant for a new one.",
)
PAIRING_CODE_EXPIRED = NamedRefusal(
    410,
    "pairing_code_expired",
    "This pairing code has expired (it lasts {minutes} minutes): ask the merchant for a new one.",
)
BAD_DEVICE_LABEL = NamedRefusal(
    422,
    "bad_device_label",
    "Name the device in one line of at most 80 characters, like Till 1.",
)
TOO_MANY_COUNTER_DEVICES = NamedRefusal(
    409,
    "too_many_counter_devices",
    "The shop has {count} counter devices: remove one before pairing another.",
)
UNKNOWN_COUNTER_DEVICE = NamedRefusal(
    404, "unknown_counter_device", "The shop has no such counter device."
)
