"""Mail over TLS, as a real mail provider takes it: STARTTLS on the submission port (the
default) and TLS from the first byte (`smtp_tls = "ssl"`), with a login that only travels
encrypted. The server's certificate is made here and trusted through `SSL_CERT_FILE`, as a
host would install its provider's chain; an untrusted certificate stops the message rather
than sending it in clear.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import mail
from runtime.settings import Settings
from tests.smtp_server import Login, SmtpServer, _free_port, serving


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made by the openssl command
    (Debian's openssl, which ca-certificates brings): (certificate, key) files."""
    folder = tmp_path_factory.mktemp("mail-tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-keyout", str(key_file), "-out", str(cert_file),
            "-subj", "/CN=mail.village.test",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:TRUE",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert_file, key_file


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))


def _settings(server: SmtpServer, tls: str) -> Settings:
    return Settings(
        smtp_host=server.host,
        smtp_port=server.port,
        smtp_tls=tls,
        smtp_user="sou",
        smtp_password="mot de passe smtp",
        smtp_from="sou@village.test",
    )


def _letter(settings: Settings) -> mail.EmailMessage:
    return mail.letter(settings, to="camille@village.test", subject="Essai", body="Bonjour")


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[SmtpServer, Login]]:
    login = Login("sou", "mot de passe smtp")
    options = {
        "tls_context": _server_context(certificate),
        "require_starttls": True,  # nothing, the login above all, before TLS
        "authenticator": login,
        "auth_required": True,
    }
    with serving(SmtpServer("127.0.0.1", _free_port()), **options) as server:
        yield server, login


@pytest.fixture
def ssl_server(certificate: tuple[Path, Path]) -> Iterator[tuple[SmtpServer, Login]]:
    login = Login("sou", "mot de passe smtp")
    options = {
        "ssl_context": _server_context(certificate),
        "authenticator": login,
        "auth_required": True,
        # aiosmtpd counts only STARTTLS as TLS; here the whole connection is encrypted.
        "auth_require_tls": False,
    }
    with serving(SmtpServer("127.0.0.1", _free_port()), **options) as server:
        yield server, login


def test_a_message_leaves_by_starttls_with_its_login(
    starttls_server: tuple[SmtpServer, Login], trusted: None
) -> None:
    server, login = starttls_server
    mail.send(_settings(server, "starttls"), _letter(_settings(server, "starttls")))
    [received] = server.wait_for(1)
    assert received["To"] == "camille@village.test" and received["Subject"] == "Essai"
    assert login.given == [("sou", "mot de passe smtp")]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_message_leaves_by_tls_from_the_first_byte(
    ssl_server: tuple[SmtpServer, Login], trusted: None
) -> None:
    server, login = ssl_server
    mail.send(_settings(server, "ssl"), _letter(_settings(server, "ssl")))
    [received] = server.wait_for(1)
    assert received["From"] == "sou@village.test"
    assert login.given == [("sou", "mot de passe smtp")]


def test_an_untrusted_certificate_stops_the_message(
    starttls_server: tuple[SmtpServer, Login],
) -> None:
    server, login = starttls_server
    with pytest.raises(ssl.SSLCertVerificationError):
        mail.send(_settings(server, "starttls"), _letter(_settings(server, "starttls")))
    assert not server.messages and not login.given  # nothing sent, no password either
