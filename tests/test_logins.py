"""Logging in under attack: a guesser is slowed, the member is not locked out.

What `members.logins` promises, tried from several addresses and devices with a clock the
test moves: growing waits per (email, address) pair, the per-email ceiling that spares the
member's known devices, the looser per-address ceiling, tries sent all at once, and the
same work (one password hash) whether or not the email is a member's.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

import members.access
import members.service
from members.logins import DEVICE_COOKIE, Attempt, network_of
from tests.conftest import PASSWORD, Clock
from tests.people import Person, join, operator
from tests.test_wallet_api import refused_in_both_languages


@pytest.fixture
def camille(site: TestClient) -> Person:
    return join(site, "Camille", key=False)


def browser(site: TestClient, address: str = "192.0.2.10") -> TestClient:
    """A browser of its own at `address` (as the node sees it)."""
    return TestClient(site.app, base_url=str(site.base_url), client=(address, 40000))


def log_in(client: TestClient, email: str, password: str, lang: str = "en") -> Any:
    return client.post(
        "/api/v1/session",
        json={"email": email, "password": password},
        headers={"Accept-Language": lang},
    )


def leave(client: TestClient) -> TestClient:
    """The browser closed: its session is gone, its known-device cookie stays."""
    client.cookies.delete("sou_session")
    client.cookies.delete("sou_csrf")
    return client


def fail(client: TestClient, email: str, times: int = 1) -> None:
    for _ in range(times):
        assert log_in(client, email, "not the password").status_code == 401


def test_a_pair_waits_longer_after_each_failure_then_the_right_password_works(
    site: TestClient, camille: Person, clock: Clock
) -> None:
    settings = site.app.state.node.settings  # type: ignore[attr-defined]
    email, guesser = camille.member["email"], browser(site)
    fail(guesser, email, settings.login_free_tries)
    for wait in (2, 4, 8):
        refused_in_both_languages(
            lambda lang: log_in(guesser, email, PASSWORD, lang),  # even the right one
            429,
            "login_too_soon",
            f"Several wrong passwords in a row: wait {wait} seconds and try again.",
            retry_after=wait,
        )
        assert log_in(guesser, email, PASSWORD).headers["retry-after"] == str(wait)
        clock.advance(wait - 1)
        assert log_in(guesser, email, PASSWORD).status_code == 429  # not yet
        clock.advance(1)
        fail(guesser, email)
    clock.advance(16)
    assert log_in(guesser, email, PASSWORD).status_code == 200
    fail(browser(site), email, settings.login_free_tries)  # a success forgot the failures


def test_the_wait_grows_to_its_ceiling_and_a_quiet_window_forgets_it(
    site: TestClient, camille: Person, clock: Clock
) -> None:
    settings = site.app.state.node.settings  # type: ignore[attr-defined]
    email, guesser = camille.member["email"], browser(site)
    fail(guesser, email, settings.login_free_tries)
    waits = []
    for _ in range(12):
        answer = log_in(guesser, email, "not the password")
        assert answer.status_code == 429
        waits.append(int(answer.headers["retry-after"]))
        clock.advance(waits[-1])
        fail(guesser, email)
    assert waits[:4] == [2, 4, 8, 16]
    assert waits[-1] == settings.login_max_delay
    longest = log_in(guesser, email, PASSWORD)
    assert longest.json()["error"] == "too_many_logins"  # said in minutes
    assert longest.json()["minutes"] == settings.login_max_delay // 60
    clock.advance(settings.login_max_delay + settings.login_window)
    fail(guesser, email, settings.login_free_tries)  # free tries again


def test_a_guesser_elsewhere_does_not_slow_the_member(
    site: TestClient, camille: Person, clock: Clock
) -> None:
    settings = site.app.state.node.settings  # type: ignore[attr-defined]
    email, guesser = camille.member["email"], browser(site, "198.51.100.7")
    fail(guesser, email, settings.login_free_tries)
    assert log_in(guesser, email, PASSWORD).status_code == 429
    assert log_in(browser(site, "203.0.113.20"), email, PASSWORD).status_code == 200


def test_many_addresses_guessing_one_email_leave_only_known_devices_in(
    site: TestClient, camille: Person, clock: Clock
) -> None:
    settings = site.app.state.node.settings  # type: ignore[attr-defined]
    email = camille.member["email"]
    phone = browser(site, "203.0.113.20")
    assert log_in(phone, email, PASSWORD).status_code == 200
    assert DEVICE_COOKIE in leave(phone).cookies
    for n in range(settings.login_email_ceiling):
        fail(browser(site, f"198.51.100.{n + 1}"), email)
    new_laptop = browser(site, "203.0.113.20")  # the member's own address, a new browser
    refused_in_both_languages(
        lambda lang: log_in(new_laptop, email, PASSWORD, lang),
        429,
        "account_guarded",
        "Someone has tried many wrong passwords on this account. To protect it, it can "
        f"only be logged in to from a device that was used before, for "
        f"{settings.login_window // 60} min.",
    )
    made_up = browser(site, "198.51.100.99")
    made_up.cookies.set(DEVICE_COOKIE, "a cookie no login ever gave")
    assert log_in(made_up, email, PASSWORD).json()["error"] == "account_guarded"
    answer = log_in(phone, email, PASSWORD)
    assert answer.status_code == 200, answer.text
    assert DEVICE_COOKIE not in answer.cookies  # known: kept as it is
    clock.advance(settings.login_window)
    assert log_in(new_laptop, email, PASSWORD).status_code == 200


def test_a_known_device_of_another_account_is_not_known_to_this_one(
    site: TestClient, camille: Person, clock: Clock
) -> None:
    settings = site.app.state.node.settings  # type: ignore[attr-defined]
    dominique = join(site, "Dominique", key=False)
    shared = browser(site)
    assert log_in(shared, dominique.member["email"], PASSWORD).status_code == 200
    leave(shared)
    email = camille.member["email"]
    for n in range(settings.login_email_ceiling):
        fail(browser(site, f"198.51.100.{n + 1}"), email)
    assert log_in(shared, email, PASSWORD).json()["error"] == "account_guarded"


def test_one_address_trying_many_emails_is_stopped_but_known_devices_there_are_not(
    site: TestClient, camille: Person, clock: Clock
) -> None:
    settings = site.app.state.node.settings  # type: ignore[attr-defined]
    settings.login_address_ceiling = 12
    email = camille.member["email"]
    cafe = "192.0.2.77"
    regular = browser(site, cafe)
    assert log_in(regular, email, PASSWORD).status_code == 200
    leave(regular)
    for n in range(settings.login_address_ceiling):
        fail(browser(site, cafe), f"someone{n}@village.test")
    newcomer = browser(site, cafe)
    refused_in_both_languages(
        lambda lang: log_in(newcomer, email, PASSWORD, lang),
        429,
        "network_guarded",
        f"Too many failed logins from this network. Wait {settings.login_window // 60} min, "
        "or log in from a device used before.",
    )
    assert log_in(regular, email, PASSWORD).status_code == 200
    assert log_in(browser(site, "192.0.2.78"), email, PASSWORD).status_code == 200


def test_tries_sent_at_once_are_judged_one_after_the_other(
    site: TestClient, camille: Person, clock: Clock
) -> None:
    settings = site.app.state.node.settings  # type: ignore[attr-defined]
    email = camille.member["email"]
    guessers = [browser(site) for _ in range(16)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda c: log_in(c, email, "not the password"), guessers))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * settings.login_free_tries + [429] * (16 - settings.login_free_tries)


def test_a_right_password_sent_many_times_at_once_opens_sessions_and_counts_nothing(
    site: TestClient, camille: Person, clock: Clock
) -> None:
    settings = site.app.state.node.settings  # type: ignore[attr-defined]
    email = camille.member["email"]
    at_once = settings.login_free_tries  # a double click, a reload: never more
    clients = [browser(site) for _ in range(at_once)]
    with ThreadPoolExecutor(at_once) as pool:
        answers = list(pool.map(lambda c: log_in(c, email, PASSWORD), clients))
    assert [answer.status_code for answer in answers] == [200] * at_once
    fail(browser(site), email, settings.login_free_tries)  # no failure was left behind


NEW = "a new password, long enough"


class CountedHasher:
    """The node's password hasher, telling which hashes it checked passwords against."""

    def __init__(self, hasher: Any) -> None:
        self.hasher, self.checked = hasher, []  # type: list[str]

    def hash(self, password: str) -> str:
        return str(self.hasher.hash(password))

    def verify(self, stored: str, password: str) -> bool:
        self.checked.append(stored)
        return bool(self.hasher.verify(stored, password))


