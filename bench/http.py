"""HTTP payments per second: the node served by uvicorn in its own process, 64 clients paying
through the API (POST /api/v1/transfers, orders signed by each payer's device key, bearer
wallet tokens), the load generator on the same machine.

For each database: `sou init` in a temporary data directory (and, for PostgreSQL, a fresh
database on the local server), an exchange-office operator made with `sou operator`, then
the server started; payers and shops join, log in, register a device key and take a wallet
token through the API with `wallet_api.client.WalletClient`; the office credits the payers
(cash-in API). Every payer's orders are signed before the clock starts. The timed part sends
them over one keep-alive connection per payer, each payer waiting for an answer before its
next order, as a device does. Then, on the same node, the same load from one hot payer and
from a few (--http-hot-payers): connection c pays with the token and orders of payer
c % k, so every server process posts for the same accounts at once, as an exchange office
or escrows releasing do. Figures are printed, never asserted. SOU_* variables set when it
runs reach the node (e.g. SOU_POOL_SIZE=64).

    python -m bench --only http                  # both databases
    python -m bench.http --engines sqlite --server uvicorn --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select

from bench.databases import postgres_database
from wallet_api.client import WalletClient

ORIGIN = "bench.sou.localhost/village"
PASSWORD = "bench password 2026"
OFFICE = "guichet"


@dataclass
class HttpFigures:
    engine: str
    server: str  # how the node was served
    clients: int
    payers: int  # accounts paying: as many as clients, or a few hot ones
    payments: int = 0
    seconds: float = 0.0
    per_second: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    errors: int = 0
    error_sample: list[str] = field(default_factory=list)
    posted_in_ledger: int = 0  # payments the ledger holds after the run (warm-up included)
    spread_ratio: float = 1.0  # payments/s over those of the same node with `clients` payers
    # CPU time per payment, in ms: what the node and the load generator each cost, whatever
    # else the machine runs (the throughput is bounded by cores / their sum).
    server_cpu_ms: float = 0.0
    client_cpu_ms: float = 0.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the node in its own process ----------------------------------------------------------------


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """'' for SQLite in the data directory (the node's default), else a new PostgreSQL
    database's URL, dropped afterwards."""
    if kind == "sqlite":
        yield ""
        return
    with postgres_database("sou_bench_http") as url:
        yield url


def node_env(data_dir: Path, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SOU_DATA_DIR=str(data_dir),
        SOU_DATABASE_URL=database_url,
        SOU_ORIGIN=ORIGIN,
        SOU_NEW_PASSWORD=PASSWORD,
        SOU_LOGIN_FREE_TRIES="1000",
        SOU_JOIN_ADDRESS_CEILING="100000",
    )
    env.pop("SOU_CONFIG", None)
    return env


def sou(env: dict[str, str], *args: str) -> None:
    """Run a `sou` command as an operator would."""
    subprocess.run(
        [sys.executable, "-m", "node.cli", *args], env=env, check=True, stdout=subprocess.DEVNULL
    )


@contextmanager
def profiling(pid: int, folder: Path | None, kind: str) -> Iterator[None]:
    """With --profile: sample the server with py-spy (installed apart, not a dependency)
    while the block runs; collapsed stacks in <folder>/http-<engine>.txt."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "--pid", str(pid), "--subprocesses", "--nonblocking"]
    command += ["--format", "raw", *os.environ.get("SOU_BENCH_PYSPY", "").split()]
    output = folder / f"http-{kind}.txt"
    sampler = subprocess.Popen([*command, "--output", str(output)], stdout=subprocess.DEVNULL)
    time.sleep(1)  # attached before the load starts
    try:
        yield
    finally:
        sampler.send_signal(signal.SIGINT)
        sampler.wait(60)
        say(f"[http {kind}] py-spy profile of the server: {output}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (uvicorn's workers), Linux."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that just ended
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # itself or a child
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(
    env: dict[str, str], server: str, workers: int, log: Path, http: str, loop: str
) -> Iterator[tuple[str, int]]:
    """Start the node's web server in its own process; yield its URL and pid; stop it."""
    port = free_port()
    if server == "sou":  # as `make run` serves it: one process, access log on
        command = [sys.executable, "-m", "node.cli", "serve", "--port", str(port)]
    else:
        command = [
            sys.executable, "-m", "uvicorn", "node.app:create_app", "--factory",
            "--port", str(port), "--workers", str(workers), "--no-access-log",
            "--log-level", "warning", "--http", http, "--loop", loop,
        ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the node did not start: see {log}")
            time.sleep(0.1)
        yield base_url, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the village, through the API ---------------------------------------------------------------


@dataclass
class Payer:
    wallet: WalletClient
    token: str


def people(base_url: str, payers: int, shops: int, funds: int) -> tuple[list[Payer], list[str]]:
    """Payers and shops join, log in, register a key; payers take a wallet token and are
    credited by the exchange office."""
    from concurrent.futures import ThreadPoolExecutor

    def join(n: int, role: str) -> WalletClient:
        wallet = WalletClient(base_url, language="en")
        email = f"{role}-{n}@bench.test"
        trade = {"trade_name": f"Shop {n}", "category": "food", "address": "1 place"}
        wallet.join(
            f"{role} {n}",
            email,
            PASSWORD,
            role=role,
            merchant=trade if role == "merchant" else None,
        )
        wallet.log_in(email, PASSWORD)
        wallet.register_key("bench")
        wallet.node_info()  # kept: orders are signed after the connection closes
        return wallet

    with ThreadPoolExecutor(8) as pool:  # Argon2 makes joining slow: a few at once
        shop_wallets = list(pool.map(lambda n: join(n, "merchant"), range(shops)))
        payer_wallets = list(pool.map(lambda n: join(n, "resident"), range(payers)))
    office = WalletClient(base_url, language="en")
    office.log_in(f"{OFFICE}@bench.test", PASSWORD)
    for wallet in payer_wallets:
        body = {"id": uuid.uuid4().hex, "member": wallet.account().removeprefix("member:")}
        office.request("POST", "/api/v1/office/cash-ins", json={**body, "amount": funds})
    found = [Payer(w, w.create_token("bench").secret) for w in payer_wallets]
    accounts = [w.account() for w in shop_wallets]
    for wallet in [*shop_wallets, *payer_wallets, office]:
        wallet.close()
    return found, accounts


def presign(payers: list[Payer], links: int, shops: list[str], per_link: int) -> list[list[bytes]]:
    """Each connection's orders, signed by its payer's device key and serialised, before
    the clock: connection c pays for payers[c % len(payers)], to many shops."""
    bodies = []
    for c in range(links):
        wallet = payers[c % len(payers)].wallet
        orders = (
            wallet.payment_order(shops[(c + n) % len(shops)], 1 + n % 7, ttl_s=3_600)
            for n in range(per_link)
        )
        bodies.append([json.dumps(o.to_json(), separators=(",", ":")).encode() for o in orders])
    return bodies


# -- the load: one keep-alive connection per payer ------------------------------------------------


@dataclass
class Connection:
    """One payer's keep-alive connection to the node, and its request head."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    head: bytes

    @classmethod
    async def open(cls, base_url: str, token: str) -> Connection:
        host, port = urlsplit(base_url).hostname or "127.0.0.1", urlsplit(base_url).port or 80
        reader, writer = await asyncio.open_connection(host, port)
        head = (
            f"POST /api/v1/transfers HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            "Accept-Language: en\r\n"
        ).encode()
        return cls(reader, writer, head)

    async def pay_all(self, bodies: list[bytes], latencies: list[float], errors: list[str]) -> None:
        """Send orders one after the other, each when the last is answered. A raw HTTP/1.1
        client: the load generator shares the machine, so it must cost little."""
        for body in bodies:
            started = time.perf_counter()
            self.writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            status_line = await self.reader.readline()
            length = 0
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            answer = await self.reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = status_line.split(b" ", 2)[1] if status_line else b"---"
            if status != b"201":
                errors.append(f"{status.decode()} {answer[:160].decode(errors='replace')}")


async def load(
    base_url: str, payers: list[Payer], bodies: list[list[bytes]], warmup: int
) -> tuple[float, list[float], list[str]]:
    """Open the connections (connection c with the token of payers[c % len(payers)]) and
    warm up (not timed), then send the rest at once; (seconds, latencies and errors of the
    timed part)."""
    links = await asyncio.gather(
        *(Connection.open(base_url, payers[c % len(payers)].token) for c in range(len(bodies)))
    )
    warm_errors: list[str] = []
    await asyncio.gather(
        *(c.pay_all(b[:warmup], [], warm_errors) for c, b in zip(links, bodies, strict=True))
    )
    if warm_errors:
        raise RuntimeError(f"payments refused during the warm-up: {warm_errors[:3]}")
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(c.pay_all(b[warmup:], latencies, errors) for c, b in zip(links, bodies, strict=True))
    )
    seconds = time.perf_counter() - started
    for link in links:
        link.writer.close()
    return seconds, latencies, errors


def count_payments(env: dict[str, str]) -> int:
    from ledger.models import transfers
    from runtime.database import make_engine
    from runtime.settings import Settings

    settings = Settings(data_dir=Path(env["SOU_DATA_DIR"]), database_url=env["SOU_DATABASE_URL"])
    engine = make_engine(settings.resolved_database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            query = select(func.count()).select_from(transfers).where(transfers.c.kind == "payment")
            return int(conn.scalar(query) or 0)
    finally:
        engine.dispose()


def bench_engine(kind: str, args: argparse.Namespace, workdir: Path) -> list[HttpFigures]:
    """One node for `kind`: the spread load, then each hot payers' load; a row for each."""
    server = "sou serve"
    if args.server == "uvicorn":
        server = f"uvicorn --workers {args.workers} --http {args.http} --loop {args.loop}"
    rows: list[HttpFigures] = []
    data_dir = workdir / f"node-{kind}"
    with fresh_database(kind) as database_url:
        env = node_env(data_dir, database_url)
        say(f"[http {kind}] sou init, sou operator office")
        sou(env, "init")
        sou(
            env,
            "operator",
            "office",
            f"{OFFICE}@bench.test",
            "--name",
            "Guichet",
            "--office",
            OFFICE,
        )
        log = workdir / f"server-{kind}.log"
        serve = serving(env, args.server, args.workers, log, args.http, args.loop)
        with serve as (base_url, pid):
            say(f"[http {kind}] {args.clients} payers and {args.shops} shops join ({server})")
            payers, shops = people(base_url, args.clients, args.shops, funds=1_000_000)
            for count in [args.clients, *args.hot_payers]:
                figures = HttpFigures(kind, server, args.clients, count)
                rows.append(figures)
                pay(figures, args, base_url, pid, payers[:count], shops)
                figures.spread_ratio = figures.per_second / rows[0].per_second
        posted = count_payments(env)
    for figures in rows:
        figures.posted_in_ledger = posted
    return rows


def pay(
    figures: HttpFigures,
    args: argparse.Namespace,
    base_url: str,
    pid: int,
    payers: list[Payer],
    shops: list[str],
) -> None:
    """Time one load: args.clients connections paying for `payers`; fill in `figures`."""
    kind, who = figures.engine, f"{len(payers)} payers"
    per_link = args.warmup + args.payments // args.clients
    say(f"[http {kind}] signing {per_link * args.clients} orders of {who}")
    bodies = presign(payers, args.clients, shops, per_link)
    say(f"[http {kind}] paying from {args.clients} connections for {who}")
    server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
    with profiling(pid, args.profile, f"{kind}-{len(payers)}"):
        seconds, latencies, errors = asyncio.run(load(base_url, payers, bodies, args.warmup))
    server_cpu, client_cpu = cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu
    figures.payments, figures.seconds, figures.errors = len(latencies), seconds, len(errors)
    figures.per_second = (len(latencies) - len(errors)) / seconds
    ms = sorted(x * 1000 for x in latencies)
    figures.p50_ms = statistics.median(ms)
    figures.p90_ms = ms[int(0.90 * (len(ms) - 1))]
    figures.p99_ms = ms[int(0.99 * (len(ms) - 1))]
    figures.max_ms = ms[-1]
    figures.error_sample = sorted(set(errors))[:5]
    # The warm-up is inside the CPU measure too: per payment sent.
    sent = len(latencies) + args.warmup * args.clients
    figures.server_cpu_ms = 1000 * server_cpu / sent
    figures.client_cpu_ms = 1000 * client_cpu / sent
    say(
        f"[http {kind}]   {figures.per_second:,.0f} payments/s, p50 {figures.p50_ms:.1f} ms, "
        f"p99 {figures.p99_ms:.1f} ms, {figures.errors} errors, node CPU "
        f"{figures.server_cpu_ms:.2f} ms and load generator {figures.client_cpu_ms:.2f} ms "
        "per payment"
    )


def print_table(rows: list[HttpFigures]) -> None:
    print(f"\nHTTP payments through the API ({rows[0].clients} clients, {rows[0].server})")
    print(f"{'':30}" + "".join(f"{r.engine:>12}" for r in rows))
    print(f"{'accounts paying':30}" + "".join(f"{r.payers:>12}" for r in rows))
    for label, attr, fmt in [
        ("payments/s", "per_second", "{:,.0f}"),
        ("  of the spread rate", "spread_ratio", "{:.0%}"),
        ("latency p50 (ms)", "p50_ms", "{:.1f}"),
        ("latency p90 (ms)", "p90_ms", "{:.1f}"),
        ("latency p99 (ms)", "p99_ms", "{:.1f}"),
        ("latency max (ms)", "max_ms", "{:.1f}"),
        ("node CPU per payment (ms)", "server_cpu_ms", "{:.2f}"),
        ("load generator CPU (ms)", "client_cpu_ms", "{:.2f}"),
        ("payments timed", "payments", "{:,}"),
        ("errors", "errors", "{:,}"),
        ("payments in the ledger", "posted_in_ledger", "{:,}"),
    ]:
        print(f"{label:30}" + "".join(f"{fmt.format(getattr(r, attr)):>12}" for r in rows))
    for r in rows:
        for sample in r.error_sample:
            print(f"  {r.engine}, {r.payers} payers, error: {sample}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http-clients", dest="clients", type=int, default=64)
    parser.add_argument("--http-shops", dest="shops", type=int, default=16)
    parser.add_argument(
        "--http-payments",
        dest="payments",
        type=int,
        default=32_000,
        help="payments timed per engine and load (default 32,000), after a warm-up",
    )
    parser.add_argument("--http-warmup", dest="warmup", type=int, default=5, help="per client")
    parser.add_argument(
        "--http-hot-payers",
        dest="hot_payers",
        type=lambda text: [int(n) for n in text.split(",") if n],
        default=[1, 4],
        help="after the spread load, the same from so few payers over all the connections "
        "(comma-separated counts; default 1,4; '' for none)",
    )
    parser.add_argument(
        "--server",
        choices=("sou", "uvicorn"),
        default="sou",
        help="`sou serve` as shipped (default), or uvicorn with the app factory, "
        "without access log, --workers processes",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--http",
        choices=("h11", "httptools"),
        default="h11",
        help="uvicorn's HTTP parser (httptools: pip install httptools, not a dependency)",
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="uvicorn's event loop (uvloop: pip install uvloop, not a dependency)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the server with py-spy (pip install py-spy) during the timed part and "
        "write collapsed stacks into this folder (SOU_BENCH_PYSPY='--gil': only the thread "
        "holding the GIL)",
    )


def run(args: argparse.Namespace) -> list[HttpFigures]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="sou-bench-http-") as workdir:
        for kind in args.engines.split(","):
            rows += bench_engine(kind.strip(), args, Path(workdir))
    print_table(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    add_arguments(parser)
    args = parser.parse_args()
    rows = run(args)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))


if __name__ == "__main__":
    main()
