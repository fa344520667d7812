"""Sending mail through the node's SMTP server (`smtp_*` settings), with the standard
library only.

A message is handed to one sending thread of the process and the caller goes on at once:
no request waits on a mail server, and a page answers in the same time whether it sent a
message or not. A message that cannot be sent is logged by its kind, never its contents
(a reset link in a log would open the account to whoever reads it), nor the password.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from concurrent.futures import Future, ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from runtime.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT_S = 30
# One thread: messages leave in the order they were handed over.
_outbox = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sou-mail")


def configured(settings: Settings) -> bool:
    """Whether the node sends mail (an SMTP host is set)."""
    return bool(settings.smtp_host.strip())


def smtp_password(settings: Settings) -> str:
    """The SMTP password: the file's (`smtp_password_file`, its first line) if one is named,
    else the setting's."""
    if settings.smtp_password_file:
        text = Path(settings.smtp_password_file).read_text(encoding="utf-8")
        return text.splitlines()[0] if text else ""
    return settings.smtp_password


def sender(settings: Settings) -> str:
    return settings.smtp_from or f"sou@{settings.smtp_host.strip()}"


def letter(settings: Settings, *, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message from the node."""
    message = EmailMessage()
    message["From"] = sender(settings)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.smtp_host.strip() or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


def send(settings: Settings, message: EmailMessage) -> None:
    """Send one message now (in the caller's thread): TLS as `smtp_tls` says, a login if a
    user is set."""
    host, port = settings.smtp_host.strip(), settings.smtp_port
    context = ssl.create_default_context()
    server: smtplib.SMTP
    if settings.smtp_tls == "ssl":
        server = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_S, context=context)
    else:
        server = smtplib.SMTP(host, port, timeout=TIMEOUT_S)
    with server:
        if settings.smtp_tls == "starttls":
            server.starttls(context=context)
        if settings.smtp_user:
            server.login(settings.smtp_user, smtp_password(settings))
        server.send_message(message)


def send_later(settings: Settings, message: EmailMessage, kind: str) -> Future[None]:
    """Hand a message to the sending thread; `kind` names it in the log if it fails."""
    return _outbox.submit(_send_logged, settings, message, kind)


def _send_logged(settings: Settings, message: EmailMessage, kind: str) -> None:
    try:
        send(settings, message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning(
            "could not send a %s message through %s:%s: %s",
            kind,
            settings.smtp_host,
            settings.smtp_port,
            type(exc).__name__,
        )
