"""Refusals: what a request was refused for, in the reader's language, as a JSON problem
(`error`, `message`, and the figures the message names) with its HTTP status. The ledger's
named errors and the request validator's reasons are written here once for every feature.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from ledger.errors import LedgerError
from web.i18n import gettext_for, language_of, money


class Refusal(Exception):
    """A request the node refuses: an HTTP status, a stable code, and an English message
    (a gettext msgid, with `{name}` placeholders filled from params after translation)."""

    def __init__(self, status: int, code: str, message: str, **params: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.params = status, code, message, params

    def text(self, request: Request) -> str:
        return self.said(gettext_for(request).gettext, language_of(request))

    def said(self, gettext: Callable[[str], str], lang: str) -> str:
        """The message in the language of `gettext` (`lang` writes its amounts)."""
        params = {k: _shown(k, v, gettext, lang) for k, v in self.params.items()}
        return gettext(self.message).format(**params)


@dataclass(frozen=True)
class NamedRefusal:
    """A refusal declared once, in its slice's `errors.py`: the HTTP status, the stable code
    and the one English message (a msgid) of that code. Called with the figures its message
    names, it gives the Refusal to raise: `raise errors.WALLET_FROZEN(reason=...)`."""

    status: int
    code: str
    message: str

    def __call__(self, **params: Any) -> Refusal:
        return Refusal(self.status, self.code, self.message, **params)


class Problem(BaseModel):
    """The body of every refusal (4xx) and of 503 (busy: send the same request again)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})
    error: str = Field(description="A stable code naming the reason, e.g. insufficient_funds.")
    message: str = Field(description="The reason in plain words, in the reader's language.")


# A refusal's body, documented as JSON by reference rather than as a model: FastAPI builds
# a validator for every model a route documents, on every route of every app it serves.
PROBLEM_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}

# Documented on every operation (other fields of the body are the figures of the message).
REFUSALS: dict[int | str, dict[str, Any]] = {
    "4XX": {"content": PROBLEM_JSON, "description": "Refused: nothing was changed."},
    "503": {"content": PROBLEM_JSON, "description": "Busy: send the same request again later."},
}


# What FastAPI documents for a request it finds invalid where a route declares no 4XX; the
# node answers those with a Problem too (install_error_handlers).
FASTAPI_INVALID = "#/components/schemas/HTTPValidationError"


