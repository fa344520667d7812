"""A local Stripe for the tests: localstripe (on PyPI) in a subprocess, talked to with the
real `stripe` library, delivering signed webhooks to the node served by uvicorn.

Use the fixtures: `localstripe` (one server for the session), `stripe_node` (the `node`
pointed at it, PaymentIntent mode, before its app starts), `stripe_site` (the node served
on a free port, localstripe's webhooks going to it) and `checkout_site` (the same, with
Stripe Checkout, the node's default). To pay an intent as its customer would:
`stripe.pay(intent_id)` (localstripe confirms only an intent that has a payment method); to
pay a Checkout Session on its page: `stripe.pay_checkout(session_url)`.

What localstripe (1.15, the last release) lacks or does otherwise than this `stripe`
library's API version expects is adjusted as it starts, in `_LAUNCH`: it would pickle its
whole store to the shared /tmp/localstripe.pickle on every write (parallel test runs would
share it), and it predates `allowed_payment_method_types` (API version 2026-09-30 replaced
`payment_method_types` by it): it is read as the old name. It has no Checkout Sessions:
`tests/localstripe_checkout.py`, loaded by `_LAUNCH`, adds them (create, retrieve) and the
hosted page their `url` points at, where paying makes and confirms the session's
PaymentIntent (localstripe then sends its own `payment_intent.succeeded`), sends
`checkout.session.completed` and goes back to `success_url` (read its docstring). It sends
`payment_intent.*` webhooks itself, but neither `charge.refunded` nor anything about
disputes (it has no disputes): tests sign those events with the webhook secret, as Stripe
does (`signed`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from tests.live import free_port

SECRET_KEY = "sk_test_sou_localstripe"
PUBLISHABLE_KEY = "pk_test_sou_localstripe"
WEBHOOK_SECRET = "whsec_sou_localstripe_tests"
WEBHOOK_ID = "sou"  # one registration, moved to each test's server

_LAUNCH = """
import sys
from localstripe import resources, server

resources.Store.dump_to_disk = lambda self: None
_init = resources.PaymentIntent.__init__

def _init_allowed(self, allowed_payment_method_types=None, **kwargs):
    if allowed_payment_method_types is not None:
        kwargs.setdefault("payment_method_types", allowed_payment_method_types)
    _init(self, **kwargs)

resources.PaymentIntent.__init__ = _init_allowed
sys.path.insert(0, sys.argv[2])  # tests/, for Checkout Sessions
import localstripe_checkout

localstripe_checkout.install()
sys.argv = ["localstripe", "--port", sys.argv[1], "--from-scratch"]
server.start()
"""


def wait_until(check: Callable[[], Any], timeout: float = 30, what: str = "it") -> Any:
    """Ask `check` until it answers something true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


