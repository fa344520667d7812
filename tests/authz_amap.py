"""The AMAP plugin's rows of the authorisation matrix (tests/test_authz.py)."""

from __future__ import annotations

from typing import Any


def rules() -> dict[tuple[str, str], Any]:
    """(method, path) -> `tests.test_authz.Rule`, imported here: that module reads this one."""
    return {}
