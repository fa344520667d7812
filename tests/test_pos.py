"""The counter: invoices paid at most once, the signed links of QR codes, refunds, the
shop's day, live notices between processes, and who may do what."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from audits.audit import audit
from ledger.errors import AlreadyUsed
from ledger.operations import invoice_once
from members.shops import decide
from runtime.notices import Notices
from tests.people import Person, fund, join, new_client, operator
from tests.test_qr import read as read_qr
from web.qr import qr_png


def _shop(site: Any, name: str = "Zoé", *, approved: bool = True) -> Person:
    merchant = join(site, name, role="merchant")
    if approved:
        node = site.app.state.node
        with node.engine.begin() as conn:
            decide(conn, merchant.id, "approved", None, int(time.time() * 1000))
    return merchant


def _invoice(merchant: Person, cents: int = 1250, **extra: Any) -> dict[str, Any]:
    answer = merchant.post("/api/v1/pos/invoices", json={"amount": cents, **extra})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _pay(payer: Person, bill: dict[str, Any], **overrides: Any) -> Any:
    fields = {
        "to": f"member:{bill['merchant']}",
        "amount": bill["amount"],
        "invoice": bill["id"],
        **overrides,
    }
    return payer.post(f"/api/v1/pay/invoices/{bill['id']}", json=payer.order(**fields))


def _decode(png: bytes) -> list[str]:
    return [found.text for found in read_qr(png)]


def test_an_invoice_is_paid_once_and_its_code_decodes_to_its_link(site: Any) -> None:
    zoe, camille, remi = _shop(site), join(site, "Camille"), join(site, "Rémi")
    fund(site, camille, 5000)
    fund(site, remi, 5000)
    invoice = _invoice(zoe, 1250, label="2 baguettes")
    assert invoice["state"] == "open"
    assert _decode(qr_png(invoice["url"])) == [invoice["url"]]
    assert urlsplit(invoice["url"]).path == "/pay"

    first = _pay(camille, invoice)
    assert first.status_code == 201, first.text
    again = camille.post(
        f"/api/v1/pay/invoices/{invoice['id']}",
        json=first.request and json.loads(first.request.content),
    )
    assert (again.status_code, again.json()["transfer_id"]) == (200, first.json()["transfer_id"])
    second = _pay(remi, invoice)
    assert (second.status_code, second.json()["error"]) == (409, "invoice_paid")

    seen = zoe.get(f"/api/v1/pos/invoices/{invoice['id']}").json()
    assert (seen["state"], seen["payer_name"]) == ("paid", "Camille")
    assert (camille.balance(), remi.balance(), zoe.balance()) == (3750, 5000, 1250)


def test_the_ledger_lets_one_transfer_only_use_an_invoice(site: Any) -> None:
    """Past the counter's checks (two orders in one batch, or one after the other straight
    to the ledger), the one-time token holds the line."""
    zoe, camille, remi = _shop(site), join(site, "Camille"), join(site, "Rémi")
    fund(site, camille, 5000)
    fund(site, remi, 5000)
    node = site.app.state.node
    from ledger.signing import SignedOrder

    def order(person: Person) -> SignedOrder:
        envelope = person.order(to=zoe.account, amount=100, invoice="abcdefgh1234")
        return SignedOrder.from_json(envelope)

    both = node.ledger.post([order(camille), order(remi)])
    assert [type(o).__name__ for o in both] == ["Posted", "AlreadyUsed"]
    late = node.ledger.post([order(remi)])[0]
    assert isinstance(late, AlreadyUsed) and late.params["transfer_id"] == both[0].transfer_id
    with node.ledger.reading() as conn:
        used = conn.execute(
            text("SELECT count(*) FROM transfers WHERE once_key = :k"),
            {"k": invoice_once(zoe.account, "abcdefgh1234")},
        ).scalar_one()
    assert used == 1
    assert audit(node.engine).ok


def test_many_payers_racing_for_one_invoice_pay_it_once(site: Any) -> None:
    zoe = _shop(site)
    payers = [join(site, f"P{i}") for i in range(8)]
    for payer in payers:
        fund(site, payer, 2000)
    invoice = _invoice(zoe, 1000)
    orders = [p.order(to=zoe.account, amount=1000, invoice=invoice["id"]) for p in payers]
    start = threading.Barrier(len(payers))
    answers: list[Any] = [None] * len(payers)

    def pay(i: int) -> None:
        start.wait()
        answers[i] = payers[i].post(f"/api/v1/pay/invoices/{invoice['id']}", json=orders[i])

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(len(payers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 7, [a.text for a in answers]
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"invoice_paid"}
    assert zoe.balance() == 1000
    assert sum(p.balance() for p in payers) == 8 * 2000 - 1000


def test_an_invoice_refuses_what_it_does_not_ask(site: Any) -> None:
    zoe, other, camille = _shop(site), _shop(site, "Léa"), join(site, "Camille")
    fund(site, camille, 5000)
    invoice = _invoice(zoe, 1250)
    cases = [
        ({"amount": 1000}, 422, "wrong_amount"),
        ({"to": other.account}, 422, "wrong_payee"),
        ({"invoice": "zzzzzzzz1234"}, 422, "wrong_invoice"),
    ]
    for change, status, code in cases:
        answer = _pay(camille, invoice, **change)
        assert (answer.status_code, answer.json()["error"]) == (status, code), change
    cancelled = _invoice(zoe, 500)
    assert zoe.post(f"/api/v1/pos/invoices/{cancelled['id']}/cancel").json()["state"] == "cancelled"
    answer = _pay(camille, cancelled)
    assert (answer.status_code, answer.json()["error"]) == (409, "invoice_cancelled")
    expired = _invoice(zoe, 500)
    with site.app.state.node.engine.begin() as conn:
        conn.execute(
            text("UPDATE pos_invoices SET expires_ms = created_ms + 1 WHERE id = :i"),
            {"i": expired["id"]},
        )
    answer = _pay(camille, expired)
    assert (answer.status_code, answer.json()["error"]) == (409, "invoice_expired")
    assert camille.balance() == 5000
    # Another shop's invoice is unknown to a shop; a paid one cannot be cancelled.
    assert other.get(f"/api/v1/pos/invoices/{invoice['id']}").status_code == 404
    assert _pay(camille, invoice).status_code == 201
    answer = zoe.post(f"/api/v1/pos/invoices/{invoice['id']}/cancel")
    assert (answer.status_code, answer.json()["error"]) == (409, "invoice_paid")


def test_a_shop_not_approved_takes_no_payment_at_the_counter(site: Any) -> None:
    newcomer, camille = _shop(site, "Paul", approved=False), join(site, "Camille")
    fund(site, camille, 1000)
    answer = newcomer.post("/api/v1/pos/invoices", json={"amount": 100})
    assert (answer.status_code, answer.json()["error"]) == (409, "shop_not_open")
    paid = camille.post(
        f"/api/v1/pay/shops/{newcomer.id}", json=camille.order(to=newcomer.account, amount=100)
    )
    assert (paid.status_code, paid.json()["error"]) == (409, "shop_not_open")
    assert camille.balance() == 1000


def _link_query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_the_pay_page_and_link_api_check_the_node_signature(site: Any) -> None:
    zoe, camille = _shop(site), join(site, "Camille")
    invoice = _invoice(zoe, 1250)
    query = _link_query(invoice["url"])
    seen = camille.get("/api/v1/pay/link", params=query).json()
    assert (seen["shop"], seen["amount"], seen["invoice"]["id"]) == (
        "Chez Zoé",
        1250,
        invoice["id"],
    )
    page = camille.get("/pay", params=query)
    assert page.status_code == 200 and "Chez Zoé" in page.text and "12,50" in page.text
    for change, code in [
        ({"a": "1"}, "forged_link"),  # the amount altered
        ({"s": query["s"][:-2] + ("AA" if query["s"][-2:] != "AA" else "BB")}, "forged_link"),
        ({"s": "short"}, "bad_link"),
        ({"e": "notanumber"}, "bad_link"),
        ({"m": camille.id}, "forged_link"),
    ]:
        answer = camille.get("/api/v1/pay/link", params={**query, **change})
        assert (answer.status_code, answer.json()["error"]) == (400, code), change
    truncated = {k: v for k, v in query.items() if k != "a"}
    answer = camille.get("/api/v1/pay/link", params=truncated)
    assert (answer.status_code, answer.json()["error"]) == (400, "bad_link")


def test_a_link_signed_by_another_key_is_refused(site: Any) -> None:
    from ledger.canonical import b64, canonical
    from ledger.signing import SigningKey

    zoe, camille = _shop(site), join(site, "Camille")
    invoice = _invoice(zoe, 1250)
    query = _link_query(invoice["url"])
    node = site.app.state.node
    fields = {
        "invoice": query["i"],
        "merchant": query["m"],
        "amount": 1250,
        "expires": int(query["e"]),
        "kind": "invoice",
        "node": node.ledger.origin,
    }
    forged = b64(SigningKey.generate().sign_bytes(canonical(fields)))
    answer = camille.get("/api/v1/pay/link", params={**query, "s": forged})
    assert (answer.status_code, answer.json()["error"]) == (400, "forged_link")
    # The same fields signed by this node's key for another node's origin.
    from ledger.operations import NODE

    elsewhere = b64(node.signing_key(NODE).sign_bytes(canonical({**fields, "node": "x.test/y"})))
    answer = camille.get("/api/v1/pay/link", params={**query, "s": elsewhere})
    assert (answer.status_code, answer.json()["error"]) == (400, "forged_link")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.dictionaries(
        st.sampled_from(["m", "s", "i", "a", "e", "x"]),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=120),
        max_size=6,
    )
)
def test_any_link_query_is_a_precise_refusal_never_an_error(
    pos_site: tuple[Any, Person], query: dict[str, str]
) -> None:
    _, camille = pos_site
    for path in ("/api/v1/pay/link", "/pay"):
        answer = camille.get(path, params=query)
        assert answer.status_code in (200, 400, 404, 409, 422), (path, query, answer.text)


@pytest.fixture
def pos_site(site: Any) -> tuple[Any, Person]:
    return site, join(site, "Camille")


def test_a_sticker_payment_and_refunds_up_to_what_was_paid(site: Any) -> None:
    zoe, camille, other = _shop(site), join(site, "Camille"), _shop(site, "Léa")
    fund(site, camille, 5000)
    sticker = zoe.get("/api/v1/pos/sticker.png")
    assert sticker.headers["content-type"] == "image/png"
    link = _decode(sticker.content)[0]
    assert _link_query(link)["m"] == zoe.id
    seen = camille.get("/api/v1/pay/link", params=_link_query(link)).json()
    assert (seen["amount"], seen["invoice"]) == (None, None)
    pdf = zoe.get("/api/v1/pos/sticker.pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")

    paid = camille.post(
        f"/api/v1/pay/shops/{zoe.id}", json=camille.order(to=zoe.account, amount=2000, memo="=1+1")
    )
    assert paid.status_code == 201, paid.text
    sale = paid.json()["transfer_id"]

    def refund(who: Person, cents: int, ref: int = sale) -> Any:
        return who.post(
            "/api/v1/pos/refunds",
            json=who.order("refund", to=camille.account, amount=cents, ref=ref),
        )

    assert refund(zoe, 500).status_code == 201
    too_much = refund(zoe, 1501)
    assert (too_much.status_code, too_much.json()["error"]) == (409, "refund_too_large")
    assert "15,00" in too_much.json()["message"] or "15.00" in too_much.json()["message"]
    assert refund(other, 100).json()["error"] == "not_a_sale"
    assert refund(zoe, 1500).status_code == 201
    assert camille.balance() == 5000 and zoe.balance() == 0
    kinds = [m["kind"] for m in camille.get("/api/v1/wallet/history").json()["items"]]
    assert kinds[:2] == ["refund", "refund"]

    day = zoe.get("/api/v1/pos/day").json()
    assert (day["takings"], day["payments"]) == (0, 1)
    assert [i["amount"] for i in day["items"]] == [2000, -500, -1500]
    exported = zoe.get("/api/v1/pos/day.csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["time", "transfer", "kind", "amount"]
    assert [r[3] for r in rows[1:]] == ["20.00", "-5.00", "-15.00", "0.00"]
    assert rows[1][7] == "'=1+1"  # a memo is never a spreadsheet formula
    assert audit(site.app.state.node.engine).ok


def test_a_pos_token_takes_payments_for_its_shop_and_nothing_else(site: Any) -> None:
    zoe, camille = _shop(site), join(site, "Camille")
    fund(site, camille, 1000)
    token = zoe.post("/api/v1/me/tokens", json={"scope": "pos", "label": "counter"}).json()
    counter = new_client(site)
    counter.headers["Authorization"] = f"Bearer {token['token']}"
    made = counter.post("/api/v1/pos/invoices", json={"amount": 300})
    assert made.status_code == 201, made.text
    assert _pay(camille, made.json()).status_code == 201
    assert counter.get("/api/v1/pos/day").json()["takings"] == 300
    for method, path in [("GET", "/api/v1/wallet"), ("GET", "/pos"), ("GET", "/api/v1/me/keys")]:
        answer = counter.request(method, path)
        assert (answer.status_code, answer.json()["error"]) == (403, "token_scope"), path
    resident = camille.post("/api/v1/pos/invoices", json={"amount": 300})
    assert (resident.status_code, resident.json()["error"]) == (403, "forbidden")


def test_the_day_refuses_days_it_cannot_show(site: Any) -> None:
    zoe = _shop(site)
    for bad in ["2020-13-01", "yesterday", "1999-01-01", "2999-01-01"]:
        answer = zoe.get("/api/v1/pos/day", params={"day": bad})
        assert (answer.status_code, answer.json()["error"]) == (422, "bad_sales_day"), bad


# -- notices between processes ---------------------------------------------------------------


async def listening(listener: Notices, other: Notices) -> None:
    """Once `listener` hears through the database what `other` (another process) publishes:
    its listening thread is up, so no later notice passes it by. A test waits for that,
    not for a time: a loaded machine may take seconds to start the thread."""
    with listener.subscribe("pos:probe") as probe:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            other.publish("pos:probe")
            if await probe.wait(0.2):
                return
    raise AssertionError("the listening thread heard nothing within 30 s")


def test_a_notice_published_by_one_process_wakes_another(node: Any) -> None:
    """Two Notices over the same database stand for two server processes."""
    listener, publisher = Notices(node.engine), Notices(node.engine)

    async def scenario() -> list[str]:
        with listener.subscribe("pos:zoe") as sub:
            await listening(listener, publisher)
            started = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(
                None, publisher.publish, "pos:zoe", "42"
            )
            got = await sub.wait(5.0)
            assert time.monotonic() - started < 5.0
            return got

    try:
        assert asyncio.run(scenario()) == ["42"]
    finally:
        listener.close()
        publisher.close()


def test_the_live_feed_tells_the_counter_of_a_payment(live_app: Any, live_site: str) -> None:
    from fastapi.testclient import TestClient

    site = TestClient(live_app, base_url=live_site)
    zoe, camille = _shop(site), join(site, "Camille")
    fund(site, camille, 1000)
    invoice = _invoice(zoe, 700)
    cookies = dict(zoe.client.cookies)
    events: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream(
            "GET", f"{live_site}/api/v1/pos/events", cookies=cookies, timeout=10
        ) as r:
            name = ""
            for line in r.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                    if name == "ready":
                        ready.set()
                elif line.startswith("data: ") and name == "sale":
                    events.append(json.loads(line.removeprefix("data: ")))
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    assert _pay(camille, invoice).status_code == 201
    thread.join(10)
    assert [(e["invoice"], e["amount"], e["customer_name"]) for e in events] == [
        (invoice["id"], 700, "Camille")
    ]


def test_an_operator_has_no_counter(site: Any) -> None:
    admin = operator(site, "admin")
    answer = admin.post("/api/v1/pos/invoices", json={"amount": 100})
    assert (answer.status_code, answer.json()["error"]) == (403, "forbidden")


def test_an_invoice_is_not_paid_from_the_send_api(site: Any) -> None:
    """The send API would not check the invoice's shop and amount: it refuses the field."""
    zoe, camille = _shop(site), join(site, "Camille")
    fund(site, camille, 1000)
    invoice = _invoice(zoe, 500)
    answer = camille.pay(zoe, 1, invoice=invoice["id"])
    assert (answer.status_code, answer.json()["error"]) == (422, "invoice_at_counter")
    assert zoe.get(f"/api/v1/pos/invoices/{invoice['id']}").json()["state"] == "open"