@dataclass
class LocalStripe:
    url: str
    secret_key: str = SECRET_KEY
    webhook_secret: str = WEBHOOK_SECRET
    client: stripe.StripeClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = stripe.StripeClient(self.secret_key, base_addresses={"api": self.url})

    def _config(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    def deliver_webhooks_to(self, url: str) -> None:
        """Send every event, signed with the webhook secret, to `url`."""
        self._config(f"/_config/webhooks/{WEBHOOK_ID}", {"url": url, "secret": WEBHOOK_SECRET})

    def hold_webhooks(self, url: str) -> None:
        """Stop delivering (tests then deliver events themselves)."""
        self._config(
            f"/_config/webhooks/{WEBHOOK_ID}",
            {"url": url, "secret": WEBHOOK_SECRET, "events": ["none.of.ours"]},
        )

    def pay(self, intent_id: str, card: str = "pm_card_visa") -> Any:
        """Pay an intent with a test card, as its customer does on Stripe's page."""
        self.client.v1.payment_intents.update(intent_id, params={"payment_method": card})
        return self.client.v1.payment_intents.confirm(intent_id)

    def pay_checkout(self, url: str, card: str = "4242 4242 4242 4242") -> httpx.Response:
        """Pay a Checkout Session on its page (`url`), as its customer does: the answer sends
        the browser back to the session's success URL (303), or shows why the card was
        refused (4242… pays, 4000 0000 0000 0341 is declined)."""
        form = {
            "email": "payer@village.test",
            "cardNumber": card,
            "cardExpiry": "12 / 34",
            "cardCvc": "123",
            "billingName": "Payer",
        }
        return httpx.post(url, data=form, follow_redirects=False, timeout=30)

    def checkout_session(self, url: str) -> Any:
        """The Checkout Session whose page is `url`, as Stripe has it now."""
        return self.client.v1.checkout.sessions.retrieve(url.rsplit("/", 1)[-1])

    def intent(self, amount: int, metadata: dict[str, str] | None = None) -> Any:
        """A PaymentIntent made straight at Stripe (as Checkout or the dashboard do)."""
        return self.client.v1.payment_intents.create(
            params={"amount": amount, "currency": "eur", "metadata": metadata or {}}
        )

    def charge_of(self, intent_id: str) -> Any:
        intent = self.client.v1.payment_intents.retrieve(intent_id)
        latest = intent.latest_charge  # an id; localstripe gives the whole charge
        assert latest is not None, f"{intent_id} was never paid"
        return self.client.v1.charges.retrieve(latest if isinstance(latest, str) else latest.id)

    def events(self, kind: str) -> list[dict[str, Any]]:
        """Every event of `kind` the server sent, all pages (earlier tests' too)."""
        found = self.client.v1.events.list(params={"type": kind, "limit": 100})
        return [event.to_dict() for event in found.auto_paging_iter()]

    def sent(self, kind: str, about: str) -> dict[str, Any]:
        """The event of `kind` about the object `about` (an id) that the server made: sent,
        unless it was told to hold its webhooks."""
        return next(e for e in self.events(kind) if e["data"]["object"]["id"] == about)


def event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """A Stripe event of `kind` about `obj` (a Stripe object as JSON)."""
    return {
        "id": event_id or f"evt_test_{time.monotonic_ns()}",
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "api_version": "2026-10-28.endive",
        "data": {"object": obj},
    }


def signed(
    body: dict[str, Any] | bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The bytes and headers of a webhook delivery signed as Stripe signs them."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    header = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), secret, timestamp=timestamp
    )
    return payload, {"Stripe-Signature": header, "Content-Type": "application/json"}


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    """localstripe on a free port for the whole session."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("localstripe") / "localstripe.log"
    with Path(log_path).open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, str(port), str(Path(__file__).parent)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_path.parent,
        )
    server = LocalStripe(f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: _answers(server, process, log_path), 30, "localstripe starting")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _answers(server: LocalStripe, process: subprocess.Popen[bytes], log_path: Path) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"localstripe stopped: {log_path.read_text()[-2000:]}")
    request = urllib.request.Request(
        server.url + "/v1/balance", headers={"Authorization": f"Bearer {SECRET_KEY}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


@pytest.fixture
def stripe_node(node: Any, localstripe: LocalStripe) -> Any:
    """`node`, set to take card top-ups through localstripe (PaymentIntent mode). Request
    it before anything that starts the node's app (`site`, `live_site`)."""
    settings = node.settings
    settings.stripe_secret_key = SECRET_KEY
    settings.stripe_publishable_key = PUBLISHABLE_KEY
    settings.stripe_webhook_secret = WEBHOOK_SECRET
    settings.stripe_api_base = localstripe.url
    settings.stripe_checkout = False
    return node


@dataclass
class StripeSite:
    """What a test of card top-ups works with (test modules take it from the fixture
    rather than importing this module, which `pytest_plugins` loads)."""

    url: str  # the node served by uvicorn: localstripe's webhooks go to url/stripe/webhook
    node: Any
    stripe: LocalStripe
    site: Any  # a TestClient over the same (started) node, for people.join and friends

    event = staticmethod(event)
    signed = staticmethod(signed)
    wait_until = staticmethod(wait_until)

    @property
    def webhook_url(self) -> str:
        return self.url + "/stripe/webhook"

    def deliver(self, body: dict[str, Any] | bytes, **signing: Any) -> httpx.Response:
        """Deliver an event to the node's webhook, signed as Stripe signs (see `signed`)."""
        payload, headers = signed(body, **signing)
        return httpx.post(self.webhook_url, content=payload, headers=headers, timeout=60)


@pytest.fixture
def stripe_site(stripe_node: Any, localstripe: LocalStripe, request: pytest.FixtureRequest) -> Any:
    """The node served on a free port, receiving localstripe's webhooks."""
    from fastapi.testclient import TestClient

    url = request.getfixturevalue("live_site")
    localstripe.deliver_webhooks_to(url + "/stripe/webhook")
    # The served app (which started the node), called in-process: cookies kept.
    site = TestClient(request.getfixturevalue("live_app"), base_url="http://127.0.0.1")
    return StripeSite(url, stripe_node, localstripe, site)


@pytest.fixture
def checkout_site(stripe_site: StripeSite) -> StripeSite:
    """`stripe_site` with Stripe Checkout: a top-up sends the payer to the session's page
    (served by localstripe), Stripe sends them back to the node."""
    stripe_site.node.settings.stripe_checkout = True
    return stripe_site
