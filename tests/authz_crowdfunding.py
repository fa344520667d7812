"""The crowdfunding plugin's rows of the authorisation matrix (tests/test_authz.py)."""

from __future__ import annotations

from typing import Any


def rules() -> dict[tuple[str, str], Any]:
    """(method, path) -> `tests.test_authz.Rule`, imported here: that module reads this one."""
    from tests.test_authz import (
        ADMIN,
        EVERYONE,
        HOLDERS,
        LOGGED_IN,
        MERCHANT,
        NOBODY_BUT,
        PEOPLE,
        RESIDENT,
        TREASURER,
        UNKNOWN_ID,
        WALLET_TOKEN,
        Rule,
        World,
        answering,
    )

    unknown = {"campaign_id": lambda w: UNKNOWN_ID}

    def about_none(allowed: frozenset[str], **kw: Any) -> Any:
        """A request about a campaign that does not exist: the allowed get its 404."""
        return Rule(
            allowed, path=unknown, answers=answering(allowed, 404, "unknown_campaign"), **kw
        )

    api = "/api/v1/campaigns"
    one = f"{api}/{{campaign_id}}"
    return {
        ("GET", api): Rule(EVERYONE),
        ("POST", api): Rule(
            HOLDERS,
            body=lambda w, c: {
                "title": "Lavoir",
                "description": "Le toit.",
                "goal": 10_000,
                "days": 30,
            },
        ),
        ("GET", f"{api}/proposed"): Rule(NOBODY_BUT({ADMIN})),
        ("GET", f"{api}/matching"): Rule(LOGGED_IN),
        ("POST", f"{api}/matching/payments"): Rule(
            HOLDERS, body=World.payment, answers=answering(HOLDERS, 409, "not_the_commune")
        ),
        ("GET", one): about_none(PEOPLE),
        ("GET", f"{one}/progress"): about_none(PEOPLE),
        ("GET", f"{one}/trail"): about_none(PEOPLE),
        ("GET", f"{one}/picture"): about_none(PEOPLE),
        ("POST", f"{one}/publish"): about_none(NOBODY_BUT({ADMIN})),
        ("POST", f"{one}/reject"): about_none(
            NOBODY_BUT({ADMIN}), body=lambda w, c: {"reason": "Hors sujet"}
        ),
        ("PUT", f"{one}/picture"): about_none(HOLDERS, body=lambda w, c: {"not": "an image"}),
        ("POST", f"{one}/updates"): about_none(HOLDERS, body=lambda w, c: {"text": "Nouvelles"}),
        ("POST", f"{one}/pledges"): about_none(HOLDERS, body=World.payment),
        ("POST", f"{one}/pledge/lower"): about_none(HOLDERS, body=lambda w, c: {"amount": 0}),
        # -- pages --
        ("GET", "/campaigns"): Rule(PEOPLE),
        ("GET", "/campaigns/new"): Rule(HOLDERS),
        ("GET", "/campaigns/moderation"): Rule(NOBODY_BUT({ADMIN})),
        ("GET", "/campaigns/matching"): Rule(
            NOBODY_BUT({RESIDENT, MERCHANT, TREASURER, ADMIN, WALLET_TOKEN})
        ),
        ("GET", "/campaigns/{campaign_id}"): Rule(
            PEOPLE, path=unknown, answers=answering(PEOPLE, 404, says="no such campaign")
        ),
    }
