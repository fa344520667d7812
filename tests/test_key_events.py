"""Key events (register, revoke) are checked where they are posted (DESIGN.md, musts 6 and 7).

A key event becomes a leaf of the Merkle log for good. One that its named signer's
registered, unrevoked key did not sign, or that this signer may not make, must be refused
before anything is written (no key row, no key event, no log queue entry), not found later
by `sou audit`.

Over HTTP no client sends a key event: a member sends a device's public key after a
password session, an operator a new public key after checking a member in person, and the
node signs the event itself (no proof of possession is asked: a key one does not hold
signs nothing). There the refusals to check are those of the public key sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select

from audits.audit import audit
from ledger.canonical import b64, canonical
from ledger.errors import LedgerError
from ledger.models import key_events, keys, log_leaves, log_queue
from ledger.sealer import Sealer
from ledger.service import key_event
from ledger.signing import SigningKey
from members.models import devices
from tests.conftest import NODE_KEY, TREASURER_KEY
from tests.factories import Book, register
from tests.people import Person, join, operator

Forge = Callable[[dict[str, Any], bytes], tuple[dict[str, Any], bytes]]


def flip(signature: bytes, at: int) -> bytes:
    changed = bytearray(signature)
    changed[at] ^= 0x01
    return bytes(changed)


def changed(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**event, **fields}


def other_key() -> dict[str, str]:
    key = SigningKey.generate()
    return {"key": key.key_id, "public_key": b64(key.public_key)}


def key_events_and_queue(conn: Connection) -> tuple[Any, ...]:
    """What a refused key event must leave as it was."""
    return (
        sorted(
            tuple(r) for r in conn.execute(select(keys.c.key_id, keys.c.owner, keys.c.revoked_ms))
        ),
        conn.scalar(select(func.count()).select_from(key_events)),
        conn.scalar(select(func.count()).select_from(log_queue)),
        conn.scalar(select(func.count()).select_from(log_leaves)),
    )


# -- in the ledger ---------------------------------------------------------------------------

# How a genuine event signed by the node gets forged, and the refusal each forgery gets.
FORGERIES: dict[str, tuple[Forge, str]] = {
    "first byte of the signature flipped": (lambda e, s: (e, flip(s, 0)), "bad_signature"),
    "a middle byte flipped": (lambda e, s: (e, flip(s, 31)), "bad_signature"),
    "last byte flipped": (lambda e, s: (e, flip(s, 63)), "bad_signature"),
    "signature of 63 bytes": (lambda e, s: (e, s[:63]), "bad_signature"),
    "signature of 65 bytes": (lambda e, s: (e, s + b"\x00"), "bad_signature"),
    "empty signature": (lambda e, s: (e, b""), "bad_signature"),
    "64 zero bytes": (lambda e, s: (e, bytes(64)), "bad_signature"),
    "signature as text": (lambda e, s: (e, s.hex()), "bad_signature"),  # type: ignore[dict-item]
    "signed by the treasurer's key, naming the node": (
        lambda e, s: (e, TREASURER_KEY.sign_bytes(canonical(e))),
        "bad_signature",
    ),
    "owner changed after signing": (
        lambda e, s: (changed(e, owner="member:bob"), s),
        "bad_signature",
    ),
    "key changed after signing": (lambda e, s: (changed(e, **other_key()), s), "bad_signature"),
    "public key changed, not its id": (
        lambda e, s: (changed(e, public_key=other_key()["public_key"]), s),
        "invalid_order",
    ),
    "signer renamed to the treasurer after signing": (
        lambda e, s: (changed(e, signer=TREASURER_KEY.key_id), s),
        "bad_signature",
    ),
    "node changed after signing": (
        lambda e, s: (changed(e, node="elsewhere.sou.localhost/x"), s),
        "wrong_node",
    ),
    "nonce changed after signing": (
        lambda e, s: (changed(e, nonce=b64(bytes(16))), s),
        "bad_signature",
    ),
    "time changed after signing": (
        lambda e, s: (changed(e, created=e["created"] + 1), s),
        "bad_signature",
    ),
    "field added after signing": (
        lambda e, s: (changed(e, label="phone"), s),
        "invalid_order",
    ),
    "field removed after signing": (
        lambda e, s: ({k: v for k, v in e.items() if k != "nonce"}, s),
        "invalid_order",
    ),
}


@dataclass
class Keys:
    """Alice and Bob, each with a key the node registered."""

    book: Book
    alice: str
    bob: str

    def post(self, action: str, event: dict[str, Any], signature: bytes) -> str | None:
        """Post a key event; the code of its refusal, None if it was taken."""
        ledger = self.book.ledger
        try:
            if action == "register":
                ledger.register_key(event, signature)
            else:
                ledger.revoke_key(event, signature)
        except LedgerError as exc:
            return exc.code
        return None

    def event(
        self, action: str, owner: str, key: SigningKey, signer: SigningKey
    ) -> tuple[dict[str, Any], bytes]:
        made = key_event(
            action,
            origin=self.book.ledger.origin,
            owner=owner,
            public_key=key.public_key,
            signer=signer,
        )
        return made, signer.sign_bytes(canonical(made))

    def genuine(self, action: str) -> tuple[dict[str, Any], bytes]:
        """What the node signs: a new key for Alice, or the revocation of her key."""
        key = SigningKey.generate() if action == "register" else self.book.keys[self.alice]
        return self.event(action, self.alice, key, NODE_KEY)

    def written(self) -> tuple[Any, ...]:
        with self.book.ledger.reading() as conn:
            return key_events_and_queue(conn)


@pytest.fixture
def people(book: Book) -> Keys:
    return Keys(book, book.member("alice"), book.member("bob"))


@pytest.mark.parametrize("action", ["register", "revoke"])
def test_a_forged_key_event_is_refused_and_writes_nothing(people: Keys, action: str) -> None:
    event, signature = people.genuine(action)
    before = people.written()
    wrong = []
    for forgery, (forge, code) in FORGERIES.items():
        got = people.post(action, *forge(dict(event), signature))
        if got != code or people.written() != before:
            wrong.append(f"{forgery}: expected {code}, got {got or 'it taken'}")
    assert not wrong, "\n".join(wrong)
    # The event as signed is taken: each refusal was for its forgery alone.
    assert people.post(action, event, signature) is None
    assert people.written() != before


@pytest.mark.parametrize("action", ["register", "revoke"])
def test_a_key_event_signed_by_a_revoked_key_is_refused(people: Keys, action: str) -> None:
    bob_key = people.book.keys[people.bob]
    assert people.post("revoke", *people.event("revoke", people.bob, bob_key, bob_key)) is None
    spare = register(people.book.ledger, NODE_KEY, people.bob)
    # Bob's lost phone (its key revoked) tries to add a key for Bob, or to revoke his new one.
    target = SigningKey.generate() if action == "register" else spare
    before = people.written()
    assert people.post(action, *people.event(action, people.bob, target, bob_key)) == "revoked_key"
    assert people.written() == before
    # So is a revoked key of a key officer, for anyone.
    second_treasurer = register(people.book.ledger, NODE_KEY, "role:treasurer")
    revoke = people.event("revoke", "role:treasurer", second_treasurer, NODE_KEY)
    assert people.post("revoke", *revoke) is None
    before = people.written()
    target = SigningKey.generate() if action == "register" else people.book.keys[people.alice]
    made = people.event(action, people.alice, target, second_treasurer)
    assert people.post(action, *made) == "revoked_key"
    assert people.written() == before


@pytest.mark.parametrize("action", ["register", "revoke"])
def test_a_key_event_signed_by_someone_who_may_not_make_it_is_refused(
    people: Keys, action: str
) -> None:
    alice_key, bob_key = people.book.keys[people.alice], people.book.keys[people.bob]
    target = SigningKey.generate() if action == "register" else alice_key
    before = people.written()
    # Bob signs, as himself, a change to Alice's keys.
    assert people.post(action, *people.event(action, people.alice, target, bob_key)) == (
        "wrong_signer"
    )
    # A key the node never registered.
    stranger = SigningKey.generate()
    assert people.post(action, *people.event(action, people.alice, target, stranger)) == (
        "unknown_key"
    )
    # A register event posted as a revocation, and the other way round.
    other = "revoke" if action == "register" else "register"
    assert people.post(other, *people.event(action, people.alice, target, NODE_KEY)) == (
        "invalid_order"
    )
    assert people.written() == before


@pytest.mark.parametrize("owner", ["node", "role:admin", "role:office:bourg", "plugin:amap"])
def test_a_key_officer_changes_members_keys_only(people: Keys, owner: str) -> None:
    """The treasurer recovers a member's key, but may not give the node, a role or a plugin
    a key of its choosing: with a node key it could sign checkpoints."""
    before = people.written()
    made = people.event("register", owner, SigningKey.generate(), TREASURER_KEY)
    assert people.post("register", *made) == "wrong_signer"
    assert people.written() == before
    recovered = people.event("register", people.alice, SigningKey.generate(), TREASURER_KEY)
    assert people.post("register", *recovered) is None
    assert (
        people.post("register", *people.event("register", owner, SigningKey.generate(), NODE_KEY))
        is None
    )


def test_forgeries_refused_leave_a_log_the_audit_holds(people: Keys) -> None:
    for action in ("register", "revoke"):
        event, signature = people.genuine(action)
        for forge, _ in FORGERIES.values():
            assert people.post(action, *forge(dict(event), signature)) is not None
        assert people.post(action, event, signature) is None
    engine = people.book.ledger.engine
    Sealer(engine, NODE_KEY, people.book.ledger.origin).seal_all()
    report = audit(engine, node_public_key=NODE_KEY.public_key, workers=1)
    assert report.ok, report.findings
    assert report.key_events == 6  # node, treasurer, alice, bob, alice's new key, revoke


# -- over HTTP -------------------------------------------------------------------------------


def written_by_site(site: TestClient) -> tuple[Any, ...]:
    node = site.app.state.node  # type: ignore[attr-defined]
    with node.ledger.reading() as conn:
        return (
            key_events_and_queue(conn)[:2],  # the sealer empties the queue meanwhile
            sorted(tuple(r) for r in conn.execute(select(devices.c.key_id, devices.c.label))),
        )


def refused_keys(site: TestClient, member: Person) -> list[tuple[str, int, str]]:
    """Public keys a client may send that no device key can be, and their refusal."""
    node = site.app.state.node  # type: ignore[attr-defined]
    assert member.key is not None
    return [
        ("", 422, "invalid_request"),
        (b64(bytes(31)), 422, "invalid_request"),  # 42 characters
        (b64(bytes(33)), 422, "bad_public_key"),  # 44 characters
        (b64(bytes(32)) + "A", 422, "bad_public_key"),
        ("!" * 43, 422, "bad_public_key"),
        (b64(node.node_key.public_key), 409, "key_exists"),
        (b64(_role_key(site, "role:treasurer")), 409, "key_exists"),
        (b64(member.key.public_key), 409, "key_exists"),
    ]


def _role_key(site: TestClient, role: str) -> bytes:
    """An operator's role key, registered by the node."""
    node = site.app.state.node  # type: ignore[attr-defined]
    with node.ledger.reading() as conn:
        row = conn.execute(select(keys.c.public_key).where(keys.c.owner == role)).first()
    assert row is not None
    return bytes(row.public_key)