@pytest.fixture
def hashes_checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    counted = CountedHasher(members.access.hasher)
    monkeypatch.setattr(members.access, "hasher", counted)
    return counted.checked


def test_an_unknown_email_costs_one_password_hash_as_a_members_does(
    site: TestClient, camille: Person, clock: Clock, hashes_checked: list[str]
) -> None:
    for email in (camille.member["email"], "nobody@village.test"):
        fail(browser(site, "192.0.2.1"), email)
    assert len(hashes_checked) == 2  # one each
    assert all(stored.startswith("$argon2id$") for stored in hashes_checked)
    # The stand-in hash is as costly as a member's: made with the same parameters.
    member_hash, unknown_hash = hashes_checked
    assert member_hash.split("$")[3] == unknown_hash.split("$")[3]


def test_a_new_device_gets_a_lasting_cookie_that_only_the_node_reads(
    site: TestClient, camille: Person
) -> None:
    for base, secure in (("http://127.0.0.1", False), ("https://127.0.0.1", True)):
        client = TestClient(site.app, base_url=base)
        answer = log_in(client, camille.member["email"], PASSWORD)
        cookie = next(c for c in answer.headers.get_list("set-cookie") if DEVICE_COOKIE in c)
        attributes = cookie.lower()
        assert "httponly" in attributes and "samesite=lax" in attributes
        assert "max-age=34560000" in attributes
        assert ("secure" in attributes) == secure


