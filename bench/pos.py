"""The counter over HTTP: QR sales end to end, how soon the point of sale is told, and what
one QR code costs to draw.

For each database, a node served by `sou serve --workers 2` in its own process (made as
bench/http.py makes it: `sou init`, an exchange office, shops and customers joining through
the API, customers credited at the office); the shops are approved in the database, as an
admin would, and each takes a `pos` token for its counter. Then 64 counters, each with its
own customer, on three keep-alive connections (the counter's requests, its live feed of
sales, the customer's phone):

  - flat out: every counter loops create invoice -> the customer signs and pays it -> the
    counter reads it back paid. Sales per second, and the time of one whole sale;
  - told: each counter holds /api/v1/pos/events open the whole time; the time from the
    customer's payment being answered (their confirmation) to the `sale` event for that
    invoice reaching the counter. `sou serve` hands each connection to the process holding
    the fewest, so a feed and the payment it reports are often served by different
    processes: which process holds each connection is read from /proc, and the figure is
    also given for the sales told across processes;
  - paced: the same, each counter making a sale about every --pace seconds (a busy market,
    the node below its capacity): how soon the counter is told when little queues;
  - the QR codes: web.qr's PNG and SVG of a typical invoice link, drawn in this process.

Figures are printed, never asserted. SOU_* variables set when it runs reach the node.

    python -m bench --only pos               # both databases
    python -m bench.pos --engines sqlite --seconds 10
    SOU_BENCH_PYSPY=--gil python -m bench.pos --profile /tmp/prof   # where the node's CPU goes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench import http
from wallet_api.client import WalletClient
from web.qr import qr_png, qr_svg

FUNDS = 1_000_000  # cents each customer is credited with: far more than a run spends
WARMUP = 3  # sales per counter before the clock starts
GRACE_S = 5.0  # how long to wait, after a part, for the events still on their way
IDLE_S = 4.0  # uvicorn closes a keep-alive connection idle for 5 s: open a new one before
PUBLIC_ORIGIN = "https://sou.example.org"  # what a real node's links start with


@dataclass
class PosFigures:
    engine: str
    server: str
    counters: int
    # flat out
    sales: int = 0
    seconds: float = 0.0
    per_second: float = 0.0
    sale_p50_ms: float = 0.0  # create invoice -> paid -> read back paid
    sale_p99_ms: float = 0.0
    sale_max_ms: float = 0.0
    told_p50_ms: float = 0.0  # the payer's confirmation -> the counter's `sale` event
    told_p99_ms: float = 0.0
    told_max_ms: float = 0.0
    told_same_p99_ms: float = 0.0  # feed and payment on the same process
    told_across_p99_ms: float = 0.0  # on different processes
    across_share: float = 0.0  # of the sales, those told across processes
    told_first_share: float = 0.0  # told before the payer's answer arrived
    # paced
    paced_sales: int = 0
    paced_per_second: float = 0.0
    paced_told_p50_ms: float = 0.0
    paced_told_p99_ms: float = 0.0
    paced_told_max_ms: float = 0.0
    paced_told_same_p99_ms: float = 0.0
    paced_told_across_p99_ms: float = 0.0
    paced_across_share: float = 0.0
    # both
    untold: int = 0  # sales whose event never came
    errors: int = 0
    error_sample: list[str] = field(default_factory=list)
    server_cpu_ms: float = 0.0  # per sale, flat out (warm-up included)
    client_cpu_ms: float = 0.0


@dataclass
class QrFigures:
    link_chars: int
    repeats: int
    png_median_ms: float = 0.0
    png_p90_ms: float = 0.0
    png_bytes: int = 0
    svg_median_ms: float = 0.0
    svg_p90_ms: float = 0.0
    svg_chars: int = 0


@dataclass
class PosReport:
    engines: list[PosFigures] = field(default_factory=list)
    qr: QrFigures | None = None


say = http.say


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[int(share * (len(ordered) - 1))]


# -- a keep-alive connection, as cheap as bench/http.py's ------------------------------------------


@dataclass
class Link:
    """One keep-alive HTTP/1.1 connection to the node, with a bearer token."""

    base_url: str
    token: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    head: str  # the headers every request carries
    used: float  # time.monotonic() of its last answer

    @classmethod
    async def open(cls, base_url: str, token: str) -> Link:
        host, port = urlsplit(base_url).hostname or "127.0.0.1", urlsplit(base_url).port or 80
        reader, writer = await asyncio.open_connection(host, port)
        head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\nAccept-Language: en\r\n"
        return cls(base_url, token, reader, writer, head, time.monotonic())

    async def keep_open(self) -> None:
        """A new connection in place of one left idle long enough for the node to close it."""
        if time.monotonic() - self.used > IDLE_S:
            self.close()
            fresh = await Link.open(self.base_url, self.token)
            self.reader, self.writer, self.used = fresh.reader, fresh.writer, fresh.used

    @property
    def port(self) -> int:
        """This end's port: how /proc names the connection on the server's side."""
        return int(self.writer.get_extra_info("sockname")[1])

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Send a request, read its whole answer: (status, body)."""
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        request = f"{method} {path} HTTP/1.1\r\n{self.head}"
        if body is not None:
            request += "Content-Type: application/json\r\n"
        request += f"Content-Length: {len(payload)}\r\n\r\n"
        self.writer.write(request.encode() + payload)
        status, headers = await self.read_head()
        if headers.get(b"transfer-encoding") == b"chunked":
            parts = []
            while chunk := await self.read_chunk():
                parts.append(chunk)
            answer = b"".join(parts)
        else:
            answer = await self.reader.readexactly(int(headers.get(b"content-length", 0)))
        self.used = time.monotonic()
        return status, answer

    async def read_head(self) -> tuple[int, dict[bytes, bytes]]:
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the node closed the connection")
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split(b" ", 2)[1]), headers

    async def read_chunk(self) -> bytes:
        """One chunk of a chunked answer; b"" at its end."""
        size = int((await self.reader.readline()).split(b";")[0], 16)
        data = await self.reader.readexactly(size + 2)  # and its CRLF
        return data[:-2]

    def close(self) -> None:
        self.writer.close()