def document_problem(app: FastAPI) -> None:
    """Document REFUSALS on every operation of the app's OpenAPI document (a route may say
    more of its own), with the schema PROBLEM_JSON refers to."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    answers = operation.setdefault("responses", {})
                    if FASTAPI_INVALID in str(answers.get("422")):
                        del answers["422"]
                    for status, refusal in REFUSALS.items():
                        answers.setdefault(str(status), copy.deepcopy(refusal))
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            if schemas.pop("HTTPValidationError", None) is not None:
                schemas.pop("ValidationError", None)  # its part
            schemas["Problem"] = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


def _shown(name: str, value: Any, gettext: Any, lang: str) -> Any:
    if isinstance(value, Phrase):
        return gettext(value.msgid).format(**value.figures)
    if isinstance(value, Money):
        return money(int(value), lang, value.currency)
    if name == "reason" and isinstance(value, str):
        return gettext(value)  # an English phrase: a ledger reason, a frozen wallet's cause
    return value


# Ledger refusals as HTTP: malformed -> 422, not allowed -> 403, clashes with state -> 409.
LEDGER_STATUS = {
    "invalid_order": 422,
    "wrong_node": 422,
    "order_expired": 422,
    "expiry_too_far": 422,
    "unknown_key": 403,
    "revoked_key": 403,
    "bad_signature": 403,
    "wrong_signer": 403,
    "replayed_nonce": 409,
    "idempotency_conflict": 409,
    "unknown_account": 404,
    "currency_mismatch": 422,
    "insufficient_funds": 409,
    "backing_violation": 409,
    "unknown_transfer": 404,
    "invalid_reference": 409,
    "key_exists": 409,
    "already_used": 409,
    "node_busy": 503,
    "refused_by_database": 409,
}
# The message shown to people for each ledger refusal (msgids; French in the catalogue).
LEDGER_MESSAGES = {
    "invalid_order": "The order is not valid: {field} {reason}.",
    "wrong_node": "This order was made for another node.",
    "order_expired": "This order has expired; make a new one.",
    "expiry_too_far": "This order is valid for too long.",
    "unknown_key": "This device key is not registered.",
    "revoked_key": "This device key has been revoked.",
    "bad_signature": "The signature does not match the order.",
    "wrong_signer": "This key may not sign this order.",
    "replayed_nonce": "This order was already used.",
    "idempotency_conflict": "This request id was already used for a different request.",
    "unknown_account": "There is no such account.",
    "currency_mismatch": "The currency does not match the account.",
    "insufficient_funds": "The balance is too low for this amount.",
    "backing_violation": "The reserve would not cover the units in circulation.",
    "unknown_transfer": "There is no such transfer.",
    "invalid_reference": "The referenced transfer does not allow this.",
    "key_exists": "This device key was registered before: the new device must make a new one.",
    "already_used": "This code or note was already used.",
    "node_busy": "The node is busy; try again in a moment.",
    "refused_by_database": "The database refused this transfer.",
}
# Reasons the ledger gives for malformed fields, as people read them: the ledger's English
# phrase (a pattern, its figures captured) -> the msgid shown, with those figures.
FIELD_REASONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), msgid)
    for pattern, msgid in (
        (r"must be a member's account", "must be a member"),
        (r"a member cannot pay their own account", "cannot be yourself"),
        (r"is missing", "is missing"),
        (r"must be a whole number \(of cents for an amount\)", "must be a whole number of cents"),
        (r"must be at least (?P<n>-?\d+)", "must be at least {n}"),
        (r"must be at most (?P<n>-?\d+)", "must be at most {n}"),
        (r"must be at most (?P<n>\d+) characters", "must be at most {n} characters"),
        (r"must be non-empty text", "must be some text"),
        (r"must not contain control characters", "must not contain control characters"),
        (
            r"must not contain control or invisible characters",
            "must not contain control or invisible characters",
        ),
        (r"must be (?P<code>[A-Z][A-Z0-9]{2,7})", "must be {code}"),
        (r"is not a field of an? \w+ order", "is not a field of this order"),
        (r".* is not an account code of this ledger", "is not an account of this node"),
        (r"must be an account code", "must be an account"),
        (r"must not exceed the card top-up", "must not exceed the card top-up"),
    )
)
# The order's fields, as people name them (msgids).
FIELD_NAMES = {
    "amount": "the amount",
    "to": "the recipient",
    "from": "the payer",
    "currency": "the currency",
    "memo": "the note",
    "expires": "the expiry",
    "fee": "the fee",
    "cause_fee": "the cause's fee",
    # and the fields of the forms people fill in most (a line of a list is named by its field)
    "quantity": "the quantity",
    "goal": "the goal",
    "days": "the duration",
    "title": "the title",
    "description": "the description",
    "minimum": "the minimum",
    "lines": "the lines",
}


def field_phrase(loc: Sequence[Any]) -> str:
    """How a refusal names the field at pydantic's `loc` (without its "body" or "query"):
    by its name when people have one for it, the last named part of a path such as
    `lines.0.quantity` standing for it; else the path as it is."""
    where = ".".join(str(part) for part in loc) or "body"
    named = next((str(p) for p in reversed(loc) if not isinstance(p, int)), where)
    return Phrase(where, FIELD_NAMES[named]) if named in FIELD_NAMES else where


class Phrase(str):
    """An English phrase in a refusal's params (as the JSON answer gives it) that the
    message shows translated: `msgid` filled with `figures` in the reader's language."""

    msgid: str
    figures: dict[str, str]

    def __new__(cls, english: str, msgid: str, **figures: str) -> Phrase:
        value = super().__new__(cls, english)
        value.msgid, value.figures = msgid, figures
        return value


