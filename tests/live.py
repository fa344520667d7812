"""The app served for real, by uvicorn on a free local port, for the peers that need a
socket: the local Stripe server delivering webhooks, Chromium, the load generator."""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import uvicorn
from fastapi import FastAPI

# Ports handed to servers that bind them themselves (`sou serve`, localstripe, the SMTP
# server) are taken below the kernel's range of ephemeral ports: a port the kernel picked
# could be given to any outgoing connection (to PostgreSQL, between the node's workers...)
# before the server binds it. The band is split between pytest-xdist's workers, so that two
# of them never hand out the same port.
LOWEST_PORT = 10_000


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


@cache
def _ports() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw")) if worker.removeprefix("gw").isdigit() else 0
    workers = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), index + 1)
    width = (_ephemeral_low() - LOWEST_PORT) // workers
    if width < 100:  # no room below the ephemeral range: let the kernel choose
        return iter(())
    first = LOWEST_PORT + index * width
    # From a random place in the band: a port the last run left in TIME_WAIT is skipped.
    start = random.randrange(width)
    return itertools.cycle([first + (start + i) % width for i in range(width)])


_ports_lock = threading.Lock()


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A local port nobody listens on, for a server that will bind it itself."""
    with _ports_lock:
        for port in itertools.islice(_ports(), 1000):
            if _bindable(port):
                return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Serve `app` (its lifespan starts and stops the node) and yield its base URL."""
    # The socket is bound here and handed to uvicorn: no other process can take the port
    # between the choice and the bind.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port or 0))
    port = int(listener.getsockname()[1])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="uvicorn", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start serving")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()