class Feed:
    """A counter's live feed (/api/v1/pos/events), noting when each invoice's sale arrives."""

    def __init__(self, link: Link, told: dict[str, float]) -> None:
        self.link, self.told = link, told
        self.buffer = b""

    @classmethod
    async def open(cls, base_url: str, token: str, told: dict[str, float]) -> Feed:
        link = await Link.open(base_url, token)
        asking = f"GET /api/v1/pos/events HTTP/1.1\r\n{link.head}Accept: text/event-stream\r\n"
        link.writer.write(asking.encode() + b"\r\n")
        status, _ = await link.read_head()
        if status != 200:
            raise RuntimeError(f"the counter's feed answered {status}")
        feed = cls(link, told)
        while "ready" not in [kind for kind, _ in await feed.events()]:
            pass  # subscribed: from now on no sale of the shop goes unreported
        return feed

    async def events(self) -> list[tuple[str, str]]:
        """The events of the next chunk(s) of the stream: (event, data)."""
        while b"\n\n" not in self.buffer:
            chunk = await self.link.read_chunk()
            if not chunk:
                raise ConnectionError("the feed ended")
            self.buffer += chunk
        found = []
        *whole, self.buffer = self.buffer.split(b"\n\n")
        for block in whole:
            fields = dict(
                line.decode().split(": ", 1) for line in block.split(b"\n") if b": " in line
            )
            found.append((fields.get("event", ""), fields.get("data", "")))
        return found

    async def listen(self) -> None:
        """Note each sale's arrival until cancelled."""
        while True:
            for kind, data in await self.events():
                if kind == "sale":
                    self.told[json.loads(data)["invoice"]] = time.perf_counter()


# -- the counters ----------------------------------------------------------------------------------


@dataclass
class Sale:
    invoice: str
    started: float
    confirmed: float  # the customer's payment answered
    seen: float  # the counter read the invoice back paid
    across: bool  # paid through one server process, told through another


