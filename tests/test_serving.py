"""`sou serve` with several processes: kept-alive connections are shared out evenly, to the
process holding the fewest; a process that dies is replaced; a stop ends every process.

The node runs as an operator starts it (`python -m node.cli serve --workers 2`); which
process holds a connection is read from Linux's /proc (sockets of each process, and
/proc/net/tcp for their ports)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import NodeTemplate
from tests.live import free_port
from tests.stripe_server import wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def workers(self) -> list[int]:
        """Pids of the server's worker processes (not multiprocessing's resource tracker)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                worker = b"spawn_main" in (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if fields[1] == str(self.process.pid) and fields[0] != "Z" and worker:
                found.append(int(stat.parent.name))
        return sorted(found)

    def connect(self) -> http.client.HTTPConnection:
        """A kept-alive connection, used once so that a worker holds it."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request("GET", "/healthz")
        answer = connection.getresponse()
        assert answer.status == 200, answer.read()
        answer.read()
        return connection

    def holders(self, ports: list[int]) -> dict[int, list[int]]:
        """For each worker, the indexes of the connections (by client port) it holds."""
        by_port = {port: i for i, port in enumerate(ports)}
        held: dict[int, list[int]] = {}
        for pid in self.workers():
            inodes = _socket_inodes(pid)
            held[pid] = sorted(
                by_port[remote]
                for local, remote, inode in _tcp_established()
                if local == self.port and inode in inodes and remote in by_port
            )
        return held


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _tcp_established() -> Iterator[tuple[int, int, str]]:
    """(local port, remote port, inode) of established IPv4 TCP sockets."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01":
            yield int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16), fields[9]


@pytest.fixture
def served(sqlite_node_template: NodeTemplate, tmp_path: Path) -> Iterator[Served]:
    shutil.copytree(sqlite_node_template.data_dir, tmp_path / "data")
    shutil.copyfile(sqlite_node_template.url, tmp_path / "sou.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOU_")}
    env.update(SOU_DATA_DIR=str(tmp_path / "data"), SOU_DATABASE_URL=f"sqlite:///{tmp_path}/sou.db")
    port = free_port()
    command = [sys.executable, "-m", "node.cli", "serve", "--workers", "2", "--port", str(port)]
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    node = Served(process, port, tmp_path / "serve.log")
    try:
        wait_until(lambda: _answers(port), timeout=60, what="the node serving")
        yield node
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def _answers(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/healthz")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def test_connections_go_to_the_process_holding_the_fewest(served: Served) -> None:
    connections = [served.connect() for _ in range(10)]
    ports = [c.sock.getsockname()[1] for c in connections]
    held = served.holders(ports)
    assert sorted(len(indexes) for indexes in held.values()) == [5, 5], held

    # Four of the first process's connections close: the next four all go to it.
    first, second = held
    for index in held[first][:4]:
        connections[index].close()
    wait_until(lambda: len(served.holders(ports)[first]) == 1, what="the closes seen")
    time.sleep(0.2)  # the process tells the parent which closed
    connections += [served.connect() for _ in range(4)]
    ports += [c.sock.getsockname()[1] for c in connections[10:]]
    now = served.holders(ports)
    assert now[first] == [*held[first][4:], 10, 11, 12, 13], now
    assert now[second] == held[second]
    for connection in connections:
        connection.close()


def test_a_process_that_dies_is_replaced(served: Served) -> None:
    first, second = served.workers()
    os.kill(second, signal.SIGKILL)
    wait_until(lambda: len(served.workers()) == 2 and second not in served.workers())
    assert first in served.workers()
    (replacement,) = set(served.workers()) - {first}
    ready = f"server process {replacement} is ready"
    wait_until(lambda: ready in served.log.read_text(), timeout=60, what="the replacement")
    connections = [served.connect() for _ in range(4)]
    held = served.holders([c.sock.getsockname()[1] for c in connections])
    assert sorted(len(indexes) for indexes in held.values()) == [2, 2], held


def test_a_stop_ends_every_process(served: Served) -> None:
    workers = served.workers()
    assert len(workers) == 2
    served.process.send_signal(signal.SIGINT)
    assert served.process.wait(40) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
