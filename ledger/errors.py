"""Every refusal of the ledger is a named error.

Each carries a stable `code` (for API responses and translations) and `params` (the facts a
message needs). The English message is for logs and developers; pages translate by code.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LedgerError(Exception):
    code: ClassVar[str] = "ledger_error"

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.params = params

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.params}


class InvalidOrder(LedgerError):
    """The order is malformed: a missing or badly typed field, an impossible amount..."""

    code = "invalid_order"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", field=field)


class WrongNode(LedgerError):
    code = "wrong_node"


class OrderExpired(LedgerError):
    code = "order_expired"


class ExpiryTooFar(LedgerError):
    code = "expiry_too_far"


class UnknownKey(LedgerError):
    code = "unknown_key"


class RevokedKey(LedgerError):
    code = "revoked_key"


class BadSignature(LedgerError):
    code = "bad_signature"


class WrongSigner(LedgerError):
    """The key is valid but belongs to someone who may not sign this order."""

    code = "wrong_signer"


class ReplayedNonce(LedgerError):
    code = "replayed_nonce"


class IdempotencyConflict(LedgerError):
    """The client id was already used for a different order."""

    code = "idempotency_conflict"


class UnknownAccount(LedgerError):
    code = "unknown_account"


class AccountExists(LedgerError):
    code = "account_exists"


class CurrencyMismatch(LedgerError):
    code = "currency_mismatch"


class InsufficientFunds(LedgerError):
    code = "insufficient_funds"


class BackingViolation(LedgerError):
    """The transfer would leave local units not covered by euros in reserve."""

    code = "backing_violation"


class UnknownTransfer(LedgerError):
    code = "unknown_transfer"


class InvalidReference(LedgerError):
    """The referenced transfer cannot be refunded, paid out or corrected this way."""

    code = "invalid_reference"


class AlreadyUsed(LedgerError):
    """The one-time token this transfer uses (an invoice, a note) was used by another."""

    code = "already_used"


class KeyExists(LedgerError):
    code = "key_exists"


class NodeBusy(LedgerError):
    """The node is stopping or overloaded; the order was not taken: retry with the same id."""

    code = "node_busy"


class RefusedByDatabase(LedgerError):
    """The database's own rules refused the transfer: nothing was posted. This means the
    ledger missed a check the schema enforces, and is logged as an error."""

    code = "refused_by_database"
