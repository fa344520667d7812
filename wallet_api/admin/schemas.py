"""What the admin API answers (Pydantic)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from members.schemas import MemberOut


class MemberListed(MemberOut):
    membership_current: bool = Field(description="Paid up to a day not yet past.")
    frozen_reason: str | None = Field(description="Why the wallet is frozen, if it is.")


class MembersPage(BaseModel):
    items: list[MemberListed]
    total: int = Field(description="Members matching, on every page.")
    page: int
    per_page: int
    pages: int
