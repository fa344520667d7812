"""The members' rules that change who a caller is: each takes effect at the caller's very
next request, though the node had just remembered that caller (`members.access`), because
the function making the change forgets by itself, once the change is committed."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from members import access, service
from members.access import SESSION_COOKIE, node_of, token_hash
from members.models import members
from tests.conftest import NODE_HASHER, PASSWORD
from tests.people import join, new_client


def test_a_token_revoked_is_refused_at_its_next_request(site: TestClient) -> None:
    node = node_of(site)
    camille = join(site, "Camille", key=False)
    made = camille.post("/api/v1/me/tokens", json={"scope": "wallet", "label": "script"})
    assert made.status_code == 201, made.text
    device, bearer = new_client(site), {"Authorization": f"Bearer {made.json()['token']}"}
    assert device.get("/api/v1/me", headers=bearer).status_code == 200  # now remembered
    service.revoke_token(node, service.get_member(node, camille.id), made.json()["id"])
    refused = device.get("/api/v1/me", headers=bearer)
    assert (refused.status_code, refused.json()["error"]) == (401, "bad_token")


def test_a_session_logged_out_is_refused_at_its_next_request(site: TestClient) -> None:
    node = node_of(site)
    camille = join(site, "Camille", key=False)
    assert camille.get("/api/v1/me").status_code == 200  # now remembered
    service.log_out(node, token_hash(camille.client.cookies[SESSION_COOKIE]))
    refused = camille.get("/api/v1/me")
    assert (refused.status_code, refused.json()["error"]) == (401, "login_required")


def test_a_membership_renewed_shows_at_the_next_request(site: TestClient) -> None:
    node = node_of(site)
    camille = join(site, "Camille", key=False)
    assert camille.get("/api/v1/me").json()["membership_until"] is None  # now remembered
    service.renew_membership(node, camille.id, date(2031, 12, 31))
    assert camille.get("/api/v1/me").json()["membership_until"] == "2031-12-31"


def test_a_wallet_frozen_or_thawed_shows_at_the_next_request(site: TestClient) -> None:
    node = node_of(site)
    camille = join(site, "Camille", key=False)
    reason = "A card payment was taken back"
    assert camille.get("/api/v1/me").json()["frozen"] is False  # now remembered
    with pytest.raises(RuntimeError), service.freezing(node) as freezes:
        freezes.freeze(camille.id, reason)
        raise RuntimeError("the caller's own write failed")  # nothing is frozen
    assert camille.get("/api/v1/me").json()["frozen"] is False
    with service.freezing(node) as freezes:
        freezes.freeze(camille.id, reason)
    assert camille.get("/api/v1/me").json()["frozen"] is True
    with service.freezing(node) as freezes:
        freezes.thaw(camille.id, "another reason")  # never lifts a freeze made for another
    assert camille.get("/api/v1/me").json()["frozen"] is True
    with service.freezing(node) as freezes:
        freezes.thaw(camille.id, reason)
    assert camille.get("/api/v1/me").json()["frozen"] is False
    with service.freezing(node) as freezes:
        freezes.freeze(camille.id, reason)
    with service.freezing(node) as freezes:
        freezes.unfreeze(camille.id)  # the treasurer's: whatever the reason
    assert camille.get("/api/v1/me").json()["frozen"] is False


def test_passwords_are_kept_as_argon2id_hashes_at_the_recommended_cost(
    site: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the node stores of a password: an Argon2id hash at RFC 9106's second
    recommended setting (64 MiB, 3 passes), never the password; the member logs in with it."""
    monkeypatch.setattr(access, "hasher", NODE_HASHER)
    camille = join(site, "Camille", key=False)
    with node_of(site).engine.connect() as conn:
        stored = conn.scalar(select(members.c.password_hash).where(members.c.id == camille.id))
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PASSWORD not in stored
    assert camille.client.get("/api/v1/me").status_code == 200  # `join` logged in with it
