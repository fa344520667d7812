"""People using the node in tests: join, log in, register a device key, pay, top up.

Each `Person` holds their own TestClient cookies (a separate client per person, as
separate browsers would) and their device key, and signs their orders like a wallet does.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import unescape
from typing import Any

from fastapi.testclient import TestClient

from ledger.canonical import b64
from ledger.signing import SigningKey, new_order
from tests.conftest import OPERATORS, PASSWORD

_serial = itertools.count(1)


@dataclass
class Person:
    client: TestClient
    member: dict[str, Any]
    csrf: str = ""
    key: SigningKey | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.member["id"])

    @property
    def account(self) -> str:
        return f"member:{self.id}"

    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf, **self.extra_headers}

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self.headers(), **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers=self.headers(), **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.client.put(path, headers=self.headers(), **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.client.delete(path, headers=self.headers(), **kw)

    def log_in(self, password: str = PASSWORD) -> Person:
        answer = self.client.post(
            "/api/v1/session", json={"email": self.member["email"], "password": password}
        )
        assert answer.status_code == 200, answer.text
        self.csrf = answer.json()["csrf"]
        return self

    def add_key(self, label: str = "phone") -> SigningKey:
        key = SigningKey.generate()
        answer = self.post(
            "/api/v1/me/keys", json={"public_key": b64(key.public_key), "label": label}
        )
        assert answer.status_code == 201, answer.text
        self.key = key
        return key

    def order(self, kind: str = "payment", **fields: Any) -> dict[str, Any]:
        """A signed order envelope from this person's device key."""
        assert self.key is not None, "register a device key first"
        origin = self.client.app.state.node.ledger.origin  # type: ignore[attr-defined]
        if "from_" in fields:
            fields["from"] = fields.pop("from_")
        fields.setdefault("from", self.account)
        fields.setdefault("currency", "SOU")
        return self.key.sign(new_order(kind, self.key, origin, **fields)).to_json()

    def pay(self, to: Person | str, cents: int, **fields: Any) -> Any:
        target = to.account if isinstance(to, Person) else to
        return self.post("/api/v1/transfers", json=self.order(to=target, amount=cents, **fields))

    def balance(self) -> int:
        answer = self.get("/api/v1/wallet")
        assert answer.status_code == 200, answer.text
        return int(answer.json()["balance"])


def new_client(site: TestClient) -> TestClient:
    """Another browser on the same app (its own cookies), sharing the started node."""
    client = TestClient(site.app, base_url=str(site.base_url))
    return client


def join(
    site: TestClient, name: str = "Camille", role: str = "resident", *, key: bool = True
) -> Person:
    """A new member, logged in, with a registered device key."""
    client = new_client(site)
    email = f"{name.lower().replace(' ', '.')}.{next(_serial)}@village.test"
    body: dict[str, Any] = {
        "display_name": name,
        "email": email,
        "password": PASSWORD,
        "role": role,
    }
    if role == "merchant":
        body["merchant"] = {"trade_name": f"Chez {name}", "category": "food", "address": "1 place"}
    answer = client.post("/api/v1/members", json=body)
    assert answer.status_code == 201, answer.text
    person = Person(client, answer.json()).log_in()
    if key:
        person.add_key()
    return person


def words_of(html: str) -> str:
    """The text a reader sees of (a part of) a page: tags out, spaces as one."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def movements_of(person: Person, lang: str) -> str:
    """The movements of the person's wallet page, as they read them in `lang`."""
    page = person.client.get(f"/wallet?lang={lang}", headers={"Accept": "text/html"}).text
    return words_of(page[page.index('<table id="history">') : page.index("</table>")])


def operator(site: TestClient, role: str) -> Person:
    """The admin, treasurer or exchange-office operator made in the node template."""
    email, _ = OPERATORS[role]
    client = new_client(site)
    person = Person(client, {"email": email, "id": ""})
    person.log_in()
    person.member = person.get("/api/v1/me").json()
    return person


def fund(site: TestClient, person: Person, cents: int) -> None:
    """Credit a wallet as the exchange office would after taking cash (signed by the
    office's role key), straight through the ledger."""
    from runtime.signing import post, sign_as

    node = site.app.state.node  # type: ignore[attr-defined]
    signed = sign_as(
        node,
        "role:office:mairie",
        "topup",
        f"fund-{person.id}-{next(_serial)}",
        to=person.account,
        amount=cents,
        currency=node.ledger.chart.local,
        source="office:mairie",
    )
    post(node, signed)


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call on a thread of its own, all released at the same moment (a race); what
    they returned, in the order of `calls`. A call that raises fails the test with its error."""
    start = threading.Barrier(len(calls))

    def released(call: Callable[[], Any]) -> Any:
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        racing = [pool.submit(released, call) for call in calls]
        return [race.result() for race in racing]
