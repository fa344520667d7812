"""The audit measured apart: `sou audit` run in a process of its own, so that its peak
memory is the audit's and not what built the ledger. `python -m bench.audit URL KEY [STATE]`
prints one JSON object: the report's figures, the state it leaves, the peak resident memory
of the audit's process and of its largest worker (MiB)."""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from typing import Any

from audits.audit import AuditState, audit
from runtime.database import make_engine, read_only


def audit_apart(url: str, public_key: bytes, state: str | None = None) -> dict[str, Any]:
    """Run the audit (resumed from `state` when given) in a new process; its figures."""
    args = [sys.executable, "-m", "bench.audit", url, public_key.hex()]
    done = subprocess.run(
        [*args, state] if state else args, check=True, capture_output=True, text=True
    )
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def _peak_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def _own_peak_mib() -> float:
    """This process's peak resident memory since it started. Linux carries `ru_maxrss`
    over an exec: started by the benchmark that built the ledger (hundreds of MiB of signed
    orders), the audit would be charged with the builder's peak. The memory map's own high
    water mark (VmHWM) starts afresh with the program."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return _peak_mib(resource.RUSAGE_SELF)


def main() -> None:
    url, key = sys.argv[1], bytes.fromhex(sys.argv[2])
    since = AuditState.from_json(sys.argv[3]) if len(sys.argv) > 3 else None
    engine = read_only(make_engine(url, pool_size=2))
    report = audit(engine, node_public_key=key, workers=os.cpu_count(), since=since)
    engine.dispose()
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)  # the workers exit on their own after the audit: count them in
    own, gone = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    print(
        json.dumps(
            {
                "ok": report.ok,
                "findings": [f.message for f in report.findings[:5]],
                "transfers": report.transfers,
                "seconds": report.seconds,
                "state": report.state.to_json() if report.state else None,
                "peak_mib": _own_peak_mib(),
                "worker_peak_mib": _peak_mib(resource.RUSAGE_CHILDREN),
                "cpu_seconds": own.ru_utime + own.ru_stime + gone.ru_utime + gone.ru_stime,
            }
        )
    )


if __name__ == "__main__":
    main()
