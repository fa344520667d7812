"""The reconciliation's rows of the authorisation matrix (tests/test_authz.py): only the
treasurer reconciles; with the matrix's plausible data each of its requests gets the
domain's refusal (no Stripe keys, no such line or match, a JSON body is no statement)."""

from __future__ import annotations

from typing import Any


def rules() -> dict[tuple[str, str], Any]:
    """(method, path) -> `tests.test_authz.Rule`, imported here: that module reads this one."""
    from tests.test_authz import NOBODY_BUT, TREASURER, UNKNOWN_ID, Rule, answering

    only = NOBODY_BUT({TREASURER})
    unknown_match = {"match_id": lambda w: UNKNOWN_ID}
    api = "/api/v1/treasury/reconciliation"
    page = "/treasurer/reconciliation"
    return {
        ("GET", api): Rule(only, query=lambda w, c: {"account": "reserve:digital"}),
        ("POST", api + "/statements"): Rule(
            only,
            query=lambda w, c: {"format": "camt"},
            body=lambda w, c: {"not": "a statement"},
            answers=answering({TREASURER}, 422, "malformed_xml"),
        ),
        ("POST", api + "/stripe"): Rule(
            only, answers=answering({TREASURER}, 409, "stripe_not_set")
        ),
        ("POST", api + "/matches"): Rule(
            only,
            body=lambda w, c: {"line_id": UNKNOWN_ID, "transfer_id": w.transfer, "note": "vu"},
            answers=answering({TREASURER}, 404, "unknown_line"),
        ),
        ("DELETE", api + "/matches/{match_id}"): Rule(
            only, path=unknown_match, answers=answering({TREASURER}, 404, "unknown_match")
        ),
        ("GET", page): Rule(only),
        ("POST", page): Rule(
            only, form=lambda w, c: {"format": "camt"}, answers=answering({TREASURER}, 422)
        ),
        ("POST", page + "/stripe"): Rule(
            only, form=lambda w, c: {}, answers=answering({TREASURER}, 409)
        ),
        ("POST", page + "/match"): Rule(
            only,
            form=lambda w, c: {"line_id": str(UNKNOWN_ID), "transfer_id": "1", "note": "vu"},
            answers=answering({TREASURER}, 404),
        ),
        ("POST", page + "/undo"): Rule(
            only,
            form=lambda w, c: {"match_id": str(UNKNOWN_ID)},
            answers=answering({TREASURER}, 404),
        ),
    }
