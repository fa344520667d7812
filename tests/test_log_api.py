"""The log as the API serves it to anyone: checkpoints by size, consistency proofs between
them, receipts against a checkpoint the caller names, a member's order found by its client id,
and a clear 503 when the stored tree is damaged. Proofs are checked with the independent
verifier (tests/log_verifier.py), which knows nothing of the ledger's code."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from ledger.checkpoint import verifier_key
from ledger.merkle import consistency_proof, inclusion_proof
from ledger.models import checkpoints, log_leaves, log_nodes
from ledger.sealer import StoredNodes
from tests import log_verifier
from tests.people import Person, fund, join, new_client, operator
from tests.test_tamper import attacker
from tests.test_wallet_api import wait_sealed
from web.i18n import translations

FR = translations("fr")


def node_of(site: TestClient) -> Any:
    return site.app.state.node  # type: ignore[attr-defined]


def vkey(site: TestClient) -> str:
    node = node_of(site)
    return verifier_key(node.ledger.origin, node.node_key.public_key)


def unbase64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rounds(site: TestClient, payer: Person, payee: Person, sizes: list[int]) -> list[int]:
    """Payments sealed in rounds of these sizes (one checkpoint each, at least); their ids."""
    paid: list[int] = []
    for size in sizes:
        for _ in range(size):
            answer = payer.pay(payee, 10)
            assert answer.status_code == 201, answer.text
            paid.append(answer.json()["transfer_id"])
        wait_sealed(site)
    return paid


def listed_checkpoints(client: TestClient) -> list[dict[str, Any]]:
    """Every checkpoint the node lists, page after page (newest first)."""
    found: list[dict[str, Any]] = []
    params: dict[str, int] = {"limit": 3}
    while True:
        page = client.get("/api/v1/checkpoints", params=params)
        assert page.status_code == 200, page.text
        found += page.json()["items"]
        if page.json()["next_before"] is None:
            return found
        params["before"] = page.json()["next_before"]


def refusal(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    return dict(answer.json())


@pytest.fixture
def payers(site: TestClient) -> tuple[Person, Person]:
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, camille, 100_000)
    return camille, louis


# -- checkpoints and consistency -------------------------------------------------------------


def test_every_pair_of_signed_sizes_has_a_consistency_proof_a_stranger_can_check(
    site: TestClient, payers: tuple[Person, Person]
) -> None:
    rounds(site, *payers, [1, 3, 2, 5, 1])  # uneven rounds: the tree is seldom perfect
    visitor = new_client(site)  # nobody logged in: anyone may check the log
    listed = listed_checkpoints(visitor)
    sizes = [c["tree_size"] for c in listed]
    assert len(sizes) >= 6 and sizes == sorted(set(sizes), reverse=True)
    assert visitor.get("/api/v1/checkpoint").text == listed[0]["note"]
    roots: dict[int, bytes] = {}
    for item in listed:
        by_size = visitor.get(f"/api/v1/checkpoints/{item['tree_size']}")
        assert by_size.status_code == 200 and by_size.text == item["note"]
        assert by_size.headers["content-type"].startswith("text/plain")
        origin, size, roots[size] = log_verifier.open_checkpoint(by_size.text, vkey(site))
        assert (origin, size) == (node_of(site).ledger.origin, item["tree_size"])
    for old in sizes:
        for new in (s for s in sizes if s >= old):
            answer = visitor.get("/api/v1/log/consistency", params={"from": old, "to": new})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert (body["from"], body["to"]) == (old, new)
            proof = [unbase64url(h) for h in body["proof"]]
            if old == new:
                assert proof == []
                continue
            assert log_verifier.verify_consistency(old, new, roots[old], roots[new], proof)
            assert not log_verifier.verify_consistency(old, new, roots[old], roots[old], proof)


def test_sizes_the_log_cannot_prove_are_refused_precisely(
    site: TestClient, payers: tuple[Person, Person]
) -> None:
    rounds(site, *payers, [2])
    visitor = new_client(site)
    latest = listed_checkpoints(visitor)[0]["tree_size"]

    def consistency(**params: Any) -> Any:
        return visitor.get("/api/v1/log/consistency", params=params)

    body = refusal(consistency(**{"from": latest, "to": latest - 1}), 422, "bad_tree_sizes")
    assert (body["old"], body["new"]) == (latest, latest - 1)
    body = refusal(consistency(**{"from": 1, "to": latest + 1}), 404, "beyond_the_log")
    assert (body["latest"], body["size"]) == (latest, latest + 1)
    for odd in ({"from": 0, "to": 1}, {"from": -1, "to": 1}, {"from": 1, "to": 2**70}):
        refusal(consistency(**odd), 422, "invalid_request")
    refusal(consistency(**{"from": "abc", "to": 1}), 422, "invalid_request")
    refusal(consistency(to=1), 422, "invalid_request")  # `from` is required
    unsigned = next(n for n in range(1, latest) if n not in _signed_sizes(visitor))
    body = refusal(visitor.get(f"/api/v1/checkpoints/{unsigned}"), 404, "unknown_checkpoint")
    assert body["size"] == unsigned
    refusal(visitor.get(f"/api/v1/checkpoints/{latest + 1}"), 404, "unknown_checkpoint")
    refusal(visitor.get("/api/v1/checkpoints/abc"), 422, "invalid_request")
    refusal(visitor.get("/api/v1/checkpoints/0"), 422, "invalid_request")
    french = visitor.get(f"/api/v1/checkpoints/{unsigned}", headers={"Accept-Language": "fr"})
    message = FR.gettext("The log has no checkpoint of {size} entries.").format(size=unsigned)
    assert (
        french.json()["message"] == message != f"The log has no checkpoint of {unsigned} entries."
    )


def _signed_sizes(client: TestClient) -> set[int]:
    return {c["tree_size"] for c in listed_checkpoints(client)}


# -- receipts against a named checkpoint -----------------------------------------------------


def test_a_receipt_against_an_older_checkpoint_checks_with_that_checkpoint(
    site: TestClient, payers: tuple[Person, Person]
) -> None:
    camille, louis = payers
    first, *_ = rounds(site, camille, louis, [1])
    kept = camille.get("/api/v1/checkpoint").text
    _, kept_size, kept_root = log_verifier.open_checkpoint(kept, vkey(site))
    later = rounds(site, camille, louis, [2, 3])
    path = f"/api/v1/transfers/{first}/receipt"
    old = camille.get(path, params={"tree_size": kept_size}).json()
    assert (old["tree_size"], old["checkpoint"]) == (kept_size, kept)
    leaf = log_verifier.leaf_hash(old["leaf"].encode())
    proof = [unbase64url(h) for h in old["proof"]]
    assert log_verifier.verify_inclusion(leaf, old["index"], kept_size, proof, kept_root)
    latest = camille.get(path).json()  # without the parameter: the latest, as before
    assert latest["tree_size"] > kept_size and latest["index"] == old["index"]
    _, size, root = log_verifier.open_checkpoint(latest["checkpoint"], vkey(site))
    latest_proof = [unbase64url(h) for h in latest["proof"]]
    assert log_verifier.verify_inclusion(leaf, latest["index"], size, latest_proof, root)
    assert not log_verifier.verify_inclusion(leaf, old["index"], kept_size, latest_proof, kept_root)
    # A transfer sealed after the kept checkpoint is not in its tree; an unsigned size is none.
    body = refusal(
        camille.get(f"/api/v1/transfers/{later[-1]}/receipt", params={"tree_size": kept_size}),
        409,
        "not_in_that_tree",
    )
    assert body["size"] == kept_size
    unsigned = next(n for n in range(kept_size, size) if n not in _signed_sizes(camille.client))
    refusal(camille.get(path, params={"tree_size": unsigned}), 404, "unknown_checkpoint")
    refusal(camille.get(path, params={"tree_size": "abc"}), 422, "invalid_request")
    refusal(camille.get(path, params={"tree_size": 0}), 422, "invalid_request")
    # Someone else's transfer stays unknown, whatever the size named.
    stranger = join(site, "Stranger")
    refusal(stranger.get(path, params={"tree_size": kept_size}), 404, "unknown_transfer")


# -- what became of an order -----------------------------------------------------------------


def test_a_member_finds_their_own_order_by_its_client_id_and_nobody_else_does(
    site: TestClient, payers: tuple[Person, Person]
) -> None:
    camille, louis = payers
    paid = camille.pay(louis, 321, id="courses-du-samedi")
    assert paid.status_code == 201, paid.text
    found = camille.get("/api/v1/transfers", params={"client_id": "courses-du-samedi"})
    assert found.status_code == 200, found.text
    assert found.json() | {"sealed": None} == {
        "transfer_id": paid.json()["transfer_id"],
        "client_id": "courses-du-samedi",
        "kind": "payment",
        "postings": {camille.account: -321, louis.account: 321},
        "created_ms": paid.json()["created_ms"],
        "sealed": None,
    }
    wait_sealed(site)
    again = camille.get("/api/v1/transfers", params={"client_id": "courses-du-samedi"})
    assert again.json()["sealed"] is True
    # The payee, another member, an operator: as unknown as an id never used, or refused.
    for other in (louis, join(site, "Other")):
        lookup = other.get("/api/v1/transfers", params={"client_id": "courses-du-samedi"})
        refusal(lookup, 404, "unknown_order")
    never = camille.client.get(
        "/api/v1/transfers",
        params={"client_id": "jamais-envoye"},
        headers={"Accept-Language": "fr"},
    )
    assert refusal(never, 404, "unknown_order")["message"] == FR.gettext(UNKNOWN_ORDER)
    assert FR.gettext(UNKNOWN_ORDER) != UNKNOWN_ORDER
    treasurer = operator(site, "treasurer")
    lookup = treasurer.get("/api/v1/transfers", params={"client_id": "courses-du-samedi"})
    assert lookup.status_code == 403
    for bad in ("", "a/b", "x" * 65, "-starts-with-a-dash"):
        refusal(camille.get("/api/v1/transfers", params={"client_id": bad}), 422, "invalid_request")
    # A point-of-sale token reads its merchant's payments, not orders.
    shop = join(site, "Boulangerie", "merchant")
    pos = shop.post("/api/v1/me/tokens", json={"scope": "pos", "label": "till"}).json()["token"]
    counter = new_client(site)
    refusal(
        counter.get(
            "/api/v1/transfers",
            params={"client_id": "courses-du-samedi"},
            headers={"Authorization": f"Bearer {pos}"},
        ),
        403,
        "token_scope",
    )


UNKNOWN_ORDER = (
    "No transfer was made from an order of yours with this id: the node has not "
    "posted it, and the same signed order can be sent again."
)


# -- a damaged stored tree -------------------------------------------------------------------


class Reading:
    """Stored nodes, noting which ones a proof reads."""

    def __init__(self, conn: Any) -> None:
        self.stored, self.read = StoredNodes(conn), set[tuple[int, int]]()

    def perfect(self, level: int, index: int) -> bytes:
        self.read.add((level, index))
        return self.stored.perfect(level, index)


def test_a_missing_stored_node_answers_503_log_damaged_never_500(
    site: TestClient, payers: tuple[Person, Person], caplog: pytest.LogCaptureFixture
) -> None:
    camille, louis = payers
    paid = rounds(site, camille, louis, [3, 4])
    node = node_of(site)
    with node.ledger.reading() as conn:
        size = int(
            conn.scalar(
                select(checkpoints.c.tree_size).order_by(checkpoints.c.tree_size.desc()).limit(1)
            )
        )
        index = conn.scalar(select(log_leaves.c.idx).where(log_leaves.c.transfer_id == paid[0]))
        reading = Reading(conn)
        inclusion_proof(index, size, reading)
        level, gone = max(n for n in reading.read if n[0] >= 1)  # a node of log_nodes
        # A consistency proof that needs that node too.
        old = next(m for m in range(1, size) if (level, gone) in _reads(conn, m, size))
    with attacker(node.settings.database_url) as conn:
        conn.execute(delete(log_nodes).where(log_nodes.c.level == level, log_nodes.c.idx == gone))

    caplog.set_level(logging.ERROR)
    caplog.clear()
    receipt = camille.get(f"/api/v1/transfers/{paid[0]}/receipt")
    body = refusal(receipt, 503, "log_damaged")
    assert "sou audit" in body["message"] and "Traceback" not in receipt.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert f"level {level}, index {gone}" in errors[0].getMessage()
    french = camille.client.get(
        f"/api/v1/transfers/{paid[0]}/receipt", headers={"Accept-Language": "fr"}
    )
    assert french.json()["message"] == FR.gettext(ENGLISH_DAMAGED) != ENGLISH_DAMAGED
    assert "sou audit" in french.json()["message"]
    consistency = new_client(site).get("/api/v1/log/consistency", params={"from": old, "to": size})
    refusal(consistency, 503, "log_damaged")
    page = camille.client.get(f"/wallet/receipts/{paid[0]}", headers={"Accept": "text/html"})
    assert page.status_code == 503 and FR.gettext(ENGLISH_DAMAGED) in page.text
    # A proof that needs no damaged node is still given.
    assert (
        new_client(site)
        .get("/api/v1/log/consistency", params={"from": size, "to": size})
        .status_code
        == 200
    )


def _reads(conn: Any, old: int, new: int) -> set[tuple[int, int]]:
    reading = Reading(conn)
    consistency_proof(old, new, reading)
    return reading.read


ENGLISH_DAMAGED = (
    "The log's stored tree is damaged, so no proof can be given now. "
    "The treasurer should run `sou audit`."
)


def test_a_sealed_transfer_whose_leaf_is_gone_answers_503_not_not_sealed_yet(
    site: TestClient, payers: tuple[Person, Person]
) -> None:
    camille, louis = payers
    paid = rounds(site, camille, louis, [2])
    with attacker(node_of(site).settings.database_url) as conn:
        conn.execute(delete(log_leaves).where(log_leaves.c.transfer_id == paid[0]))
    refusal(camille.get(f"/api/v1/transfers/{paid[0]}/receipt"), 503, "log_damaged")
