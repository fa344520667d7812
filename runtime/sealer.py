"""The sealer's thread: a sealing round every `interval` seconds.

Under load the poster seals between its batches; this thread seals what the poster does
not see: key events, and transfers committed by other processes (the CLI, other workers).
"""

from __future__ import annotations

import threading

from ledger.sealer import Sealer


class SealerThread:
    def __init__(self, sealer: Sealer, interval: float) -> None:
        self.sealer = sealer
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sou-sealer", daemon=True)

    def start(self) -> SealerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._round()
        self._round()  # seal what the last batches committed

    def _round(self) -> None:
        self.sealer.seal_in_background()  # logs what fails, once; the queue waits
