"""How password guessing is slowed without locking a member out.

Three counts of failed logins, kept in `login_failures`:

- per pair, an email tried from one address, or from one of the member's known devices:
  after `login_free_tries` failures each next try waits 2 s, 4 s, 8 s… up to
  `login_max_delay`; the pair is forgotten at its first success, or after a quiet
  `login_window`. Someone guessing a member's password is slowed; the member, at another
  address or on their own phone, is not.
- per email, from everywhere: past `login_email_ceiling` failures in the window, only the
  member's known devices may still try. Guessing from many addresses stops there, and the
  member logs in from the phone they always use.
- per address, every email: past `login_address_ceiling` failures in the window, only known
  devices may still try from there. A village sharing one carrier address or Wi-Fi is not
  stopped by one member's typos, a guesser trying many emails from one place is.

A known device is a browser that logged in to that account before: it holds a random
cookie (`DEVICE_COOKIE`), of which only the hash is kept (`login_devices`).

Every try is counted before its password is checked, in one transaction per try, and a
success takes its count back: tries sent all at once are judged one after the other, never
all against the same count.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from members import repository as repo
from members.errors import (
    ACCOUNT_GUARDED,
    LOGIN_TOO_SOON,
    NETWORK_GUARDED,
    TOO_MANY_JOINS,
    TOO_MANY_LOGINS,
)

if TYPE_CHECKING:
    from runtime.settings import Settings

DEVICE_COOKIE = "sou_device"
DEVICE_DAYS = 400  # a device used once a year stays known
DEVICES_KEPT = 20  # per member, the most recently used


@dataclass(frozen=True)
class Attempt:
    """One try at logging in: which email, from which network, on which known device."""

    email: str
    network: str
    # The hash of the device cookie presented, if the account knows that device: any
    # other cookie is ignored (a guesser making up new ones would get new pairs).
    device: bytes | None

    @property
    def pair(self) -> str:
        where = f"device:{self.device.hex()}" if self.device else f"ip:{self.network}"
        # Hashed: an email and an IPv6 network together may be longer than the column.
        return "pair:" + hashlib.sha256(f"{self.email} {where}".encode()).hexdigest()

    @property
    def subjects(self) -> tuple[str, str, str]:
        return self.pair, f"email:{self.email}", f"ip:{self.network}"


def network_of(address: str) -> str:
    """Where a try comes from, for counting: the address; for IPv6 its /64, which one
    subscriber holds whole."""
    try:
        found = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]  # not an IP address (a test client): counted as it is
    if isinstance(found, ipaddress.IPv6Address):
        if found.ipv4_mapped is not None:
            return str(found.ipv4_mapped)
        return str(ipaddress.IPv6Network((found, 64), strict=False))
    return str(found)


def device_hash(token: str | None) -> bytes | None:
    if not token or len(token) > 100:
        return None
    return hashlib.sha256(token.encode()).digest()


def claim(conn: Connection, settings: Settings, attempt: Attempt, now: int) -> None:
    """Count this try before its password is checked, or refuse it (429, nothing counted)
    if its pair must still wait or, on a device the account does not know, a ceiling is
    reached."""
    pair, email, network = attempt.subjects
    window = settings.login_window * 1000
    counts = repo.lock_failures(conn, sorted(attempt.subjects), now)
    if counts[pair].blocked_until_ms > now:
        wait = -(-(counts[pair].blocked_until_ms - now) // 1000)
        raise _wait_refusal(wait)
    if attempt.device is None:
        for subject, ceiling, refusal in (
            (email, settings.login_email_ceiling, ACCOUNT_GUARDED),
            (network, settings.login_address_ceiling, NETWORK_GUARDED),
        ):
            count = counts[subject]
            if count.window_start_ms > now - window and count.count >= ceiling:
                wait = -(-(count.window_start_ms + window - now) // 1000)
                raise refusal(minutes=-(-wait // 60), retry_after=wait)
    tries = _after_quiet(counts[pair], now, window) + 1
    repo.set_failures(conn, pair, tries, now, now + _delay(settings, tries) * 1000)
    for subject in (email, network):
        _count_one_more(conn, subject, counts[subject], now, window)


def count_join(conn: Connection, settings: Settings, address: str, now: int) -> None:
    """Count a sign-up from this address, or refuse it (429) past `join_address_ceiling` in
    the window: each costs a password hash, as a login does. A market-day stall signing up
    the village from one Wi-Fi stays well under it."""
    subject, window = f"join:{network_of(address)}", settings.login_window * 1000
    count = repo.lock_failures(conn, [subject], now)[subject]
    if count.window_start_ms > now - window and count.count >= settings.join_address_ceiling:
        wait = -(-(count.window_start_ms + window - now) // 1000)
        raise TOO_MANY_JOINS(minutes=-(-wait // 60), retry_after=wait)
    _count_one_more(conn, subject, count, now, window)


def count_in_window(conn: Connection, subject: str, now: int, window_ms: int) -> int:
    """Count one more try of `subject` in its window (locked until the transaction ends);
    how many it had in the window before this one. Other limits of the members' feature
    (asking for reset links, guessing one's current password) count with this too."""
    count = repo.lock_failures(conn, [subject], now)[subject]
    _count_one_more(conn, subject, count, now, window_ms)
    return count.count if count.window_start_ms > now - window_ms else 0


def _count_one_more(
    conn: Connection, subject: str, count: repo.Failures, now: int, window: int
) -> None:
    """One more in the subject's window, or the first of a new window if that one is over."""
    if count.window_start_ms > now - window:
        repo.set_failures(conn, subject, count.count + 1, count.window_start_ms, 0)
    else:
        repo.set_failures(conn, subject, 1, now, 0)


def _after_quiet(pair: repo.Failures, now: int, window: int) -> int:
    """The pair's failures so far, none if it stayed quiet for a window after its wait."""
    return pair.count if pair.blocked_until_ms + window > now else 0


def _delay(settings: Settings, tries: int) -> int:
    """Seconds to wait after this many failures in a row."""
    if tries < settings.login_free_tries:
        return 0
    return min(2 << min(tries - settings.login_free_tries, 30), settings.login_max_delay)


def _wait_refusal(seconds: int) -> Exception:
    if seconds < 120:
        return LOGIN_TOO_SOON(seconds=seconds, retry_after=seconds)
    return TOO_MANY_LOGINS(minutes=-(-seconds // 60), retry_after=seconds)


def settle(conn: Connection, attempt: Attempt, member_id: str, now: int) -> str | None:
    """The password was right: take the try's count back, forget the pair's failures, and
    know this device. A new device cookie to set, or None if the one presented is kept."""
    pair, email, network = attempt.subjects
    # In the order `claim` locks them: two logins never wait for each other.
    repo.take_back_failure(conn, email)
    repo.take_back_failure(conn, network)
    # Kept at zero rather than deleted: a try of the same pair at this moment may have
    # just made the row, and is about to lock it (old rows go: `forget_old_logins`).
    repo.set_failures(conn, pair, 0, now, 0)
    if attempt.device is not None:
        repo.touch_login_device(conn, attempt.device, now)
        return None
    token = secrets.token_urlsafe(32)
    repo.add_login_device(conn, device_hash(token) or b"", member_id, now, DEVICES_KEPT)
    return token