def test_an_invoice_of_a_shop_suspended_since_is_not_paid(site: Any) -> None:
    """The shop is read as it stands when the code is paid, not as it stood when made."""
    zoe, camille = _shop(site), join(site, "Camille")
    fund(site, camille, 1000)
    invoice = _invoice(zoe, 400)
    node = site.app.state.node
    with node.engine.begin() as conn:
        decide(conn, zoe.id, "suspended", None, int(time.time() * 1000))
    answer = _pay(camille, invoice)
    assert (answer.status_code, answer.json()["error"]) == (409, "shop_not_open")
    seen = zoe.get(f"/api/v1/pos/invoices/{invoice['id']}")
    assert (seen.status_code, seen.json()["error"]) == (409, "shop_not_open")
    assert camille.balance() == 1000


def test_notices_published_together_all_wake_the_other_process(node: Any) -> None:
    """A burst of payments at once: every notice reaches the other process."""
    listener, publisher = Notices(node.engine), Notices(node.engine)

    async def scenario() -> list[str]:
        with listener.subscribe("pos:zoe") as sub:
            await listening(listener, publisher)
            for n in range(200):
                publisher.publish("pos:zoe", str(n))
            got: list[str] = []
            while len(got) < 200 and (more := await sub.wait(5.0)):
                got += more
            return got

    try:
        assert sorted(asyncio.run(scenario()), key=int) == [str(n) for n in range(200)]
    finally:
        listener.close()
        publisher.close()


