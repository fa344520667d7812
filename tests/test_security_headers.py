"""What every answer carries for the browser's safety (web/security.py), the size limit of
request bodies, and the `Allow` of 405 answers, on SQLite and PostgreSQL."""

from __future__ import annotations

import select
import socket
from typing import Any
from urllib.parse import urlsplit

from tests.people import join, new_client

SAME_FOR_ALL = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
MIB = 1024 * 1024


def _guarded(answer: Any) -> None:
    for name, value in SAME_FOR_ALL.items():
        assert answer.headers.get(name) == value, (answer.url, name, answer.headers)
    policy = answer.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe-inline" not in policy and "*" not in policy


def test_every_kind_of_answer_carries_the_headers(site: Any) -> None:
    anonymous = new_client(site)
    html = {"Accept": "text/html"}
    public = {
        "page": anonymous.get("/", headers=html),
        "api": anonymous.get("/healthz"),
        "static": anonymous.get("/static/sou.css"),
        "missing page": anonymous.get("/nowhere", headers=html),
        "missing api": anonymous.get("/api/v1/nowhere"),
        "redirect": anonymous.get("/wallet", headers=html, follow_redirects=False),
    }
    assert [a.status_code for a in public.values()] == [200, 200, 200, 404, 404, 303]
    for answer in public.values():
        _guarded(answer)
        assert "no-store" not in answer.headers.get("cache-control", ""), answer.url

    # The error page's way back is a plain link (the policy blocks `javascript:` ones).
    back = anonymous.get("/nowhere", headers={**html, "Referer": "http://127.0.0.1/login"})
    assert 'href="http://127.0.0.1/login"' in back.text and "javascript:" not in back.text
    elsewhere = anonymous.get("/nowhere", headers={**html, "Referer": "https://evil.test/"})
    assert "evil.test" not in elsewhere.text

    lea = join(site, "Léa")
    private = {
        "page": lea.client.get("/wallet", headers=html),
        "api": lea.get("/api/v1/me"),
        "missing page": lea.client.get("/nowhere", headers=html),
        "missing api": lea.get("/api/v1/nowhere"),
        "refusal": lea.post("/api/v1/me/keys", json={}),
    }
    assert [a.status_code for a in private.values()][:4] == [200, 200, 404, 404]
    assert private["refusal"].status_code == 422
    for answer in private.values():
        _guarded(answer)
        assert answer.headers["cache-control"] == "no-store", answer.url
    # Files the same for everyone keep their caching, and a route its own Cache-Control.
    css = lea.get("/static/sou.css")
    _guarded(css)
    assert "no-store" not in css.headers.get("cache-control", "")
    worker = lea.get("/sw.js")
    _guarded(worker)
    assert worker.headers["cache-control"] == "no-cache"
    # A bearer token is a signed-in caller too.
    token = lea.post("/api/v1/me/tokens", json={"scope": "wallet", "label": "till"})
    assert token.status_code == 201, token.text
    bearer = new_client(site).get(
        "/api/v1/me", headers={"Authorization": f"Bearer {token.json()['token']}"}
    )
    assert bearer.status_code == 200 and bearer.headers["cache-control"] == "no-store"


def test_forms_may_lead_only_to_the_node_and_to_stripes_checkout_when_used(site: Any) -> None:
    def form_action() -> str:
        policy = new_client(site).get("/login").headers["content-security-policy"]
        return next(d for d in policy.split("; ") if d.startswith("form-action "))

    assert form_action() == "form-action 'self'"
    settings = site.app.state.node.settings
    settings.stripe_secret_key, settings.stripe_webhook_secret = "sk_test_x", "whsec_x"
    settings.stripe_checkout = True  # a top-up's form sends the payer on to Stripe's page
    assert form_action() == "form-action 'self' https://checkout.stripe.com"
    settings.stripe_checkout = False  # the node makes a PaymentIntent: no page elsewhere
    assert form_action() == "form-action 'self'"


def test_405_answers_say_which_methods_are_allowed(site: Any) -> None:
    client = new_client(site)
    for method, path, allowed in [
        ("DELETE", "/healthz", {"GET"}),
        ("PUT", "/api/v1/me", {"GET"}),
        ("GET", "/api/v1/session", {"POST", "DELETE"}),
    ]:
        answer = client.request(method, path)
        assert answer.status_code == 405, (method, path)
        _guarded(answer)
        said = {m.strip() for m in answer.headers["allow"].split(",")}
        assert allowed <= said, (path, said)
        assert method not in said


def test_a_body_over_the_limit_is_refused_and_a_normal_one_passes(site: Any) -> None:
    client = new_client(site)
    too_big = client.post(
        "/api/v1/members",
        content=b"{" + b" " * (MIB + 1),
        headers={"Content-Type": "application/json", "Accept-Language": "fr"},
    )
    assert too_big.status_code == 413
    _guarded(too_big)
    assert too_big.json()["error"] == "body_too_large"
    assert too_big.json()["message"] == "La requête est trop grande\u202f: au plus 1048576 octets."
    page = client.post(
        "/login",
        content=b"email=" + b"a" * (2 * MIB),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
    )
    assert page.status_code == 413 and "text/html" in page.headers["content-type"]
    assert "La requête est trop grande" in page.text
    # Under the limit, a request is read and handled as ever.
    assert join(site, "Jules").member["display_name"] == "Jules"


def _raw(live_site: str) -> socket.socket:
    address = urlsplit(live_site)
    conn = socket.create_connection((address.hostname, address.port), timeout=30)
    return conn


def _answer(conn: socket.socket) -> bytes:
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
        if b"\r\n\r\n" in received and received.rstrip().endswith(b"}"):
            break
    return received


def test_a_huge_body_is_refused_before_it_is_read(live_site: str) -> None:
    """32 MB announced anonymously: the answer comes after 64 KiB were sent, so the rest is
    never read (the test sends no more, and would wait for ever if the node waited)."""
    conn = _raw(live_site)
    with conn:
        conn.sendall(
            b"POST /api/v1/members HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 33554432\r\n\r\n" + b" " * 65536
        )
        answer = _answer(conn)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"error":"body_too_large"' in answer
    assert b"frame-ancestors 'none'" in answer


def test_a_chunked_body_is_refused_once_over_the_limit(live_site: str) -> None:
    """Without Content-Length the node counts as it reads: sent in chunks of 64 KiB, the
    answer comes after a little over 1 MiB, though the body was meant to go on."""
    conn = _raw(live_site)
    with conn:
        conn.sendall(
            b"POST /api/v1/members HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"10000\r\n" + b" " * 65536 + b"\r\n"
        sent = 0
        # Once past the limit, wait for the answer before sending more: the node closes after
        # answering, and a chunk sent into a closed socket would reset the connection.
        while sent <= MIB + 4 * 65536:
            if select.select([conn], [], [], 30 if sent > MIB else 0)[0]:
                break
            conn.sendall(chunk)
            sent += 65536
        answer = _answer(conn)
    assert MIB < sent <= MIB + 65536, sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"error":"body_too_large"' in answer
