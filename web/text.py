"""One line of visible text, for the fields people type and others read (names, labels,
memos): the ledger's check (`ledger.text`) as a Pydantic type for the API's bodies and as a
refusal for the pages' forms, both a 422 naming the field."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from ledger.text import HIDDEN_REASON, hidden_character
from web.refusals import Phrase, Refusal


def _visible(value: str) -> str:
    if hidden_character(value) is not None:
        raise ValueError(HIDDEN_REASON)
    return value


# Use with the field's other bounds: `label: VisibleLine = Field(max_length=80)`.
VisibleLine = Annotated[str, AfterValidator(_visible)]


def check_visible(field: str, value: str) -> None:
    """Refuse (422, the field named) a text holding a control or invisible character."""
    character = hidden_character(value)
    if character is not None:
        raise Refusal(
            422,
            "invalid_request",
            "The field {field} is not valid: {reason}.",
            field=field,
            reason=Phrase(HIDDEN_REASON, HIDDEN_REASON),
            character=character,
        )
