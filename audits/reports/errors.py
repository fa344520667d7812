"""The refusals of the reports (msgids; French in web/locale/fr/LC_MESSAGES/reports.po)."""

from __future__ import annotations

from web.refusals import NamedRefusal

BAD_DAY = NamedRefusal(400, "bad_day", "A day of the period is not a date: write it as 2026-12-31.")
PERIOD_BACKWARDS = NamedRefusal(
    400, "period_backwards", "The period starts after it ends: swap the two days."
)
PERIOD_TOO_LONG = NamedRefusal(
    400,
    "period_too_long",
    "A report covers at most {days} days: choose a shorter period.",
)
NOT_A_MERCHANT = NamedRefusal(
    403, "not_a_merchant", "Only merchants choose whether their shop is named in the reports."
)