# Pydantic's reasons for refusing a request field, by error type, as msgids (the English
# message pydantic wrote stays in the JSON answer's `reason`; the sentence is translated).
VALIDATION_REASONS = {
    "missing": "is missing",
    "string_too_short": "must have at least {n} characters",
    "string_too_long": "must be at most {n} characters",
    "too_short": "must have at least {n} items",
    "too_long": "must have at most {n} items",
    "greater_than_equal": "must be at least {n}",
    "less_than_equal": "must be at most {n}",
    "greater_than": "must be more than {n}",
    "less_than": "must be less than {n}",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "string_type": "must be text",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_pattern_mismatch": "is not written as expected",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "date_type": "must be a date such as 2026-12-31",
    "date_parsing": "must be a date such as 2026-12-31",
    "date_from_datetime_parsing": "must be a date such as 2026-12-31",
    "date_from_datetime_inexact": "must be a date such as 2026-12-31",
    "json_invalid": "is not valid JSON",
    "json_type": "is not valid JSON",
    "extra_forbidden": "is not expected here",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
}
# Which of pydantic's `ctx` figures a reason shows, under the name its msgid uses.
_FIGURES = dict.fromkeys(("max_length", "min_length", "ge", "le", "gt", "lt"), "n")
_FIGURES["expected"] = "expected"


def validation_reason(error: dict[str, Any]) -> str:
    """The reason pydantic gave for refusing a field, to be shown in the reader's language."""
    english = str(error.get("msg", "invalid"))
    msgid = VALIDATION_REASONS.get(str(error.get("type")))
    if msgid is None:  # our own validators: "Value error, must be ..."
        return _reason(english.removeprefix("Value error, "))
    context = error.get("ctx") or {}
    figures = {_FIGURES[k]: str(v) for k, v in context.items() if k in _FIGURES}
    if msgid.startswith("must have at least") and figures.get("n") == "1":
        msgid = "must not be empty"
    try:
        msgid.format(**figures)
    except (KeyError, IndexError):  # a figure pydantic did not give: keep its own words
        return english
    return Phrase(english, msgid, **figures)


def _reason(english: str) -> str:
    for pattern, msgid in FIELD_REASONS:
        found = pattern.fullmatch(english)
        if found:
            return Phrase(english, msgid, **found.groupdict())
    return english


class Money(int):
    """Cents in a refusal's params: an integer in the JSON answer, written the reader's way
    in the message (1 234,50 EUR in French, 1,234.50 EUR in English)."""

    currency: str

    def __new__(cls, cents: int, currency: str = "EUR") -> Money:
        value = super().__new__(cls, cents)
        value.currency = currency
        return value


def refusal_of(exc: LedgerError) -> Refusal:
    params = {k: v for k, v in exc.params.items() if isinstance(v, str | int)}
    message = LEDGER_MESSAGES.get(exc.code, "The ledger refused this request.")
    if exc.code == "invalid_order":
        params.update(_invalid_field(str(exc.params.get("field", "")), exc.message))
    return Refusal(LEDGER_STATUS.get(exc.code, 422), exc.code, message, **params)


def ledger_reason(code: str, english: str, field: str | None = None) -> Refusal:
    """A ledger refusal as a finding of the audit quotes it, from what the finding keeps (its
    code, English message, and the field of a malformed order): the field and what is wrong
    with it, else the refusal's sentence; the English message if the code is not known."""
    if code == "invalid_order" and field is not None:
        return Refusal(422, code, "{field} {reason}", **_invalid_field(field, english))
    return Refusal(LEDGER_STATUS.get(code, 422), code, LEDGER_MESSAGES.get(code, english))


def _invalid_field(field: str, english: str) -> dict[str, str]:
    """The field an InvalidOrder names and its reason ("field: reason"), as people read them."""
    named = Phrase(field, FIELD_NAMES[field]) if field in FIELD_NAMES else field
    return {"field": named, "reason": _reason(english.split(": ", 1)[-1])}
