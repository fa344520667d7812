"""`sou serve` with several processes: the parent accepts each connection and hands it to
the process holding the fewest open ones.

Why not uvicorn's own workers: they share one listening socket, and a process takes every
connection waiting when it wakes, in a burst. Measured with the HTTP benchmark, 64
kept-alive connections opened together went 64/0, 51/13 or 36/28 to two processes; one
process then did all the work on one core while the other idled, and latency doubled.
Terminals and phones keep their connection open, so such a split lasts. Handing over a
connection costs the parent one `accept` and one message (the socket itself travels as
SCM_RIGHTS ancillary data over a Unix socket pair); the requests never pass through it.

Messages on a worker's channel (SOCK_SEQPACKET, so one message each):
  parent -> worker: b"c" with one connection's descriptor;
  worker -> parent: b"ready" once its app has started; b"-<n>" when n connections closed.
A worker that stops before it is ready stops the node (its app could not start: the same
would happen again); one that dies later is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from typing import Any

log = logging.getLogger("sou.serve")

APP = "node.app:create_served_app"
STOP_GRACE_S = 30  # after this, workers still running are killed
# Database connections a process needs at least: the poster's writer and its sealing
# thread, the sealer thread, the card-payments lock, and a few web threads.
MIN_CONNECTIONS = 8

# Every line of `sou serve`, in the parent and in each process, uvicorn's included: with its
# time and the process it comes from. uvicorn's loggers have no handler of their own here:
# their lines go through the root's.
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "timed": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "timed",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        **{
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
        "alembic.runtime.plugins": {"level": "WARNING"},  # a line per plugin, per process
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
}


def connections_per_process(pool_size: int, processes: int) -> int:
    """Each process's share of the node's database connections (`Settings.pool_size`)."""
    share = max(MIN_CONNECTIONS, pool_size // processes)
    if share * processes > pool_size:
        log.warning(
            "pool_size %d is too small for %d processes: each opens up to %d database "
            "connections, %d in all",
            pool_size,
            processes,
            share,
            share * processes,
        )
    return share


@dataclass
class Worker:
    process: SpawnProcess
    channel: socket.socket  # the parent's end
    open: int = 0  # connections handed over and not yet closed
    ready: bool = False


@dataclass
class Balancer:
    """The parent: accepts connections, shares them out, replaces workers that die."""

    listener: socket.socket
    count: int
    options: dict[str, Any]  # uvicorn.Config keyword arguments for each worker
    workers: list[Worker] = field(default_factory=list)
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    stopping: bool = False
    failed: bool = False

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM; the exit status for the command."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop())
        self.listener.setblocking(False)
        for _ in range(self.count):
            self._start_worker()
        accepting = False
        while not self.stopping:
            if not accepting and all(w.ready for w in self.workers):
                self.selector.register(self.listener, selectors.EVENT_READ)
                accepting = True
                log.info("%d processes serve; connections are shared out evenly", self.count)
            for key, _ in self.selector.select(timeout=0.5):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._hear(key.data)
        self._stop_workers()
        return 1 if self.failed else 0

    def stop(self) -> None:
        self.stopping = True

    def _start_worker(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = multiprocessing.get_context("spawn").Process(
            target=work, args=(theirs, self.options), name="sou-serve", daemon=False
        )
        process.start()
        theirs.close()
        ours.setblocking(False)
        worker = Worker(process, ours)
        self.workers.append(worker)
        self.selector.register(ours, selectors.EVENT_READ, worker)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: try again shortly
                log.warning("could not accept a connection: %s", exc)
                time.sleep(0.1)
                return
            with connection:
                self._hand_over(connection)

    def _hand_over(self, connection: socket.socket) -> None:
        """To the ready worker with the fewest open connections (the first of equals)."""
        for worker in sorted((w for w in self.workers if w.ready), key=lambda w: w.open):
            try:
                socket.send_fds(worker.channel, [b"c"], [connection.fileno()])
            except OSError:  # its channel is full or it just died: the next one
                continue
            worker.open += 1
            return
        log.warning("no process could take a connection: it is closed")

    def _hear(self, worker: Worker) -> None:
        while True:
            try:
                message = worker.channel.recv(32)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message = b""
            if not message:
                self._lost(worker)
                return
            if message == b"ready":
                worker.ready = True
                log.info("server process %s is ready", worker.process.pid)
            elif message.startswith(b"-"):
                worker.open = max(0, worker.open - int(message[1:]))

    def _lost(self, worker: Worker) -> None:
        self.selector.unregister(worker.channel)
        worker.channel.close()
        self.workers.remove(worker)
        worker.process.join(5)
        if self.stopping:
            return
        if not worker.ready:
            log.error("a server process could not start (exit status %s)", worker.process.exitcode)
            self.failed = True
            self.stop()
            return
        log.warning(
            "server process %s stopped (exit status %s); starting another",
            worker.process.pid,
            worker.process.exitcode,
        )
        self._start_worker()

    def _stop_workers(self) -> None:
        """Each worker finishes its requests and closes its node (posting what is queued
        and sealing it); the ones still running after STOP_GRACE_S are killed."""
        if self.listener.fileno() != -1:
            self.listener.close()
        for worker in self.workers:
            if worker.process.is_alive():
                os.kill(worker.process.pid or 0, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.error("server process %s did not stop in time: killed", worker.process.pid)
                worker.process.kill()
                worker.process.join()
            worker.channel.close()


def serve_balanced(host: str, port: int, processes: int, options: dict[str, Any]) -> int:
    """Listen on host:port and serve the node from `processes` worker processes."""
    listener = socket.create_server((host, port), backlog=2048)
    log.info("Sou listens on http://%s:%d", host, port)
    with listener:
        return Balancer(listener, processes, options).run()


# -- in each worker -------------------------------------------------------------------------


def work(channel: socket.socket, options: dict[str, Any]) -> None:
    """A worker process: the app as `sou serve` runs it, fed connections by the parent."""
    import uvicorn

    os.setpgrp()  # Ctrl-C in a terminal reaches the parent only, which stops the workers

    class Server(uvicorn.Server):
        """uvicorn's server, with connections handed over instead of a listener."""

        handed: HandedOver | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])
            self.handed = HandedOver(self, channel, asyncio.get_running_loop())
            self.handed.start()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if self.handed is not None:
                self.handed.stop()
            await super().shutdown(sockets=[])

    Server(uvicorn.Config(APP, factory=True, **options)).run()


