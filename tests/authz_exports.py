"""The accounting exports' rows of the authorisation matrix (tests/test_authz.py)."""

from __future__ import annotations

from typing import Any


def rules() -> dict[tuple[str, str], Any]:
    """(method, path) -> `tests.test_authz.Rule`, imported here: that module reads this one."""
    from tests.test_authz import NOBODY_BUT, TREASURER, Rule, World, answering

    def period(w: World, caller: str) -> dict[str, Any]:
        return {"from": "2026-01-01", "to": "2026-12-31"}

    only_treasurer = NOBODY_BUT({TREASURER})
    return {
        ("GET", "/treasurer/exports"): Rule(only_treasurer),
        ("GET", "/treasurer/exports/journal"): Rule(only_treasurer, query=period),
        ("GET", "/treasurer/exports/beancount"): Rule(only_treasurer, query=period),
        # The matrix's node has no SIREN set: the treasurer is told why there is no FEC.
        ("GET", "/treasurer/exports/fec"): Rule(
            only_treasurer, query=period, answers=answering({TREASURER}, 409, says="SIREN")
        ),
    }
