"""Behind a reverse proxy: `X-Forwarded-For` and `X-Forwarded-Proto` are believed only from
the proxies the host names (`SOU_TRUSTED_PROXIES`), as `sou serve` runs for real.

Believed from anyone, a forged `X-Forwarded-For` would give a guesser a new address, so a
new (email, address) pair, at every try; never believed, every member behind the proxy
would share its address and never get a `Secure` cookie."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from runtime.settings import Settings
from tests.conftest import OPERATORS, PASSWORD, NodeTemplate
from tests.live import free_port
from tests.stripe_server import wait_until

Serve = Callable[[str], int]  # trusted proxies → the port of a node serving with them


@pytest.fixture
def serve(sqlite_node_template: NodeTemplate, tmp_path: Path) -> Iterator[Serve]:
    shutil.copytree(sqlite_node_template.data_dir, tmp_path / "data")
    shutil.copyfile(sqlite_node_template.url, tmp_path / "sou.db")
    processes: list[subprocess.Popen[bytes]] = []

    def start(trusted: str) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOU_")}
        env.update(
            SOU_DATA_DIR=str(tmp_path / "data"),
            SOU_DATABASE_URL=f"sqlite:///{tmp_path}/sou.db",
            SOU_TRUSTED_PROXIES=trusted,
        )
        port = free_port()
        command = [sys.executable, "-m", "node.cli", "serve", "--workers", "1"]
        log = (tmp_path / f"serve-{port}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        )
        wait_until(lambda: _answers(port), timeout=60, what="the node serving")
        return port

    yield start
    for process in processes:
        process.kill()
        process.wait()


def _answers(port: int) -> bool:
    try:
        return _request(port, "GET", "/healthz", {})[0] == 200
    except OSError:
        return False


def _request(
    port: int, method: str, path: str, headers: dict[str, str], body: object = None
) -> tuple[int, list[str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = None if body is None else json.dumps(body)
    kind = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, path, body=data, headers={**headers, **kind})
    answer = connection.getresponse()
    answer.read()
    cookies = answer.headers.get_all("set-cookie") or []
    connection.close()
    return answer.status, cookies


def log_in(port: int, password: str, forwarded: dict[str, str]) -> tuple[int, list[str]]:
    email = OPERATORS["office"][0]
    login = {"email": email, "password": password}
    return _request(port, "POST", "/api/v1/session", forwarded, login)


def test_forwarded_headers_from_an_untrusted_peer_change_nothing(serve: Serve) -> None:
    port = serve("")
    for n in range(3):  # each try claims another address: all one pair all the same
        status, _ = log_in(port, "not the password", {"X-Forwarded-For": f"198.51.100.{n}"})
        assert status == 401
    status, _ = log_in(port, "not the password", {"X-Forwarded-For": "198.51.100.200"})
    assert status == 429
    _, cookies = log_in(
        port, PASSWORD, {"X-Forwarded-For": "203.0.113.1", "X-Forwarded-Proto": "https"}
    )
    assert not cookies  # still waiting: nothing set


def test_a_trusted_proxy_names_the_client_and_its_https(serve: Serve) -> None:
    port = serve("127.0.0.1, 10.0.0.0/8")
    for n in range(4):  # four members behind the proxy, each their own address
        status, _ = log_in(port, "not the password", {"X-Forwarded-For": f"198.51.100.{n}"})
        assert status == 401
    status, cookies = log_in(
        port, PASSWORD, {"X-Forwarded-For": "203.0.113.1", "X-Forwarded-Proto": "https"}
    )
    assert status == 200
    session = next(cookie for cookie in cookies if cookie.startswith("sou_session="))
    assert "secure" in session.lower()


def test_a_misspelt_proxy_address_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="not an address or network: 'nginx'"):
        Settings(trusted_proxies="127.0.0.1, nginx")
    assert Settings(trusted_proxies="::1, 172.30.57.0/24, *").trusted_proxies


def test_the_compose_file_trusts_exactly_the_gateway_its_proxy_comes_through() -> None:
    root = Path(__file__).parent.parent / "docker"
    compose = yaml.safe_load((root / "compose.yaml").read_text())
    node = compose["services"]["node"]
    (network,) = node["networks"]
    (subnet,) = compose["networks"][network]["ipam"]["config"]
    assert node["environment"]["SOU_TRUSTED_PROXIES"] == subnet["gateway"]
    assert Settings(trusted_proxies=subnet["gateway"]).trusted_proxies
    # The image installs the versions the suite passed with, as `make` does.
    assert "pip install --no-cache-dir -c constraints.txt ." in (root / "Dockerfile").read_text()
