"""The counter across server processes: the point of sale's live feed held by one `sou serve`
process, the customer's payment posted by another, on one node's data and database (what
`sou serve --workers N` does, with the two processes told apart here by their ports)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine

from members.shops import decide
from tests.conftest import OPERATORS, PASSWORD
from tests.stripe_server import wait_until
from tests.test_several_nodes import answers, serving
from wallet_api.client import WalletClient


def _member(url: str, name: str, role: str = "resident") -> WalletClient:
    wallet = WalletClient(url, language="en")
    email = f"{name}.{uuid.uuid4().hex[:6]}@village.test"
    trade = {"trade_name": f"Chez {name}", "category": "food", "address": "1 place"}
    wallet.join(name, email, PASSWORD, role=role, merchant=trade if role == "merchant" else None)
    wallet.log_in(email, PASSWORD)
    wallet.register_key("phone")
    return wallet


def test_a_payment_posted_by_one_process_reaches_the_counter_held_by_another(
    node_settings: Any, tmp_path: Path
) -> None:
    data, url = node_settings.data_dir, node_settings.resolved_database_url
    with ExitStack() as stack:
        a = stack.enter_context(serving("a", data, url, workers=1))
        b = stack.enter_context(serving("b", data, url, workers=1))
        wait_until(lambda: answers(a) and answers(b), timeout=60, what="both processes serving")
        shop = _member(a.url, "Zoe", "merchant")
        with create_engine(url).begin() as conn:
            decide(conn, shop.account().removeprefix("member:"), "approved", None, 1)
        customer = _member(b.url, "Camille")
        office = WalletClient(b.url, language="en")
        office.log_in(OPERATORS["office"][0], PASSWORD)
        member = customer.account().removeprefix("member:")
        office.request(
            "POST",
            "/api/v1/office/cash-ins",
            json={"id": uuid.uuid4().hex, "member": member, "amount": 10_000},
        )

        told: list[tuple[float, dict[str, Any]]] = []
        ready = threading.Event()
        cookies = dict(shop.http.cookies)

        def counter() -> None:  # the point of sale's page, on process A
            with httpx.stream(
                "GET", f"{a.url}/api/v1/pos/events", cookies=cookies, timeout=20
            ) as r:
                event = ""
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                        if event == "ready":
                            ready.set()
                    elif line.startswith("data: ") and event == "sale":
                        told.append((time.monotonic(), json.loads(line.removeprefix("data: "))))
                        if len(told) == 3:
                            return

        listening = threading.Thread(target=counter, daemon=True)
        listening.start()
        assert ready.wait(20)
        latencies: list[float] = []
        for sales, cents in enumerate((700, 820, 1250), start=1):
            invoice = shop.request("POST", "/api/v1/pos/invoices", json={"amount": cents}).json()
            order = customer.sign(
                "payment",
                from_=customer.account(),
                to=f"member:{invoice['merchant']}",
                amount=cents,
                currency="SOU",
                invoice=invoice["id"],
            )
            paid = customer.request(  # on process B
                "POST", f"/api/v1/pay/invoices/{invoice['id']}", json=order.to_json()
            )
            confirmed = time.monotonic()
            assert paid.status_code == 201, paid.text
            wait_until(lambda n=sales: len(told) >= n, timeout=10, what="the sale")
            latencies.append(told[-1][0] - confirmed)
        listening.join(10)
        assert [(e["amount"], e["customer_name"]) for _, e in told] == [
            (700, "Camille"),
            (820, "Camille"),
            (1250, "Camille"),
        ]
        print(f"payer's confirmation -> counter told: {[round(x * 1000) for x in latencies]} ms")
