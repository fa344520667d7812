"""Several nodes on one PostgreSQL database, as the README describes them: each its own data
directory holding the same keys, each run by `sou serve`. Payments go through both, into one
log; a receipt from either verifies against the one node key; copies of one signed order
sent to both at once post it once; the audit passes from either data directory; and every
line the nodes log has its time."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from node.cli import app as cli
from tests.conftest import OPERATORS, PASSWORD, NodeTemplate, pg_copy
from tests.live import free_port
from tests.stripe_server import wait_until
from wallet_api.client import WalletClient

TIMED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


@dataclass
class Served:
    name: str
    data_dir: Path
    database_url: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def node_env(data_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOU_")}
    env.update(SOU_DATA_DIR=str(data_dir), SOU_DATABASE_URL=database_url)
    return env


@contextmanager
def serving(name: str, data_dir: Path, database_url: str, workers: int) -> Iterator[Served]:
    """`sou serve` as an operator starts it; stopped (SIGINT) at the end of the block."""
    port = free_port()
    log = data_dir.parent / f"{name}.log"
    command = [sys.executable, "-m", "node.cli", "serve", "--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env=node_env(data_dir, database_url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Served(name, data_dir, database_url, f"http://127.0.0.1:{port}", process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def answers(node: Served) -> bool:
    assert node.process.poll() is None, node.log.read_text()
    try:
        return httpx.get(f"{node.url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wallet_on(node: Served, name: str) -> WalletClient:
    """A member who joined and logged in on this node, with a registered device key."""
    wallet = WalletClient(node.url, language="en")
    email = f"{name}.{uuid.uuid4().hex[:6]}@village.test"
    wallet.join(name.title(), email, PASSWORD)
    wallet.log_in(email, PASSWORD)
    wallet.register_key("phone")
    return wallet


def test_two_nodes_on_one_database_take_payments_into_one_log(
    pg_node_template: NodeTemplate, tmp_path: Path
) -> None:
    """Node A (two processes) and node B (one), each with a copy of the same data directory
    (so the same keys), on one PostgreSQL database."""
    with pg_copy(pg_node_template.url) as url:
        for name in ("a", "b"):
            shutil.copytree(pg_node_template.data_dir, tmp_path / name / "data")
        with ExitStack() as stack:
            a = stack.enter_context(serving("a", tmp_path / "a" / "data", url, workers=2))
            b = stack.enter_context(serving("b", tmp_path / "b" / "data", url, workers=1))
            wait_until(lambda: answers(a) and answers(b), timeout=60, what="both nodes serving")
            pay_through_both(a, b)
        for node in (a, b):
            assert node.process.returncode == 0, node.log.read_text()
            audit_from(node)
            lines = node.log.read_text().splitlines()
            assert any("Application startup complete" in line for line in lines), lines
            untimed = [line for line in lines if line.strip() and not TIMED.match(line)]
            assert untimed == [], f"node {node.name} logged lines without their time"
            assert "Traceback" not in lines and not any("pipeline aborted" in x for x in lines)


def pay_through_both(a: Served, b: Served) -> None:
    payer, shop = wallet_on(a, "camille"), wallet_on(b, "boulangerie")
    # The exchange office, on node B, credits the payer (signed by the office's role key).
    office = WalletClient(b.url, language="en")
    office.log_in(OPERATORS["office"][0], PASSWORD)
    member = payer.account().removeprefix("member:")
    cash_in = {"id": uuid.uuid4().hex, "member": member, "amount": 10_000}
    office.request("POST", "/api/v1/office/cash-ins", json=cash_in)

    # The payer's phone holds a wallet token made on A, and pays through A and through B.
    token = payer.create_token("phone").secret
    phones = [WalletClient(node.url, token=token, key=payer.key) for node in (a, b)]
    sent = [phones[n % 2].payment_order(shop.account(), 100 + n) for n in range(8)]
    paid = [phones[n % 2].send(order) for n, order in enumerate(sent)]
    assert not any(p.replayed for p in paid) and len({p.transfer_id for p in paid}) == 8

    # Copies of one signed order sent to both nodes at once: posted once, every copy answered.
    for _ in range(3):
        order = payer.payment_order(shop.account(), 50)
        copies = copies_at_once([a, b, a, b], token, order)
        assert {status for status, _ in copies} <= {200, 201}, copies
        assert len({body["transfer_id"] for _, body in copies}) == 1, copies
        assert sorted(body["replayed"] for _, body in copies) == [False, True, True, True]
        sent.append(order)
        paid.append(phones[0].send(order))  # once more, later: the same transfer
    assert shop.balance() == sum(100 + n for n in range(8)) + 3 * 50

    # One log: both nodes show the one node key and reach the same checkpoint; a receipt
    # from either verifies against the node key the payer first met (on A).
    node_key = phones[0].node_info().node_key
    assert WalletClient(b.url).node_info().node_key == node_key
    for node in (a, b):
        reader = WalletClient(node.url, token=token, node_public_key=node_key)
        for order, transfer in zip(sent, paid, strict=True):
            reader.verify_receipt(reader.receipt(transfer.transfer_id), order)
    wait_until(lambda: unsealed(a) == unsealed(b) == 0, what="the queue sealed by either node")
    assert checkpoint(a) == checkpoint(b)


def copies_at_once(nodes: list[Served], token: str, order: Any) -> list[tuple[int, Any]]:
    """The same signed order posted to each node of `nodes`, all released together."""
    body = json.dumps(order.to_json())
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    start = threading.Barrier(len(nodes))
    answered: list[tuple[int, Any]] = []

    def post(node: Served) -> None:
        with httpx.Client(base_url=node.url, timeout=30) as http:
            http.get("/healthz")  # connected before the start
            start.wait(30)
            answer = http.post("/api/v1/transfers", content=body, headers=headers)
            answered.append((answer.status_code, answer.json()))

    threads = [threading.Thread(target=post, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answered) == len(nodes)
    return answered


def unsealed(node: Served) -> int:
    return int(httpx.get(f"{node.url}/healthz").json()["unsealed"])


def checkpoint(node: Served) -> str:
    return httpx.get(f"{node.url}/api/v1/checkpoint").text


def audit_from(node: Served) -> None:
    """`sou audit` from this node's data directory: its kept checkpoint is in the log."""
    env = node_env(node.data_dir, node.database_url)
    audited = CliRunner().invoke(cli, ["audit", "--full", "--json"], env=env)
    assert audited.exit_code == 0, audited.output
    report = json.loads(audited.output)
    assert report["ok"] and report["unsealed"] == 0 and report["transfers"] >= 12, report
    assert (node.data_dir / "checkpoint.txt").exists()