@dataclass
class Counter:
    """A shop's counter and the customer paying at it, each on their own connection."""

    shop: Link  # the counter's requests (its `pos` token)
    feed: Feed
    phone: Link  # the customer's (their wallet token)
    customer: WalletClient  # holds the customer's device key: signs each payment
    across: bool = False  # the feed's server process is not the payments'
    sales: list[Sale] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def sell(self, amount: int) -> None:
        """One sale: ask, get paid, see it paid."""
        started = time.perf_counter()
        status, body = await self.shop.call("POST", "/api/v1/pos/invoices", {"amount": amount})
        if status != 201:
            return self.refused("invoice", status, body)
        invoice = json.loads(body)
        order = self.customer.sign(
            "payment",
            from_=self.customer.account(),
            to=f"member:{invoice['merchant']}",
            amount=invoice["amount"],
            currency=invoice["currency"],
            invoice=invoice["id"],
        )
        status, body = await self.phone.call(
            "POST", f"/api/v1/pay/invoices/{invoice['id']}", order.to_json()
        )
        confirmed = time.perf_counter()
        if status != 201:
            return self.refused("payment", status, body)
        status, body = await self.shop.call("GET", f"/api/v1/pos/invoices/{invoice['id']}")
        if status != 200 or json.loads(body)["state"] != "paid":
            return self.refused("paid?", status, body)
        sale = Sale(invoice["id"], started, confirmed, time.perf_counter(), self.across)
        self.sales.append(sale)

    def refused(self, step: str, status: int, body: bytes) -> None:
        self.errors.append(f"{step}: {status} {body[:160].decode(errors='replace')}")

    async def sell_until(self, deadline: float, sales: int | None, pace: float | None) -> None:
        """Sell until the deadline (or `sales` times); with `pace`, one sale every `pace`
        seconds or so, else one after the other."""
        made = 0
        while time.perf_counter() < deadline and (sales is None or made < sales):
            await self.sell(100 + random.randrange(900))
            made += 1
            if pace:
                await asyncio.sleep(pace * random.uniform(0.5, 1.5))


