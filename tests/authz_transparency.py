"""The transparency page's rows of the authorisation matrix (tests/test_authz.py): what it
shows is public. The page, as every page, is for people (signed in or not), not for a
point-of-sale token or a paired counter; its JSON and the verifier it hands out are for every
caller."""

from __future__ import annotations

from typing import Any


def rules() -> dict[tuple[str, str], Any]:
    """(method, path) -> `tests.test_authz.Rule`, imported here: that module reads this one."""
    from tests.test_authz import EVERYONE, PEOPLE, Rule

    return {
        ("GET", "/transparence"): Rule(PEOPLE),
        ("GET", "/api/v1/transparency"): Rule(EVERYONE),
        ("GET", "/transparence/sou_verify.py"): Rule(EVERYONE),
    }