def test_old_failures_and_devices_unused_for_long_are_forgotten(
    site: TestClient, camille: Person, clock: Clock
) -> None:
    node = site.app.state.node  # type: ignore[attr-defined]
    email = camille.member["email"]
    phone = browser(site, "203.0.113.20")
    assert log_in(phone, email, PASSWORD).status_code == 200
    fail(browser(site), email, 2)
    members.service.forget_old_logins(node, clock())
    with node.ledger.reading() as conn:  # the email, both addresses, both pairs
        assert conn.exec_driver_sql("SELECT count(*) FROM login_failures").scalar() == 5
        devices = conn.exec_driver_sql("SELECT count(*) FROM login_devices").scalar()
        assert devices == 2  # this phone's, and the one Camille joined with
    clock.advance(400 * 86_400 + 1)
    members.service.forget_old_logins(node, clock())
    with node.ledger.reading() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM login_failures").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM login_devices").scalar() == 0


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("192.0.2.9", "192.0.2.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::2", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.9", "192.0.2.9"),
        ("testclient", "testclient"),
    ],
)
def test_ipv6_addresses_count_by_their_64_prefix(address: str, network: str) -> None:
    assert network_of(address) == network


def test_pair_subjects_fit_the_column_whatever_the_email() -> None:
    email = "a" * 64 + "@" + "b" * 185 + ".org"
    attempt = Attempt(email, network_of("2001:db8::1"), None)
    assert all(len(subject) <= 300 for subject in attempt.subjects)


