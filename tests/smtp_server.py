"""A real SMTP server for the tests of mail: aiosmtpd on a free local port, in a thread of
its own, keeping every message it receives.

`smtp_server` starts one per test; `mail_settings` points a node's settings at it. A test
waits for a message (`SmtpServer.wait_for`), never for a time.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from tests.live import free_port

WAIT_S = 20


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()
        return "250 OK"

    def wait_for(self, count: int) -> list[EmailMessage]:
        """The first `count` messages, once they have come (failing after WAIT_S)."""
        with self.arrived:
            came = self.arrived.wait_for(lambda: len(self.messages) >= count, WAIT_S)
        assert came, f"{len(self.messages)} messages came, {count} were awaited"
        return self.messages[:count]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def _free_port() -> int:
    return free_port()  # one that no other worker of the suite hands out


@contextmanager
def serving(server: SmtpServer, **options: Any) -> Iterator[SmtpServer]:
    controller = Controller(server, hostname=server.host, port=server.port, **options)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with serving(SmtpServer("127.0.0.1", _free_port())) as server:
        yield server


@dataclass
class Login:
    """Checks the login a client gives (AUTH over plain SMTP: the server is local)."""

    user: str
    password: str
    given: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        given = (data.login.decode(), data.password.decode())
        self.given.append(given)
        return AuthResult(success=given == (self.user, self.password))


@pytest.fixture
def smtp_server_with_login() -> Iterator[tuple[SmtpServer, Login]]:
    """A server that takes mail only from a client logged in as "sou" / "mot de passe smtp"."""
    login = Login("sou", "mot de passe smtp")
    options = {"authenticator": login, "auth_required": True, "auth_require_tls": False}
    with serving(SmtpServer("127.0.0.1", _free_port()), **options) as server:
        yield server, login


def mail_settings(settings: Any, server: SmtpServer) -> Any:
    """`settings` sending mail through `server` (plain SMTP, no login: it is local)."""
    return settings.model_copy(
        update={"smtp_host": server.host, "smtp_port": server.port, "smtp_tls": "none"}
    )


def link_in(message: EmailMessage, origin: str) -> str:
    """The reset link a message carries."""
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    found = re.search(re.escape(origin) + r"/password/reset/[A-Za-z0-9_-]+", text)
    assert found, text
    return found.group(0)
