"""The payouts' rows of the authorisation matrix (tests/test_authz.py): a merchant's bank
details, and the treasurer's SEPA transfer batches."""

from __future__ import annotations

from typing import Any


def rules() -> dict[tuple[str, str], Any]:
    """(method, path) -> `tests.test_authz.Rule`, imported here: that module reads this one."""
    from ledger.signing import new_order
    from merchants.payouts import service
    from tests.test_authz import (
        ADMIN,
        MERCHANT,
        NOBODY_BUT,
        OFFICE,
        TREASURER,
        UNKNOWN_ID,
        Rule,
        World,
        answering,
    )

    def details(w: World, _: str) -> dict[str, Any]:
        """The merchant's bank details, signed by its device key, replacing the current."""
        merchant = w.people[MERCHANT]
        node = w.site.app.state.node  # type: ignore[attr-defined]
        current = service.current_details(node, merchant.id)
        assert merchant.key is not None
        order = new_order(
            "bank_details",
            merchant.key,
            node.ledger.origin,
            member=merchant.id,
            iban="FR7630006000011234567890189",
            bic="AGRIFRPP",
            holder="Marchand",
            previous=0 if current is None else current.version,
        )
        return merchant.key.sign(order).to_json()

    treasurer = NOBODY_BUT({TREASURER})
    no_batch = {"batch_id": lambda w: UNKNOWN_ID}
    unknown = answering({TREASURER}, 404, "unknown_batch")
    return {
        ("GET", "/api/v1/me/bank-details"): Rule(NOBODY_BUT({MERCHANT})),
        ("POST", "/api/v1/me/bank-details"): Rule(NOBODY_BUT({MERCHANT}), body=details),
        # Whole for the treasurer; masked for the admin and the offices (the victim has none).
        ("GET", "/api/v1/members/{member_id}/bank-details"): Rule(
            NOBODY_BUT({TREASURER, ADMIN, OFFICE})
        ),
        ("GET", "/api/v1/treasury/payouts"): Rule(treasurer),
        # The matrix's node has no debtor account set: the file is refused as documented.
        ("POST", "/api/v1/treasury/payout-batches"): Rule(
            treasurer, answers=answering({TREASURER}, 409, "debtor_not_set")
        ),
        ("GET", "/api/v1/treasury/payout-batches/{batch_id}"): Rule(
            treasurer, path=no_batch, answers=unknown
        ),
        ("GET", "/api/v1/treasury/payout-batches/{batch_id}/file"): Rule(
            treasurer, path=no_batch, answers=unknown
        ),
        ("POST", "/api/v1/treasury/payout-batches/{batch_id}/paid"): Rule(
            treasurer, path=no_batch, body=lambda w, c: {"bank_ref": "VIR-3"}, answers=unknown
        ),
        ("POST", "/api/v1/treasury/payout-batches/{batch_id}/cancelled"): Rule(
            treasurer, path=no_batch, answers=unknown
        ),
        # -- pages ------------------------------------------------------------------------
        ("GET", "/bank-details"): Rule(NOBODY_BUT({MERCHANT})),
        ("GET", "/treasurer/payouts"): Rule(treasurer),
        ("GET", "/treasurer/bank-details/{member_id}"): Rule(treasurer),
        ("POST", "/treasurer/payouts"): Rule(
            treasurer,
            form=lambda w, c: {},
            answers=answering({TREASURER}, 409, says="bank account is not set"),
        ),
        ("POST", "/treasurer/payouts/{batch_id}"): Rule(
            treasurer,
            path=no_batch,
            form=lambda w, c: {"decision": "paid", "bank_ref": "VIR-4"},
            answers=answering({TREASURER}, 404, says="There is no transfer batch with this id."),
        ),
    }
