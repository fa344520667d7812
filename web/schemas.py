"""What every feature's API bodies share (Pydantic): refusing unknown fields, one line of
typed text, and an order signed on a member's device."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Text people type: no control characters (PostgreSQL cannot even store a NUL byte).
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
# Any text, on several lines too, but no NUL character: PostgreSQL stores none, nor even
# compares one, and refuses the whole statement.
NO_NUL = r"^[^\x00]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignedOrderIn(Strict):
    order: dict[str, Any]
    sig: str = Field(min_length=1, max_length=100)
