"""Group commit: one writer thread posts what many callers submit, a batch per commit.

Callers check their order (form and signature, which needs no lock and runs in parallel
since libsodium releases the GIL) in their own thread, then wait on a future. The writer
takes everything queued, up to `max_batch`, and posts it in one transaction: one fsync for
many payments, and no lock queue in the database. Outcomes are the same as posting each
order alone, in arrival order.

Given a sealer, the writer also runs a sealing round between batches, at most every
`seal_every` seconds: after the batch's callers have their answer, so payments never wait
for the log, and without a second writer competing for the database lock.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future

from ledger.errors import LedgerError, NodeBusy
from ledger.posting import Checked, Posted
from ledger.sealer import Sealer
from ledger.service import Ledger
from ledger.signing import SignedOrder

log = logging.getLogger(__name__)

_STOP = object()


class Poster:
    def __init__(
        self,
        ledger: Ledger,
        *,
        max_batch: int = 512,
        sealer: Sealer | None = None,
        seal_every: float = 0.2,
    ) -> None:
        self.ledger = ledger
        self.max_batch = max_batch
        self.sealer = sealer
        self.seal_every = seal_every
        self._sealed_at = 0.0
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.batches = 0  # for the benchmarks: how well commits are shared
        self.posted = 0

    def start(self) -> Poster:
        self._thread = threading.Thread(target=self._run, name="sou-poster", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Post what is queued, then stop."""
        self._stopping = True
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join()

    def submit(self, signed: SignedOrder) -> Future[Posted]:
        """Check an order now and queue it; the future gives a Posted or raises LedgerError."""
        future: Future[Posted] = Future()
        if self._stopping or self._thread is None:
            future.set_exception(NodeBusy("the node is not taking payments right now"))
            return future
        try:
            checked = self.ledger.check(signed)
        except LedgerError as exc:
            future.set_exception(exc)
            return future
        self._queue.put((checked, future))
        return future

    def post(self, signed: SignedOrder, timeout: float = 60) -> Posted:
        return self.submit(signed).result(timeout)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.seal_every)
            except queue.Empty:
                self._seal()
                continue
            if first is _STOP:
                self._seal()
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)  # finish this batch, then stop
                    break
                batch.append(item)
            self._post(batch)  # type: ignore[arg-type]
            if time.monotonic() - self._sealed_at >= self.seal_every:
                self._seal()

    def _seal(self) -> None:
        if self.sealer is None:
            return
        self._sealed_at = time.monotonic()
        try:
            self.sealer.seal()
        except Exception:  # the entries stay queued for the next round
            log.exception("sealing failed; will retry")

    def _post(self, batch: list[tuple[Checked, Future[Posted]]]) -> None:
        try:
            outcomes = self.ledger.post_checked([checked for checked, _ in batch])
        except Exception as exc:  # the database is down: every caller hears of it
            log.exception("posting a batch of %d orders failed", len(batch))
            for _, future in batch:
                future.set_exception(exc)
            return
        self.batches += 1
        self.posted += len(batch)
        if self.sealer is not None:
            self.sealer.expect(o for o in outcomes if isinstance(o, Posted) and not o.replayed)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, LedgerError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
