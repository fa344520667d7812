"""The sealer's thread: a round every `interval` seconds, or at once when the poster commits."""

from __future__ import annotations

import logging
import threading
import time

from ledger.sealer import Sealer

log = logging.getLogger(__name__)


class SealerThread:
    def __init__(self, sealer: Sealer, interval: float) -> None:
        self.sealer = sealer
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sou-sealer", daemon=True)
        self.max_lag_ms = 0  # worst delay seen between a commit and its sealing

    def start(self) -> SealerThread:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self._round()
        self._round()  # seal what the last batches committed

    def _round(self) -> None:
        try:
            sealed = self.sealer.seal()
        except Exception:  # a database hiccup: the queue waits for the next round
            log.exception("sealing failed; will retry")
            return
        if sealed.oldest_ms is not None:
            lag = int(time.time() * 1000) - sealed.oldest_ms
            self.max_lag_ms = max(self.max_lag_ms, lag)
