"""The refusals of payouts: bank details a merchant records, and the treasurer's transfer
batches. Each code with its HTTP status and its one message (msgids; French in
web/locale/fr/LC_MESSAGES/payouts.po)."""

from __future__ import annotations

from web.refusals import NamedRefusal

# -- the bank details ------------------------------------------------------------------------
BAD_IBAN = NamedRefusal(
    422, "bad_iban", "This IBAN is not valid ({why}): check it against your bank's statement."
)
BAD_BIC = NamedRefusal(
    422, "bad_bic", "This BIC is not valid ({why}): it has 8 or 11 letters and digits."
)
BIC_MISMATCH = NamedRefusal(
    422,
    "bic_mismatch",
    "This BIC ({bic}) is not that of the bank of this IBAN ({expected}): check both.",
)
BAD_HOLDER = NamedRefusal(
    422,
    "bad_holder",
    "Give the account holder's name, as the bank knows it (70 characters at most).",
)
BAD_STATEMENT = NamedRefusal(
    422,
    "bad_statement",
    "These bank details are not a signed statement of this node: sign them again ({why}).",
)
STATEMENT_EXPIRED = NamedRefusal(
    422, "statement_expired", "This signed statement has expired: sign the details again."
)
NOT_YOUR_DETAILS = NamedRefusal(
    403, "not_your_details", "You can only record bank details for yourself."
)
UNKNOWN_SIGNING_KEY = NamedRefusal(
    403, "unknown_signing_key", "The key that signed these details is not one of your device keys."
)
REVOKED_SIGNING_KEY = NamedRefusal(
    403,
    "revoked_signing_key",
    "The key that signed these details was revoked: use a live device key.",
)
BAD_DETAILS_SIGNATURE = NamedRefusal(
    403,
    "bad_details_signature",
    "The signature does not match these bank details: sign them again.",
)
STATEMENT_REPLAYED = NamedRefusal(
    409, "statement_replayed", "This signed statement was already used: sign the details again."
)
STALE_DETAILS = NamedRefusal(
    409,
    "stale_details",
    "Your bank details changed meanwhile (now version {current}): reload and sign again.",
)

# -- the treasurer's batches -----------------------------------------------------------------
DEBTOR_NOT_SET = NamedRefusal(
    409,
    "debtor_not_set",
    "The association's bank account is not set: set SOU_PAYOUTS_DEBTOR_NAME, "
    "SOU_PAYOUTS_DEBTOR_IBAN and SOU_PAYOUTS_DEBTOR_BIC ({why}).",
)
NOTHING_TO_PAY = NamedRefusal(
    409, "nothing_to_pay", "No pending reconversion has bank details to pay: no file was made."
)
BATCH_RACE = NamedRefusal(
    409,
    "batch_race",
    "Another transfer file took some of these reconversions meanwhile: reload the page.",
)
BATCH_ID_CONFLICT = NamedRefusal(
    409,
    "batch_id_conflict",
    "This request id already made transfer file {batch}, of other reconversions or by someone "
    "else: send a new id for a new file.",
)
NOT_READY = NamedRefusal(
    409,
    "not_ready",
    "These reconversions are not ready for a file (paid, rejected, in another file or without "
    "bank details): {ids}. Reload the page.",
)
UNKNOWN_BATCH = NamedRefusal(404, "unknown_batch", "There is no transfer batch with this id.")
BATCH_PAID = NamedRefusal(
    409, "batch_paid", "This batch was already marked paid (reference {bank_ref})."
)
BATCH_CANCELLED = NamedRefusal(409, "batch_cancelled", "This batch was cancelled.")
IN_BATCH = NamedRefusal(
    409,
    "in_payout_batch",
    "This reconversion is in the transfer batch {batch}: mark the batch paid, or cancel it first.",
)
DETAILS_HIDDEN = NamedRefusal(
    403,
    "bank_details_hidden",
    "Only the member, the treasurer and the association's operators may read bank details.",
)
