"""When and where each session is used: what ends one left unused, and what its member's
list of sessions shows (the browser, the address).

The session is looked up on every request (`members.access`, remembered two seconds per
caller): writing its last use each time would make every request a write. It is written
when it is older than a tenth of the idle time (five minutes at most), in a short
transaction of its own; a busy database only delays it to a later request.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import RowMapping
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from members.account.repository import touch_session

if TYPE_CHECKING:
    from runtime.node import Node

log = logging.getLogger(__name__)

MAX_TOUCH_EVERY_MS = 5 * 60_000
USER_AGENT_CHARS = 200
ADDRESS_CHARS = 64


@dataclass(frozen=True)
class SeenFrom:
    """The browser (its User-Agent) and address a request came from."""

    user_agent: str
    address: str

    @classmethod
    def of(cls, request: Request) -> SeenFrom:
        agent = request.headers.get("user-agent", "")
        agent = "".join(ch for ch in agent if ch.isprintable())[:USER_AGENT_CHARS]
        address = request.client.host if request.client else ""
        return cls(agent, address[:ADDRESS_CHARS])

    def columns(self) -> dict[str, Any]:
        return {"user_agent": self.user_agent, "address": self.address}


def touch_every_ms(idle_minutes: int) -> int:
    """How stale a session's last use may be before it is written again."""
    return min(idle_minutes * 6_000, MAX_TOUCH_EVERY_MS)


def note_seen(
    node: Node, token_hash: bytes, row: RowMapping, seen_from: SeenFrom | None, now: int
) -> None:
    """Write the session's last use, if it is stale or its browser still unknown."""
    stale = row["last_seen_ms"] <= now - touch_every_ms(node.settings.session_idle_minutes)
    unknown = row["user_agent"] is None and seen_from is not None
    if not (stale or unknown):
        return
    try:
        with node.engine.begin() as conn:
            touch_session(conn, token_hash, now, seen_from.columns() if seen_from else {})
    except SQLAlchemyError as exc:  # the request goes on: a later one writes it
        log.warning("could not note a session's last use: %s", type(exc).__name__)


# What a session's list names a browser by: the first that matches, in order (an Edge or
# Opera User-Agent names Chrome too, a Chrome one names Safari).
_BROWSERS = (
    ("Edge", re.compile(r"Edg(e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/|Chromium/")),
    ("Safari", re.compile(r"Safari/")),
)
_SYSTEMS = (
    ("Android", re.compile(r"Android")),
    ("iPhone", re.compile(r"iPhone")),
    ("iPad", re.compile(r"iPad")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Macintosh|Mac OS X")),
    ("Linux", re.compile(r"Linux|X11")),
)


def device_name(user_agent: str | None) -> str | None:
    """ "Firefox, Android", "Chrome, Windows"...; None when nothing is recognised (the
    page then says "unknown browser")."""
    if not user_agent:
        return None
    browser = next((name for name, found in _BROWSERS if found.search(user_agent)), None)
    system = next((name for name, found in _SYSTEMS if found.search(user_agent)), None)
    named = [part for part in (browser, system) if part]
    return ", ".join(named) if named else None
