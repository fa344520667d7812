"""Secret keys on disk: one JSON file per key under `<data_dir>/keys`, readable by the node's
user only (directory 0700, files 0600). A key file readable by others is refused, as ssh does.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from ledger.canonical import b64, unb64
from ledger.signing import SigningKey


class KeyFileError(Exception):
    pass


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def save_key(path: Path, key: SigningKey, owner: str) -> None:
    """Write a new key file; never overwrites an existing one."""
    private_dir(path.parent)
    body = json.dumps({"owner": owner, "key_id": key.key_id, "seed": b64(key.seed)})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(body + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def load_key(path: Path) -> SigningKey:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(f"no key file at {path}: run `sou init`") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} is readable by other users; run `chmod 600 {path}`")
    try:
        data = json.loads(path.read_text())
        return SigningKey(unb64(data["seed"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"{path} is not a Sou key file") from exc


def key_path(keys_dir: Path, owner: str) -> Path:
    """`node` -> node.key, `role:office:gare` -> role-office-gare.key."""
    return keys_dir / (owner.replace(":", "-") + ".key")
