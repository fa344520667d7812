"""The tool library's refusals: each code with its HTTP status and its one message (French in
locale/fr/LC_MESSAGES/tools.po)."""

from __future__ import annotations

from web.refusals import NamedRefusal

BAD_DEPOSIT = NamedRefusal(
    422, "bad_deposit", "The deposit must be more than zero and at most {most}."
)
UNKNOWN_LOAN = NamedRefusal(404, "unknown_loan", "There is no such loan.")
NOT_THE_DEPOSIT = NamedRefusal(
    422,
    "not_the_deposit",
    "The deposit must be an escrow payment of {deposit} from your wallet to this loan's escrow.",
)
LOAN_NOT_OUT = NamedRefusal(409, "loan_not_out", "This loan is {state}: nothing to do.")
NO_KEEPER = NamedRefusal(409, "no_keeper", "No keeper is set to receive lost tools' deposits.")
BAD_SIGNATURE_ENCODING = NamedRefusal(
    422, "bad_signature_encoding", "The signature is not base64url."
)
