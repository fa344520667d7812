"""What the account's API reads and answers: a password change, open sessions, reset
links."""

from __future__ import annotations

from pydantic import BaseModel, Field

from members.schemas import Email, Password
from web.schemas import Strict

# A session as its member's list names it (`service.session_id`); a reset link's token.
SESSION_ID = r"^[0-9a-f]{20}$"
RESET_TOKEN = r"^[A-Za-z0-9_-]{43}$"


class PasswordChange(Strict):
    current_password: str = Password
    new_password: str = Password


class PasswordChanged(BaseModel):
    ended_sessions: int = Field(description="Your other sessions, ended.")


class SessionShown(BaseModel):
    id: str = Field(description="Names the session to end it; never its secret.")
    created_ms: int
    last_seen_ms: int = Field(description="Its last use, to within a few minutes.")
    expires_ms: int = Field(description="When it ends if unused meanwhile.")
    device: str | None = Field(None, description="Browser and system, e.g. Firefox, Android.")
    address: str | None = None
    current: bool = Field(description="The session of this request.")


class SessionsEnded(BaseModel):
    ended_sessions: int


class ResetAsked(Strict):
    email: str = Email


class ResetUse(Strict):
    password: str = Password


class ResetLinkOut(BaseModel):
    member: str = Field(description="The member whose password the link resets.")
    url: str = Field(description="The link (and QR code) to open on the member's phone.")
    expires_ms: int = Field(description="Until when it may be used, once.")
