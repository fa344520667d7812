"""The treasurer's audit runs' rows of the authorisation matrix (tests/test_authz.py)."""

from __future__ import annotations

from typing import Any


def rules() -> dict[tuple[str, str], Any]:
    """(method, path) -> `tests.test_authz.Rule`, imported here: that module reads this one."""
    from tests.test_authz import NOBODY_BUT, TREASURER, UNKNOWN_ID, Rule, World, answering

    only_the_treasurer = NOBODY_BUT({TREASURER})

    def running(w: World) -> None:
        """A run holds the one running place, so that the treasurer's start is refused (409)
        rather than an audit left running in the background of the matrix."""
        from audits import repository, service

        node = w.site.app.state.node  # type: ignore[attr-defined]
        with node.engine.connect() as conn:
            if repository.running(conn) is not None:
                return
        service.begin(node.engine, by="cli", full=False, stale_after_s=24 * 3600)

    def start_body(w: World, _: str) -> dict[str, Any]:
        running(w)
        return {"full": False}

    def start_form(w: World, _: str) -> dict[str, str]:
        running(w)
        return {"full": "yes"}

    return {
        ("GET", "/treasurer/audit"): Rule(only_the_treasurer),
        ("POST", "/treasurer/audit"): Rule(
            only_the_treasurer,
            form=start_form,
            answers=answering({TREASURER}, 409, says="An audit is already running"),
        ),
        ("POST", "/api/v1/audit/runs"): Rule(
            only_the_treasurer,
            body=start_body,
            answers=answering({TREASURER}, 409, "audit_running"),
        ),
        ("GET", "/api/v1/audit/runs"): Rule(only_the_treasurer),
        ("GET", "/api/v1/audit/runs/{run_id}"): Rule(
            only_the_treasurer,
            path={"run_id": lambda w: UNKNOWN_ID},
            answers=answering({TREASURER}, 404, "unknown_audit_run"),
        ),
    }
