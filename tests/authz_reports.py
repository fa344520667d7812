"""The treasurer's reports' rows of the authorisation matrix (tests/test_authz.py)."""

from __future__ import annotations

from typing import Any


def rules() -> dict[tuple[str, str], Any]:
    """(method, path) -> `tests.test_authz.Rule`, imported here: that module reads this one."""
    from tests.test_authz import MERCHANT, NOBODY_BUT, TREASURER, Rule

    period = {"first": "2026-01-01", "last": "2026-01-31"}
    return {
        ("GET", "/treasurer/dashboard"): Rule(NOBODY_BUT({TREASURER}), query=lambda w, c: period),
        ("GET", "/treasurer/dashboard/report.pdf"): Rule(
            NOBODY_BUT({TREASURER}), query=lambda w, c: period
        ),
        ("GET", "/merchant/listing"): Rule(NOBODY_BUT({MERCHANT})),
        ("POST", "/merchant/listing"): Rule(
            NOBODY_BUT({MERCHANT}), form=lambda w, c: {"listed": "yes"}
        ),
    }