def test_the_publishing_process_wakes_its_own_waiters_once(node: Any) -> None:
    """Told at once, and not again when the notice comes back through the database."""
    notices, other = Notices(node.engine), Notices(node.engine)

    async def scenario() -> tuple[list[str], list[str]]:
        with notices.subscribe("pos:zoe") as sub:
            await listening(notices, other)  # it would hear its own notice back
            notices.publish("pos:zoe", "42")
            first = await sub.wait(5.0)
            again = await sub.wait(1.0)  # far longer than the database takes to say it
            return first, again

    try:
        assert asyncio.run(scenario()) == (["42"], [])
    finally:
        notices.close()
        other.close()


def test_the_feed_resumes_after_the_last_event_id_and_ignores_a_strange_one(
    live_app: Any, live_site: str
) -> None:
    """A browser reconnecting sends the id of the last payment it saw: what came after is
    sent again; an id that is no plain number (a superscript digit, say) is ignored."""
    from fastapi.testclient import TestClient

    site = TestClient(live_app, base_url=live_site)
    zoe, camille = _shop(site), join(site, "Camille")
    fund(site, camille, 1000)
    assert _pay(camille, _invoice(zoe, 300)).status_code == 201
    cookies = dict(zoe.client.cookies)

    def sales(last_event_id: bytes) -> str:
        # Over a real socket: the header's bytes reach the node as they are sent.
        answer = httpx.get(
            f"{live_site}/api/v1/pos/events?wait=0",
            cookies=cookies,
            headers={"Last-Event-ID": last_event_id},
            timeout=10,
        )
        assert answer.status_code == 200
        return answer.text

    assert "event: sale" in sales(b"0")
    # b"\xb2" reads as "²" (headers are Latin-1): a digit to Python, no number to int().
    assert "event: sale" not in sales(b"\xb2")  # from the last payment on: none after it