def test_device_keys_refused_over_http_write_nothing(site: TestClient) -> None:
    camille, louis = join(site, "Camille"), join(site, "Louis")
    before = written_by_site(site)
    for public_key, status, code in refused_keys(site, camille):
        answer = louis.post("/api/v1/me/keys", json={"public_key": public_key, "label": "x"})
        assert (answer.status_code, answer.json()["error"]) == (status, code), public_key
        assert written_by_site(site) == before, public_key


def test_recoveries_refused_over_http_revoke_nothing(site: TestClient) -> None:
    camille, louis = join(site, "Camille"), join(site, "Louis")
    officer = operator(site, "office")
    before = written_by_site(site)
    for public_key, status, code in refused_keys(site, louis):
        answer = officer.post(
            f"/api/v1/members/{camille.id}/keys/recover",
            json={"public_key": public_key, "label": "new phone"},
        )
        assert (answer.status_code, answer.json()["error"]) == (status, code), public_key
        assert written_by_site(site) == before, public_key
    live = [k["key_id"] for k in camille.get("/api/v1/me/keys").json() if not k["revoked_ms"]]
    assert camille.key is not None and live == [camille.key.key_id]


def test_the_node_signs_the_key_events_of_the_wallet_api(site: TestClient) -> None:
    """What the client cannot forge: the event is the node's, over the key it was sent."""
    camille = join(site, "Camille")
    node = site.app.state.node  # type: ignore[attr-defined]
    assert camille.key is not None
    with node.ledger.reading() as conn:
        row = conn.execute(
            select(key_events).where(key_events.c.key_id == camille.key.key_id)
        ).one()
    assert (row.action, row.signer_key_id) == ("register", node.node_key.key_id)
    event = key_event(
        "register",
        origin=node.ledger.origin,
        owner=camille.account,
        public_key=camille.key.public_key,
        signer=node.node_key,
    )
    stored = json.loads(row.event_json)
    assert {k: stored[k] for k in ("node", "owner", "key", "public_key", "signer")} == {
        k: event[k] for k in ("node", "owner", "key", "public_key", "signer")
    }
    node.node_key.nacl_key.verify_key.verify(row.event_json.encode(), bytes(row.signature))