@dataclass
class HandedOver:
    """Takes the connections the parent sends, and tells it which ones closed."""

    server: Any  # uvicorn.Server
    channel: socket.socket
    loop: asyncio.AbstractEventLoop
    closed: int = 0  # not told yet

    def start(self) -> None:
        self.channel.setblocking(False)
        self.loop.add_reader(self.channel.fileno(), self._receive)
        self.channel.send(b"ready")

    def stop(self) -> None:
        self.loop.remove_reader(self.channel.fileno())
        self.channel.close()

    def _receive(self) -> None:
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(self.channel, 16, 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the parent is gone
                self.server.should_exit = True
                return
            if not fds:  # the parent closed its end: stop as it asks
                self.server.should_exit = True
                self.loop.remove_reader(self.channel.fileno())
                return
            connection = socket.socket(fileno=fds[0])
            connection.setblocking(False)
            self.loop.create_task(self.loop.connect_accepted_socket(self._protocol, connection))

    def _protocol(self) -> asyncio.Protocol:
        """uvicorn's HTTP protocol (as `Server.startup` makes it), which says when it closes."""
        config = self.server.config
        protocol: asyncio.Protocol = config.http_protocol_class(
            config=config,
            server_state=self.server.server_state,
            app_state=self.server.lifespan.state,
        )
        lost = protocol.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            lost(exc)
            self.closed += 1
            if self.closed == 1:
                self.loop.call_soon(self._tell_closed)

        protocol.connection_lost = connection_lost  # type: ignore[method-assign]
        return protocol

    def _tell_closed(self) -> None:
        if self.closed == 0 or self.channel.fileno() == -1:
            return
        try:
            self.channel.send(b"-%d" % self.closed)
        except BlockingIOError:  # try again shortly, with whatever closed meanwhile
            self.loop.call_later(0.01, self._tell_closed)
            return
        except OSError:
            return
        self.closed = 0