def where_served(server_pid: int, port: int) -> dict[int, int]:
    """Which of the server's processes holds each connection: {client port: pid}, read
    from /proc (Linux). `sou serve`'s parent hands each connection to a child process."""
    sockets: dict[str, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] != str(server_pid):
                continue
            for fd in (stat.parent / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    sockets[target[8:-1]] = int(stat.parent.name)
        except OSError:  # a process that just ended
            continue
    held = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            columns = line.split()
            local, remote, inode = columns[1], columns[2], columns[9]
            if int(local.rsplit(":", 1)[1], 16) == port and inode in sockets:
                held[int(remote.rsplit(":", 1)[1], 16)] = sockets[inode]
    return held


async def open_counters(
    base_url: str, customers: list[http.Payer], pos_tokens: list[str]
) -> tuple[list[Counter], dict[str, float]]:
    """Each counter's connections, warmed up by a few sales."""
    told: dict[str, float] = {}
    counters = []
    for n, (customer, token) in enumerate(zip(customers, pos_tokens, strict=True)):
        # One at a time, each to the process holding the fewest: opened in this order, every
        # other counter's feed lands on its customer's process, and the others' on the other.
        if n % 2:
            feed = await Feed.open(base_url, token, told)
            shop = await Link.open(base_url, token)
        else:
            shop = await Link.open(base_url, token)
            feed = await Feed.open(base_url, token, told)
        phone = await Link.open(base_url, customer.token)
        counters.append(Counter(shop, feed, phone, customer.wallet))
    await asyncio.gather(*(c.sell_until(time.perf_counter() + 60, WARMUP, None) for c in counters))
    refused = [e for c in counters for e in c.errors]
    if refused:
        raise RuntimeError(f"sales refused during the warm-up: {refused[:3]}")
    return counters, told


async def get_ready(counters: list[Counter], base_url: str, pid: int) -> None:
    """Before a part: connections open, and which process serves each counter's feed and
    its customer's payments."""
    for counter in counters:
        await counter.shop.keep_open()
        await counter.phone.keep_open()
    held = where_served(pid, urlsplit(base_url).port or 80)
    if len(held) < 3 * len(counters):
        say(f"[pos] only {len(held)} of {3 * len(counters)} connections found in /proc")
    for counter in counters:
        counter.across = held.get(counter.feed.link.port) != held.get(counter.phone.port)


async def sell(
    counters: list[Counter], told: dict[str, float], seconds: float, sales: int | None, pace: float
) -> tuple[float, list[Sale], list[str]]:
    """Every counter sells for `seconds` (or `sales` sales in all), then waits for the
    events still on their way; (seconds, the sales made, errors)."""
    for counter in counters:
        counter.sales.clear()
        counter.errors.clear()
    per_counter = None if sales is None else max(1, sales // len(counters))
    deadline = time.perf_counter() + (1e9 if sales is not None else seconds)
    started = time.perf_counter()
    await asyncio.gather(*(c.sell_until(deadline, per_counter, pace) for c in counters))
    elapsed = time.perf_counter() - started
    made = [s for c in counters for s in c.sales]
    waiting_until = time.perf_counter() + GRACE_S
    while any(s.invoice not in told for s in made) and time.perf_counter() < waiting_until:
        await asyncio.sleep(0.05)
    return elapsed, made, [e for c in counters for e in c.errors]


def told_ms(sales: Iterable[Sale], told: dict[str, float]) -> list[float]:
    """Confirmation -> told, in ms (0 when the counter was told first)."""
    return [max(0.0, told[s.invoice] - s.confirmed) * 1000 for s in sales if s.invoice in told]


async def run_counters(
    figures: PosFigures,
    args: argparse.Namespace,
    base_url: str,
    pid: int,
    people: tuple[list[http.Payer], list[str]],
) -> None:
    feeds: list[asyncio.Task[None]] = []
    counters, told = await open_counters(base_url, *people)
    try:
        feeds = [asyncio.create_task(c.feed.listen()) for c in counters]
        kind, who = figures.engine, f"{len(counters)} counters"
        say(f"[pos {kind}] {who} selling flat out")
        await get_ready(counters, base_url, pid)
        with http.profiling(pid, args.pos_profile, f"pos-{kind}"):
            node_cpu, own_cpu = http.cpu_seconds(pid), time.process_time()
            seconds, sales, errors = await sell(counters, told, args.pos_seconds, args.pos_sales, 0)
        node_cpu, own_cpu = http.cpu_seconds(pid) - node_cpu, time.process_time() - own_cpu
        flat_out(figures, seconds, sales, told, errors)
        figures.server_cpu_ms = 1000 * node_cpu / max(len(sales), 1)
        figures.client_cpu_ms = 1000 * own_cpu / max(len(sales), 1)
        say(
            f"[pos {kind}]   {figures.per_second:,.0f} sales/s, sale p99 "
            f"{figures.sale_p99_ms:.0f} ms, told p99 {figures.told_p99_ms:.0f} ms"
        )
        if args.pos_paced_seconds > 0:
            say(f"[pos {kind}] {who} selling every {args.pos_pace:g} s or so")
            await get_ready(counters, base_url, pid)
            seconds, sales, errors = await sell(
                counters, told, args.pos_paced_seconds, None, args.pos_pace
            )
            paced(figures, seconds, sales, told, errors)
            say(f"[pos {kind}]   told p99 {figures.paced_told_p99_ms:.0f} ms")
    finally:
        for task in feeds:
            task.cancel()
        await asyncio.gather(*feeds, return_exceptions=True)
        for counter in counters:
            for link in (counter.shop, counter.feed.link, counter.phone):
                link.close()


def flat_out(
    figures: PosFigures,
    seconds: float,
    sales: list[Sale],
    told: dict[str, float],
    errors: list[str],
) -> None:
    figures.sales, figures.seconds = len(sales), seconds
    figures.per_second = len(sales) / seconds
    whole = [(s.seen - s.started) * 1000 for s in sales]
    figures.sale_p50_ms = statistics.median(whole) if whole else 0.0
    figures.sale_p99_ms, figures.sale_max_ms = percentile(whole, 0.99), max(whole, default=0.0)
    ms = told_ms(sales, told)
    figures.told_p50_ms = statistics.median(ms) if ms else 0.0
    figures.told_p99_ms, figures.told_max_ms = percentile(ms, 0.99), max(ms, default=0.0)
    figures.told_same_p99_ms = percentile(told_ms([s for s in sales if not s.across], told), 0.99)
    figures.told_across_p99_ms = percentile(told_ms([s for s in sales if s.across], told), 0.99)
    figures.across_share = sum(s.across for s in sales) / max(len(sales), 1)
    first = sum(1 for s in sales if s.invoice in told and told[s.invoice] < s.confirmed)
    figures.told_first_share = first / max(len(sales), 1)
    note_misses(figures, sales, told, errors)


def paced(
    figures: PosFigures,
    seconds: float,
    sales: list[Sale],
    told: dict[str, float],
    errors: list[str],
) -> None:
    figures.paced_sales, figures.paced_per_second = len(sales), len(sales) / seconds
    ms = told_ms(sales, told)
    figures.paced_told_p50_ms = statistics.median(ms) if ms else 0.0
    figures.paced_told_p99_ms = percentile(ms, 0.99)
    figures.paced_told_max_ms = max(ms, default=0.0)
    same = told_ms([s for s in sales if not s.across], told)
    figures.paced_told_same_p99_ms = percentile(same, 0.99)
    across = told_ms([s for s in sales if s.across], told)
    figures.paced_told_across_p99_ms = percentile(across, 0.99)
    figures.paced_across_share = sum(s.across for s in sales) / max(len(sales), 1)
    note_misses(figures, sales, told, errors)


def note_misses(
    figures: PosFigures, sales: list[Sale], told: dict[str, float], errors: list[str]
) -> None:
    figures.untold += sum(1 for s in sales if s.invoice not in told)
    figures.errors += len(errors)
    figures.error_sample = sorted({*figures.error_sample, *errors})[:5]


# -- the node --------------------------------------------------------------------------------------


def approve_shops(env: dict[str, str], shops: list[str]) -> None:
    """Approve every shop (their member ids), as the association's admin would: only
    approved shops take payments at the counter."""
    from members.shops import decide
    from runtime.database import make_engine
    from runtime.settings import Settings

    settings = Settings(data_dir=Path(env["SOU_DATA_DIR"]), database_url=env["SOU_DATABASE_URL"])
    engine = make_engine(settings.resolved_database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            for member_id in shops:
                decide(conn, member_id, "approved", None, now_ms())
    finally:
        engine.dispose()


def now_ms() -> int:
    return int(time.time() * 1000)


def open_shops(base_url: str, shops: int) -> list[tuple[str, str]]:
    """Shops join through the API; each owner logs in and takes a `pos` token for the
    counter's device. (member id, token) of each."""
    from concurrent.futures import ThreadPoolExecutor

    def open_shop(n: int) -> tuple[str, str]:
        with WalletClient(base_url, language="en") as owner:
            email = f"shop-{n}@bench.test"
            trade = {"trade_name": f"Shop {n}", "category": "food", "address": "1 place"}
            owner.join(f"Owner {n}", email, http.PASSWORD, role="merchant", merchant=trade)
            member = owner.log_in(email, http.PASSWORD)
            return str(member["id"]), owner.create_token("counter", scope="pos").secret

    with ThreadPoolExecutor(8) as pool:  # Argon2 makes joining slow: a few at once
        return list(pool.map(open_shop, range(shops)))


def bench_engine(kind: str, args: argparse.Namespace, workdir: Path) -> tuple[PosFigures, str]:
    """One node for `kind`: its figures, and the link of one of its invoices."""
    workers = args.pos_workers
    figures = PosFigures(kind, f"sou serve --workers {workers}", args.pos_counters)
    with http.fresh_database(kind) as database_url:
        env = http.node_env(workdir / f"node-{kind}", database_url)
        env["SOU_WORKERS"] = str(workers)  # `sou serve` reads it as it would --workers
        say(f"[pos {kind}] sou init, sou operator office")
        http.sou(env, "init")
        office = f"{http.OFFICE}@bench.test"
        http.sou(env, "operator", "office", office, "--name", "Guichet", "--office", http.OFFICE)
        log = workdir / f"server-{kind}.log"
        with http.serving(env, "sou", workers, log, "h11", "asyncio") as (base_url, pid):
            say(f"[pos {kind}] {args.pos_counters} shops and their customers join")
            customers, _ = http.people(base_url, args.pos_counters, 0, FUNDS)
            shops = open_shops(base_url, args.pos_counters)
            approve_shops(env, [member_id for member_id, _ in shops])
            tokens = [token for _, token in shops]
            asyncio.run(run_counters(figures, args, base_url, pid, (customers, tokens)))
            link = invoice_link(base_url, tokens[0])
    return figures, link


def invoice_link(base_url: str, token: str) -> str:
    """A typical invoice's link, as a node at a real https:// address would make it."""
    with WalletClient(base_url, token=token, language="en") as counter:
        body = {"amount": 1250, "label": "2 baguettes"}
        url = str(counter.request("POST", "/api/v1/pos/invoices", json=body).json()["url"])
    public = urlsplit(PUBLIC_ORIGIN)
    return urlunsplit(urlsplit(url)._replace(scheme=public.scheme, netloc=public.netloc))


def qr_figures(link: str, repeats: int) -> QrFigures:
    """Time web.qr's PNG and SVG of `link`, in this process."""
    figures = QrFigures(len(link), repeats)
    figures.png_bytes, figures.svg_chars = len(qr_png(link)), len(qr_svg(link))
    for name, draw in (("png", qr_png), ("svg", qr_svg)):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            draw(link)
            times.append((time.perf_counter() - started) * 1000)
        setattr(figures, f"{name}_median_ms", statistics.median(times))
        setattr(figures, f"{name}_p90_ms", percentile(times, 0.9))
    return figures


# -- report ----------------------------------------------------------------------------------------


FLAT_ROWS = [
    ("flat out: sales/s", "per_second", "{:,.0f}"),
    ("  one sale p50 (ms)", "sale_p50_ms", "{:.0f}"),
    ("  one sale p99 (ms)", "sale_p99_ms", "{:.0f}"),
    ("  one sale max (ms)", "sale_max_ms", "{:.0f}"),
    ("  confirmation -> counter told p50 (ms)", "told_p50_ms", "{:.0f}"),
    ("  confirmation -> counter told p99 (ms)", "told_p99_ms", "{:.0f}"),
    ("  confirmation -> counter told max (ms)", "told_max_ms", "{:.0f}"),
    ("  told p99, feed on the payer's process (ms)", "told_same_p99_ms", "{:.0f}"),
    ("  told p99, feed on the other process (ms)", "told_across_p99_ms", "{:.0f}"),
    ("  sales told across processes", "across_share", "{:.0%}"),
    ("  counter told before the payer", "told_first_share", "{:.0%}"),
    ("  sales timed", "sales", "{:,}"),
    ("  node CPU per sale (ms)", "server_cpu_ms", "{:.2f}"),
    ("  load generator CPU per sale (ms)", "client_cpu_ms", "{:.2f}"),
]
PACED_ROWS = [
    ("paced: sales/s", "paced_per_second", "{:,.0f}"),
    ("  confirmation -> counter told p50 (ms)", "paced_told_p50_ms", "{:.0f}"),
    ("  confirmation -> counter told p99 (ms)", "paced_told_p99_ms", "{:.0f}"),
    ("  confirmation -> counter told max (ms)", "paced_told_max_ms", "{:.0f}"),
    ("  told p99, feed on the payer's process (ms)", "paced_told_same_p99_ms", "{:.0f}"),
    ("  told p99, feed on the other process (ms)", "paced_told_across_p99_ms", "{:.0f}"),
    ("  sales told across processes", "paced_across_share", "{:.0%}"),
]
BOTH_ROWS = [("sales never told", "untold", "{:,}"), ("errors", "errors", "{:,}")]


def print_table(report: PosReport) -> None:
    rows = report.engines
    if rows:
        who = f"{rows[0].counters} counters, {rows[0].server}"
        print(f"\nQR sales at the counter over HTTP ({who})")
        print(f"{'':48}" + "".join(f"{r.engine:>12}" for r in rows))
    paced_rows = PACED_ROWS if any(r.paced_sales for r in rows) else []
    for label, attr, fmt in [*FLAT_ROWS, *paced_rows, *BOTH_ROWS]:
        print(f"{label:48}" + "".join(f"{fmt.format(getattr(r, attr)):>12}" for r in rows))
    for r in rows:
        for sample in r.error_sample:
            print(f"  {r.engine}, error: {sample}")
    if report.qr is not None:
        qr = report.qr
        print(f"\nOne QR code of a {qr.link_chars}-character invoice link ({qr.repeats} times)")
        print(
            f"  PNG: median {qr.png_median_ms:.2f} ms, p90 {qr.png_p90_ms:.2f} ms "
            f"({qr.png_bytes:,} bytes)"
        )
        print(
            f"  SVG: median {qr.svg_median_ms:.2f} ms, p90 {qr.svg_p90_ms:.2f} ms "
            f"({qr.svg_chars:,} characters)"
        )


def pace(text: str) -> float:
    seconds = float(text)
    if not 0 < seconds <= 2.5:
        raise argparse.ArgumentTypeError("a pace is more than 0 and at most 2.5 seconds")
    return seconds


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """This benchmark's options, each named --<prefix><name> (bench/__main__ uses 'pos-')."""
    sold = parser.add_mutually_exclusive_group()
    sold.add_argument(
        f"--{prefix}seconds",
        dest="pos_seconds",
        metavar="S",
        type=float,
        default=10.0,
        help="how long the counters sell flat out, per database (default 10)",
    )
    sold.add_argument(
        f"--{prefix}sales",
        dest="pos_sales",
        metavar="N",
        type=int,
        help="or: sell this many sales flat out in all, per database, however long it takes",
    )
    parser.add_argument(
        f"--{prefix}counters", dest="pos_counters", metavar="N", type=int, default=64
    )
    parser.add_argument(
        f"--{prefix}paced-seconds",
        dest="pos_paced_seconds",
        metavar="S",
        type=float,
        default=10.0,
        help="then how long they sell at a pace (default 10; 0: not at all)",
    )
    parser.add_argument(
        f"--{prefix}pace",
        dest="pos_pace",
        metavar="S",
        type=pace,
        default=2.0,
        help="the pace: seconds between two sales of a counter, on average (default 2, at "
        "most 2.5: the node closes connections left idle for 5 s)",
    )
    parser.add_argument(
        f"--{prefix}workers",
        dest="pos_workers",
        metavar="N",
        type=int,
        default=2,
        help="the node's web server processes (`sou serve --workers`, default 2)",
    )
    parser.add_argument(
        f"--{prefix}qr-repeats",
        dest="pos_qr_repeats",
        metavar="N",
        type=int,
        default=200,
        help="QR codes drawn of each kind, PNG and SVG (default 200)",
    )
    parser.add_argument(
        f"--{prefix}profile",
        dest="pos_profile",
        metavar="DIR",
        type=Path,
        help="sample the node with py-spy (pip install py-spy) while the counters sell flat "
        "out, and write collapsed stacks to DIR/http-pos-<engine>.txt",
    )


def run(args: argparse.Namespace) -> PosReport:
    report = PosReport()
    link = ""
    with tempfile.TemporaryDirectory(prefix="sou-bench-pos-") as workdir:
        for kind in args.engines.split(","):
            figures, link = bench_engine(kind.strip(), args, Path(workdir))
            report.engines.append(figures)
    if link:
        say(f"[pos] drawing {args.pos_qr_repeats} QR codes of each kind")
        report.qr = qr_figures(link, args.pos_qr_repeats)
    print_table(report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--engines", default="sqlite,postgresql", help="comma-separated (default: both)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    add_arguments(parser)
    args = parser.parse_args()
    report = run(args)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