# -- sign-ups and API tokens: each has its ceiling -------------------------------------------


def sign_up(client: TestClient, n: int, lang: str = "en") -> Any:
    body = {"display_name": f"Newcomer {n}", "email": f"new{n}@village.test", "password": PASSWORD}
    return client.post("/api/v1/members", json=body, headers={"Accept-Language": lang})


def test_sign_ups_from_one_address_have_a_ceiling_per_window(
    site: TestClient, clock: Clock
) -> None:
    settings = site.app.state.node.settings  # type: ignore[attr-defined]
    settings.join_address_ceiling = 4
    stall = browser(site, "192.0.2.50")
    for n in range(4):
        assert sign_up(stall, n).status_code == 201
    refused_in_both_languages(
        lambda lang: sign_up(stall, 99, lang),
        429,
        "too_many_joins",
        f"Many accounts were just made from this network. Wait {settings.login_window // 60} "
        "min and try again, or ask an exchange office.",
        retry_after=settings.login_window,
    )
    assert sign_up(browser(site, "192.0.2.51"), 5).status_code == 201  # another address
    with site.app.state.node.ledger.reading() as conn:  # type: ignore[attr-defined]
        made = conn.exec_driver_sql("SELECT email FROM members").scalars()
        assert len([email for email in made if email.startswith("new")]) == 5  # not the refused
    clock.advance(settings.login_window)
    assert sign_up(stall, 6).status_code == 201


def test_sign_ups_sent_at_once_stop_at_the_ceiling(site: TestClient, clock: Clock) -> None:
    settings = site.app.state.node.settings  # type: ignore[attr-defined]
    settings.join_address_ceiling = 3
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: sign_up(browser(site), n), range(8)))
    assert sorted(answer.status_code for answer in answers) == [201] * 3 + [429] * 5


def test_a_member_holds_at_most_so_many_api_tokens_even_made_at_once(site: TestClient) -> None:
    camille = join(site, "Camille", key=False)
    make = {"scope": "wallet", "label": "script"}
    for _ in range(members.service.MAX_API_TOKENS - 4):
        assert camille.post("/api/v1/me/tokens", json=make).status_code == 201
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: camille.post("/api/v1/me/tokens", json=make), range(8)))
    assert sorted(answer.status_code for answer in answers) == [201] * 4 + [409] * 4

    def one_more(lang: str) -> Any:
        headers = {**camille.headers(), "Accept-Language": lang}
        return camille.client.post("/api/v1/me/tokens", json=make, headers=headers)

    refused_in_both_languages(
        one_more,
        409,
        "too_many_tokens",
        f"You have {members.service.MAX_API_TOKENS} API tokens: revoke one you no longer use "
        "first.",
        count=members.service.MAX_API_TOKENS,
    )
    oldest = camille.get("/api/v1/me/tokens").json()[0]["id"]
    assert camille.delete(f"/api/v1/me/tokens/{oldest}").status_code == 204
    assert camille.post("/api/v1/me/tokens", json=make).status_code == 201


def test_a_password_reset_forgets_the_devices_the_account_knew(
    site: TestClient, camille: Person, clock: Clock
) -> None:
    settings = site.app.state.node.settings  # type: ignore[attr-defined]
    email = camille.member["email"]
    before = browser(site, "203.0.113.66")  # someone who logged in before the reset
    assert log_in(before, email, PASSWORD).status_code == 200
    leave(before)
    office = operator(site, "office")
    link = office.post(f"/api/v1/members/{camille.id}/password-reset-links").json()["url"]
    token = link.rsplit("/", 1)[1]
    reset = browser(site).post(f"/api/v1/password-resets/{token}", json={"password": NEW})
    assert reset.status_code == 200, reset.text
    for n in range(settings.login_email_ceiling):
        fail(browser(site, f"198.51.100.{n + 1}"), email)
    assert log_in(before, email, NEW).json()["error"] == "account_guarded"
