"""The latest signed checkpoint, kept outside the database.

Someone able to write the database could remove the last entries of the log together with
their checkpoints and leave a log consistent with itself. The sealer therefore also writes
each new checkpoint to `<data_dir>/checkpoint.txt`, and `sou audit` requires the log to
still contain it (residents and other nodes can keep and check checkpoints the same way).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ledger.sealer import Sealed

FILE_NAME = "checkpoint.txt"
# The poster's and the sealer thread's rounds both remember: one at a time in a process, so
# that a smaller checkpoint never replaces a larger one between the compare and the replace.
_REMEMBERING = threading.Lock()


def path_in(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def _size(note: str) -> int:
    lines = note.split("\n")
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else -1


def remember(data_dir: Path, sealed: Sealed) -> None:
    """Keep `sealed.note` if it is larger than the one kept (several sealers may run)."""
    if sealed.note is None:
        return
    path = path_in(data_dir)
    with _REMEMBERING:
        try:
            if _size(path.read_text()) >= sealed.size:
                return
        except FileNotFoundError:
            pass
        draft = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        draft.write_text(sealed.note)
        os.replace(draft, path)  # readers see the old or the new note, never half of one


def witnessed(data_dir: Path) -> list[str]:
    try:
        return [path_in(data_dir).read_text()]
    except FileNotFoundError:
        return []
