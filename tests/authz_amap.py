"""The AMAP plugin's rows of the authorisation matrix (tests/test_authz.py)."""

from __future__ import annotations

from typing import Any


def rules() -> dict[tuple[str, str], Any]:
    """(method, path) -> `tests.test_authz.Rule`, imported here: that module reads this one."""
    from tests.test_authz import (
        ADMIN,
        HOLDERS,
        LOGGED_IN,
        MERCHANT,
        NOBODY_BUT,
        UNKNOWN_ID,
        Answer,
        Rule,
        World,
        answering,
    )

    def producer(w: World) -> None:
        """The matrix's merchant is a producer (whatever the routes' order)."""
        from plugins.amap import service

        service.name_producer(w.site.app.state.node, w.people[MERCHANT].id)  # type: ignore[attr-defined]

    def product_body(w: World, _: str) -> dict[str, Any]:
        producer(w)
        return {"name": "Carottes", "unit": "kg", "price": 250}

    def statement_query(w: World, _: str) -> dict[str, Any]:
        producer(w)
        return {}

    unknown = {
        name: (lambda w: UNKNOWN_ID)
        for name in ("contract_id", "product_id", "distribution_id", "subscription_id")
    }

    def missing(callers: frozenset[str], code: str) -> dict[str, Answer]:
        return answering(callers, 404, code)

    def page_missing(callers: frozenset[str], says: str) -> dict[str, Answer]:
        return answering(callers, 404, says=says)

    no_sub = missing(HOLDERS, "unknown_subscription")
    return {
        ("POST", "/api/v1/amap/producers"): Rule(
            NOBODY_BUT({ADMIN}), body=lambda w, c: {"member": w.people[MERCHANT].id}
        ),
        ("POST", "/api/v1/amap/places"): Rule(
            NOBODY_BUT({ADMIN}), body=lambda w, c: {"name": "Halle", "address": "Place"}
        ),
        ("POST", "/api/v1/amap/contracts"): Rule(
            NOBODY_BUT({ADMIN}),
            body=lambda w, c: {
                "producer": w.victim.id,
                "title": "Légumes",
                "nature": "free_choice",
                "season": "2027",
            },
            answers=answering({ADMIN}, 409, "not_a_producer"),
        ),
        ("PUT", "/api/v1/amap/contracts/{contract_id}/coordinators"): Rule(
            NOBODY_BUT({ADMIN}),
            body=lambda w, c: {"coordinators": [w.people[MERCHANT].id]},
            path=unknown,
            answers=missing(NOBODY_BUT({ADMIN}), "unknown_contract"),
        ),
        ("GET", "/api/v1/amap/contracts"): Rule(HOLDERS),
        ("GET", "/api/v1/amap/contracts/{contract_id}"): Rule(
            HOLDERS, path=unknown, answers=missing(HOLDERS, "unknown_contract")
        ),
        ("POST", "/api/v1/amap/products"): Rule(NOBODY_BUT({MERCHANT}), body=product_body),
        ("PATCH", "/api/v1/amap/products/{product_id}"): Rule(
            NOBODY_BUT({MERCHANT}),
            body=lambda w, c: {"price": 300},
            path=unknown,
            answers=missing(NOBODY_BUT({MERCHANT}), "unknown_product"),
        ),
        ("POST", "/api/v1/amap/contracts/{contract_id}/distributions"): Rule(
            LOGGED_IN,
            body=lambda w, c: {"day": "2027-06-01", "place": 1, "cutoff_ms": 1},
            path=unknown,
            answers=missing(LOGGED_IN, "unknown_contract"),
        ),
        ("PUT", "/api/v1/amap/distributions/{distribution_id}/stock"): Rule(
            LOGGED_IN,
            body=lambda w, c: {"stock": [{"product": 1, "remaining": 3}]},
            path=unknown,
            answers=missing(LOGGED_IN, "unknown_distribution"),
        ),
        ("POST", "/api/v1/amap/distributions/{distribution_id}/delivered"): Rule(
            LOGGED_IN, path=unknown, answers=missing(LOGGED_IN, "unknown_distribution")
        ),
        ("POST", "/api/v1/amap/distributions/{distribution_id}/cancelled"): Rule(
            LOGGED_IN, path=unknown, answers=missing(LOGGED_IN, "unknown_distribution")
        ),
        ("POST", "/api/v1/amap/contracts/{contract_id}/subscriptions"): Rule(
            HOLDERS, path=unknown, answers=missing(HOLDERS, "unknown_contract")
        ),
        ("GET", "/api/v1/amap/subscriptions"): Rule(HOLDERS),
        ("POST", "/api/v1/amap/subscriptions/{subscription_id}/payments"): Rule(
            HOLDERS, body=World.payment, path=unknown, answers=no_sub
        ),
        ("PUT", "/api/v1/amap/subscriptions/{subscription_id}/orders/{distribution_id}"): Rule(
            HOLDERS, body=lambda w, c: {"lines": []}, path=unknown, answers=no_sub
        ),
        ("POST", "/api/v1/amap/subscriptions/{subscription_id}/absences"): Rule(
            HOLDERS, body=lambda w, c: {"distribution": UNKNOWN_ID}, path=unknown, answers=no_sub
        ),
        ("POST", "/api/v1/amap/subscriptions/{subscription_id}/leave"): Rule(
            HOLDERS, path=unknown, answers=no_sub
        ),
        ("GET", "/amap"): Rule(LOGGED_IN),
        ("GET", "/amap/contracts/{contract_id}"): Rule(
            HOLDERS, path=unknown, answers=page_missing(HOLDERS, "There is no such contract.")
        ),
        ("GET", "/amap/producer"): Rule(NOBODY_BUT({MERCHANT}), query=statement_query),
        ("GET", "/amap/coordination"): Rule(LOGGED_IN),
        ("GET", "/amap/distributions/{distribution_id}/sheet"): Rule(
            LOGGED_IN,
            path=unknown,
            answers=page_missing(LOGGED_IN, "There is no such distribution."),
        ),
    }
