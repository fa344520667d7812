"""The exports' refusals: each code with its HTTP status and its one message (French in
web/locale/fr/LC_MESSAGES/exports.po)."""

from __future__ import annotations

from web.refusals import NamedRefusal

BAD_DATE = NamedRefusal(
    422, "bad_export_date", "Write the dates of the period as year-month-day, like 2026-01-31."
)
BAD_PERIOD = NamedRefusal(
    422, "bad_export_period", "The period must start on or before the day it ends."
)
OUT_OF_RANGE = NamedRefusal(
    422, "export_period_out_of_range", "The period's days must lie between {first} and {last}."
)
NO_SIREN = NamedRefusal(
    409,
    "no_siren",
    "The FEC is named after the association's SIREN number, which this node does not know: "
    "its operator sets SOU_EXPORTS_SIREN (9 digits).",
)
UNKNOWN_EXPORT = NamedRefusal(404, "unknown_export", "There is no such export.")
