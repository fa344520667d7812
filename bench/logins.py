"""Logins: does a wrong password take as long for an email no member has as for a member's?

`python -m bench.logins` opens a node on SQLite in a temporary folder, signs one member up
with the node's own password hashing (Argon2id at its recommended cost), then times wrong
passwords for that member's email and for unknown emails, interleaved, each from its own
address (no try waits for another), and right passwords. It prints the median and 90th
percentile of each and the ratio of the medians. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from members import service
from members.errors import BAD_LOGIN
from runtime.node import Node, init_node
from runtime.settings import Settings
from web.refusals import Refusal

PASSWORD = "correct horse battery staple"
EMAIL = "camille@bench.test"


def timed(node: Node, email: str, password: str, address: str) -> float:
    started = time.perf_counter()
    try:
        service.log_in(node, email, password, address)
    except Refusal as refusal:
        assert refusal.code == BAD_LOGIN.code, refusal.code
    return (time.perf_counter() - started) * 1000


def summary(name: str, ms: list[float]) -> str:
    p90 = statistics.quantiles(ms, n=10)[-1]
    median = statistics.median(ms)
    return f"{name:<30} median {median:6.1f} ms   p90 {p90:6.1f} ms   ({len(ms)} tries)"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.logins", description=__doc__)
    parser.add_argument("--tries", type=int, default=40, help="of each kind (default 40)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sou-bench-logins-") as folder:
        data = Path(folder)
        settings = Settings(
            data_dir=data,
            database_url=f"sqlite:///{data / 'sou.db'}",
            login_email_ceiling=1_000_000,  # one email tried from many addresses, here
        )
        node = init_node(settings)
        try:
            service.join(node, display_name="Camille", email=EMAIL, password=PASSWORD)
            known, unknown, right = [], [], []
            for n in range(args.tries):
                address = f"10.{n // 250}.{n % 250}.1"
                known.append(timed(node, EMAIL, "wrong!", address))
                unknown.append(timed(node, f"nobody{n}@bench.test", "wrong!", address))
                right.append(timed(node, EMAIL, PASSWORD, address))
        finally:
            node.close()
    print(summary("wrong password, member", known))
    print(summary("wrong password, unknown email", unknown))
    print(summary("right password", right))
    ratio = statistics.median(unknown) / statistics.median(known)
    print(f"unknown email / member, medians: {ratio:.2f}")


if __name__ == "__main__":
    main()
