"""The crowdfunding plugin, end to end: a member proposes, the admin publishes, members
pledge (raise, lower, cancel) with orders their devices sign, and the deadline pays the
beneficiary (with the commune's matching) or gives every pledge back."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from plugins.crowdfunding import service
from plugins.crowdfunding.models import campaigns, movements, payments
from plugins.crowdfunding.settings import CrowdfundingSettings
from tests.people import Person, at_once, fund, join, movements_of, operator

DAY = service.DAY_MS


def node_of(site: TestClient) -> Any:
    return site.app.state.node  # type: ignore[attr-defined]


def propose(person: Person, **fields: Any) -> Any:
    body = {
        "title": "Réparer le lavoir",
        "description": "Le toit fuit.",
        "goal": 10_000,
        "days": 10,
        **fields,
    }
    return person.post("/api/v1/campaigns", json=body)


def opened(site: TestClient, owner: Person, **fields: Any) -> dict[str, Any]:
    """A campaign proposed by `owner` and published by the admin (with the matching among
    `fields`, if any: the admin decides it)."""
    matching = {k: fields.pop(k) for k in ("match_per_unit_bp", "match_cap") if k in fields}
    made = propose(owner, **fields)
    assert made.status_code == 201, made.text
    published = operator(site, "admin").post(
        f"/api/v1/campaigns/{made.json()['id']}/publish", json=matching or None
    )
    assert published.status_code == 200, published.text
    campaign: dict[str, Any] = published.json()
    return campaign


def pledge(person: Person, campaign: dict[str, Any], cents: int, **fields: Any) -> Any:
    order = person.order("escrow_payment", to=campaign["escrow"], amount=cents, **fields)
    return person.post(f"/api/v1/campaigns/{campaign['id']}/pledges", json=order)


def counts(site: TestClient) -> tuple[int, ...]:
    with node_of(site).ledger.reading() as conn:
        return tuple(
            conn.scalar(select(func.count()).select_from(t)) or 0
            for t in (campaigns, payments, movements)
        )


def progress(person: Person, campaign: dict[str, Any]) -> dict[str, Any]:
    answer = person.get(f"/api/v1/campaigns/{campaign['id']}/progress")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def deadline(site: TestClient, campaign: dict[str, Any]) -> str:
    return service.close_due(node_of(site), campaign["deadline_ms"] + 1)


def with_commune(site: TestClient, commune: Person) -> None:
    node_of(site).plugins.settings["crowdfunding"] = CrowdfundingSettings(commune=commune.id)


def test_a_funded_campaign_pays_its_beneficiary_the_pledges_and_the_matching(
    site: TestClient,
) -> None:
    node = node_of(site)
    commune, camille, louis = join(site, "Mairie"), join(site, "Camille"), join(site, "Louis")
    with_commune(site, commune)
    for person, cents in ((commune, 20_000), (camille, 10_000), (louis, 10_000)):
        fund(site, person, cents)
    # The commune pays 3 000 into the matching fund; it adds 0.5 unit per unit, up to 2 500.
    paid = commune.post(
        "/api/v1/campaigns/matching/payments",
        json=commune.order("escrow_payment", to=service.MATCHING, amount=3_000),
    )
    assert paid.status_code == 201, paid.text
    campaign = opened(site, commune, for_commune=True, match_per_unit_bp=5_000, match_cap=2_500)
    assert campaign["beneficiary"] == commune.id and campaign["state"] == "open"
    assert pledge(camille, campaign, 3_000).status_code == 201
    assert pledge(camille, campaign, 2_000).status_code == 201  # raised: a new payment
    assert pledge(louis, campaign, 4_000).status_code == 201
    lowered = louis.post(f"/api/v1/campaigns/{campaign['id']}/pledge/lower", json={"amount": 1_000})
    assert lowered.status_code == 200, lowered.text
    assert louis.balance() == 9_000 and camille.balance() == 5_000
    # Camille lowers to 4 000: taken from her newest payment.
    assert (
        camille.post(
            f"/api/v1/campaigns/{campaign['id']}/pledge/lower", json={"amount": 4_000}
        ).status_code
        == 200
    )
    seen = progress(louis, campaign)
    assert (seen["pledged"], seen["backers"], seen["mine"]) == (5_000, 2, 1_000)
    assert seen["matching"] == 2_500
    # Not reached: 5 000 of 10 000. Camille adds 5 000 more.
    assert pledge(camille, campaign, 5_000).status_code == 201
    before = commune.balance()
    assert deadline(site, campaign).startswith("1 campaigns closed")
    assert deadline(site, campaign).startswith("0 campaigns closed")  # twice: nothing more
    # Exactly the pledges (10 000) plus the matching within its cap (2 500).
    assert commune.balance() == before + 10_000 + 2_500
    assert node.ledger.balance(campaign["escrow"]) == 0
    assert node.ledger.balance(service.MATCHING) == 500
    # The commune's wallet reads what it paid into and was paid from, not escrow codes.
    seen = movements_of(commune, "fr")
    assert "Mis de côté · à Fonds d’abondement de la commune" in seen
    assert "Versé depuis une mise de côté · de Projet · Réparer le lavoir" in seen
    assert "Versé depuis une mise de côté · de Fonds d’abondement de la commune" in seen
    assert "escrow:" not in seen
    closed = progress(camille, campaign)
    assert closed["state"] == "funded" and closed["pledged"] == 10_000
    # Its trail: every pledge, refund and release, with its transfer id.
    trail = camille.get(f"/api/v1/campaigns/{campaign['id']}/trail").json()
    kinds = [row["kind"] for row in trail]
    assert kinds.count("escrow_payment") == 4 and kinds.count("escrow_refund") == 2
    assert kinds.count("escrow_release") == 5  # the four payments and the matching
    # Who pledged is Camille's to see for her own pledges, not Louis's.
    seen_by_louis = {
        r["account"] for r in louis.get(f"/api/v1/campaigns/{campaign['id']}/trail").json()
    }
    assert camille.account not in seen_by_louis and louis.account in seen_by_louis
    assert None in seen_by_louis and commune.account in seen_by_louis  # the releases
    # Anyone may read the outcome, in French.
    html = {"Accept": "text/html", "Accept-Language": "fr"}
    visitor = TestClient(site.app).get(f"/campaigns/{campaign['id']}", headers=html)
    assert visitor.status_code == 200 and "objectif atteint" in visitor.text
    assert "un membre" in visitor.text and camille.account not in visitor.text
    # A pledge after the deadline is refused, nothing written.
    assert pledge(louis, campaign, 100).json()["error"] == "campaign_not_open"


def test_a_missed_goal_gives_every_pledge_back(site: TestClient) -> None:
    node = node_of(site)
    camille, louis, ines = join(site, "Camille"), join(site, "Louis"), join(site, "Ines")
    for person in (louis, ines):
        fund(site, person, 5_000)
    campaign = opened(site, camille, goal=50_000)
    assert pledge(louis, campaign, 1_500).status_code == 201
    assert pledge(ines, campaign, 2_500).status_code == 201
    again = ines.order("escrow_payment", to=campaign["escrow"], amount=500)
    path = f"/api/v1/campaigns/{campaign['id']}/pledges"
    assert ines.post(path, json=again).status_code == 201
    assert ines.post(path, json=again).status_code == 200  # sent twice: moved once
    assert ines.balance() == 2_000
    # Two cancellations at once give back once.
    lowered: list[int] = []
    both = [
        threading.Thread(
            target=lambda: lowered.append(
                ines.post(
                    f"/api/v1/campaigns/{campaign['id']}/pledge/lower", json={"amount": 2_500}
                ).status_code
            )
        )
        for _ in range(2)
    ]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    assert ines.balance() == 2_500 and progress(ines, campaign)["mine"] == 2_500, lowered
    cancelled = louis.post(f"/api/v1/campaigns/{campaign['id']}/pledge/lower", json={"amount": 0})
    assert cancelled.status_code == 200 and louis.balance() == 5_000
    assert progress(ines, campaign)["backers"] == 1
    deadline(site, campaign)
    assert (louis.balance(), ines.balance(), camille.balance()) == (5_000, 5_000, 0)
    assert node.ledger.balance(campaign["escrow"]) == 0
    assert progress(ines, campaign)["state"] == "missed"


def test_the_deadline_run_at_once_by_two_threads_and_after_a_restart_moves_money_once(
    site: TestClient,
) -> None:
    node = node_of(site)
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, louis, 5_000)
    campaign = opened(site, camille, goal=1_000)
    for cents in (400, 700):
        assert pledge(louis, campaign, cents).status_code == 201
    results: list[str] = []
    runners = [
        threading.Thread(target=lambda: results.append(deadline(site, campaign))) for _ in range(2)
    ]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    assert sorted(r.split(",")[0] for r in results) == ["0 campaigns closed", "1 campaigns closed"]
    # A restart that lost the plugin's records of the releases: the log still has them,
    # the same client ids move nothing again.
    with node.engine.begin() as conn:
        conn.execute(movements.delete())
    deadline(site, campaign)
    assert camille.balance() == 1_100 and louis.balance() == 3_900
    assert node.ledger.balance(campaign["escrow"]) == 0


def test_a_pledge_racing_the_deadline_is_counted_or_given_back(site: TestClient) -> None:
    node = node_of(site)
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, louis, 5_000)
    campaign = opened(site, camille, goal=100_000)
    # The payment reached the log, but the campaign closed before it was recorded (the
    # reaction records it afterwards, as after a crash): the next run gives it back.
    order = louis.order("escrow_payment", to=campaign["escrow"], amount=1_200)
    from ledger.signing import SignedOrder
    from runtime.signing import post

    posted = post(node, SignedOrder.from_json(order))
    deadline(site, campaign)
    assert louis.balance() == 3_800
    service.record_payment(
        node,
        posted.transfer_id,
        campaign["escrow"],
        campaign["id"],
        louis.id,
        1_200,
        posted.created_ms,
    )
    deadline(site, campaign)
    assert louis.balance() == 5_000 and node.ledger.balance(campaign["escrow"]) == 0


def test_bad_requests_are_refused_precisely_and_change_nothing(site: TestClient) -> None:
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, louis, 2_000)
    campaign = opened(site, camille, goal=5_000)
    before = (counts(site), louis.balance(), camille.balance())
    refused = {
        "bad_goal": propose(camille, goal=0),
        "bad_duration": propose(camille, days=61),
        "no_commune": propose(camille, for_commune=True),
    }
    absurd = propose(camille, goal=10**12)
    assert absurd.status_code == 422 and absurd.json()["error"] == "bad_goal"
    assert propose(camille, days=0).json()["error"] == "bad_duration"
    for code, answer in refused.items():
        assert answer.status_code in (409, 422) and answer.json()["error"] == code, answer.text
    # Above the wallet's balance: the ledger refuses, in the reader's language.
    poor = louis.client.post(
        f"/api/v1/campaigns/{campaign['id']}/pledges",
        json=louis.order("escrow_payment", to=campaign["escrow"], amount=3_000),
        headers={**louis.headers(), "Accept-Language": "fr"},
    )
    assert poor.status_code == 409 and poor.json()["error"] == "insufficient_funds"
    assert "solde" in poor.json()["message"].lower()
    # Another member's pledge: Camille sends Louis's signed order.
    theirs = louis.order("escrow_payment", to=campaign["escrow"], amount=100)
    stolen = camille.post(f"/api/v1/campaigns/{campaign['id']}/pledges", json=theirs)
    assert stolen.status_code == 422 and stolen.json()["error"] == "not_the_pledge"
    # A payment to another escrow, a pledge to an unpublished campaign.
    wrong = pledge(louis, {**campaign, "escrow": service.MATCHING}, 100)
    assert wrong.json()["error"] == "not_the_pledge"
    waiting = propose(camille).json()
    unpublished = louis.post(
        f"/api/v1/campaigns/{waiting['id']}/pledges",
        json=louis.order("escrow_payment", to=waiting["escrow"], amount=100),
    )
    assert unpublished.status_code == 404 and unpublished.json()["error"] == "unknown_campaign"
    # Lowering a pledge one does not have, or raising it by this route.
    raised = louis.post(f"/api/v1/campaigns/{campaign['id']}/pledge/lower", json={"amount": 10})
    assert raised.status_code == 422 and raised.json()["error"] == "bad_pledge_change"
    # A picture that is not one.
    bad = camille.put(f"/api/v1/campaigns/{campaign['id']}/picture", content=b"not an image")
    assert bad.status_code == 422 and bad.json()["error"] == "bad_picture"
    node_of(site).plugins.settings["crowdfunding"] = CrowdfundingSettings(max_picture_bytes=1_000)
    large = Image.new("RGB", (300, 300))
    raw = io.BytesIO()
    large.save(raw, "PNG", compress_level=0)
    too_big = camille.put(f"/api/v1/campaigns/{campaign['id']}/picture", content=raw.getvalue())
    assert too_big.status_code == 422 and too_big.json()["error"] == "bad_picture"
    after_counts = counts(site)
    assert after_counts[0] == before[0][0] + 1  # the one proposal waiting, nothing else
    assert after_counts[1:] == before[0][1:]
    assert (louis.balance(), camille.balance()) == before[1:]


def test_each_bad_input_gets_its_reason_in_french_and_writes_nothing(
    site: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pledges on a closed campaign or above the wallet's balance, a deadline outside 1 to 60
    days, another member's pledge: a precise 4xx whose message is French, nothing changed."""
    camille, louis = join(site, "Camille"), join(site, "Louis")
    for person in (camille, louis):
        person.extra_headers["Accept-Language"] = "fr"
    fund(site, louis, 2_000)
    campaign = opened(site, camille, goal=5_000)
    assert pledge(louis, campaign, 500).status_code == 201
    done = opened(site, camille, goal=100, days=1)
    assert pledge(louis, done, 100).status_code == 201
    deadline(site, done)  # funded and closed; the other one runs on
    before = (counts(site), louis.balance(), camille.balance())

    def refused(answer: Any, status: int, error: str, french: str) -> None:
        assert answer.status_code == status, answer.text
        assert answer.json()["error"] == error, answer.text
        assert answer.json()["message"] == french
        assert (counts(site), louis.balance(), camille.balance()) == before

    closed = "Cette campagne n’est pas ouverte aux contributions."
    refused(pledge(louis, done, 100), 409, "campaign_not_open", closed)
    lower_done = f"/api/v1/campaigns/{done['id']}/pledge/lower"
    refused(louis.post(lower_done, json={"amount": 0}), 409, "campaign_not_open", closed)
    refused(
        pledge(louis, campaign, 3_000),
        409,
        "insufficient_funds",
        louis.post(  # the ledger's own words, in French
            f"/api/v1/campaigns/{campaign['id']}/pledges",
            json=louis.order("escrow_payment", to=campaign["escrow"], amount=3_000),
        ).json()["message"],
    )
    assert "solde" in pledge(louis, campaign, 3_000).json()["message"]
    lasts = "Une campagne dure de 1 à 60 jours après sa publication."
    for days in (0, 61, -1, 2**31):
        refused(propose(camille, days=days), 422, "bad_duration", lasts)
    theirs = louis.order("escrow_payment", to=campaign["escrow"], amount=100)
    refused(
        camille.post(f"/api/v1/campaigns/{campaign['id']}/pledges", json=theirs),
        422,
        "not_the_pledge",
        "Une contribution doit être un paiement de votre propre portefeuille vers le "
        "séquestre de cette campagne.",
    )
    lower = f"/api/v1/campaigns/{campaign['id']}/pledge/lower"
    raised = louis.post(lower, json={"amount": 800})
    assert "vous pouvez seulement la baisser" in raised.json()["message"]
    refused(raised, 422, "bad_pledge_change", raised.json()["message"])
    # Past the deadline, before the job has closed it: refused all the same.
    monkeypatch.setattr(service, "now_ms", lambda: campaign["deadline_ms"])
    refused(pledge(louis, campaign, 100), 409, "campaign_not_open", closed)
    refused(louis.post(lower, json={"amount": 0}), 409, "campaign_not_open", closed)


def test_a_picture_is_re_encoded_without_its_metadata_and_served(site: TestClient) -> None:
    camille, louis = join(site, "Camille"), join(site, "Louis")
    campaign = opened(site, camille)
    image = Image.new("RGB", (40, 30), (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "Secret Camera"  # Make
    raw = io.BytesIO()
    image.save(raw, "JPEG", exif=exif.tobytes())
    assert b"Secret Camera" in raw.getvalue()
    put = camille.put(f"/api/v1/campaigns/{campaign['id']}/picture", content=raw.getvalue())
    assert put.status_code == 204, put.text
    assert (
        louis.put(f"/api/v1/campaigns/{campaign['id']}/picture", content=raw.getvalue()).json()[
            "error"
        ]
        == "not_the_owner"
    )
    served = TestClient(site.app).get(f"/api/v1/campaigns/{campaign['id']}/picture")
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert b"Secret Camera" not in served.content
    assert Image.open(io.BytesIO(served.content)).size == (40, 30)


def test_moderation_and_news(site: TestClient) -> None:
    camille, louis, admin = join(site, "Camille"), join(site, "Louis"), operator(site, "admin")
    tiers = [{"minimum": 2_000, "title": "Une tuile gravée", "most_backers": 20}]
    assert propose(camille, tiers=[{"minimum": 0, "title": "Rien"}]).status_code == 422
    assert propose(camille, tiers=[{"minimum": 20_000, "title": "Trop"}]).json()["error"] == (
        "bad_tier"
    )
    waiting = propose(camille, tiers=tiers).json()
    assert waiting["state"] == "proposed"
    assert louis.get(f"/api/v1/campaigns/{waiting['id']}").status_code == 404
    assert [c["id"] for c in admin.get("/api/v1/campaigns/proposed").json()] == [waiting["id"]]
    assert louis.post(f"/api/v1/campaigns/{waiting['id']}/publish").status_code == 403
    rejected = admin.post(
        f"/api/v1/campaigns/{waiting['id']}/reject", json={"reason": "Hors sujet"}
    )
    assert rejected.json()["state"] == "rejected" and rejected.json()["reason"] == "Hors sujet"
    again = admin.post(f"/api/v1/campaigns/{waiting['id']}/publish")
    assert again.status_code == 409 and again.json()["error"] == "campaign_not_proposed"
    campaign = opened(site, camille)
    news = camille.post(
        f"/api/v1/campaigns/{campaign['id']}/updates", json={"text": "Tuiles commandées"}
    )
    assert news.status_code == 201
    assert (
        louis.post(f"/api/v1/campaigns/{campaign['id']}/updates", json={"text": "x"}).json()[
            "error"
        ]
        == "not_the_owner"
    )
    html = {"Accept": "text/html", "Accept-Language": "fr"}
    page = louis.client.get(f"/campaigns/{campaign['id']}", headers=html)
    assert page.status_code == 200 and "Tuiles commandées" in page.text
    assert "Une tuile gravée" not in page.text  # that one was rejected
    assert '<a href="/campaigns">Projets</a>' in page.text
    queue = admin.client.get("/campaigns/moderation", headers=html)
    assert queue.status_code == 200 and "Aucune campagne n’attend de modération." in queue.text
    listed = louis.client.get("/campaigns", headers=html).text
    assert "Réparer le lavoir" in listed and "0 contributeurs · 10 jours restants" in listed
    assert 'href="/campaigns/matching"' in listed
    # A visitor is not sent to a page that would only ask them to log in.
    visitor = TestClient(site.app).get("/campaigns", headers=html).text
    assert "Réparer le lavoir" in visitor and 'href="/campaigns/matching"' not in visitor


def test_the_trail_links_only_the_receipts_its_reader_may_open(site: TestClient) -> None:
    """Every row of the trail names its transfer; a receipt is linked only where the reader
    may open it (a transfer that touched them), so no link of the page is a dead end."""
    import re

    camille, louis, ines = join(site, "Camille"), join(site, "Louis"), join(site, "Inès")
    fund(site, louis, 2_000)
    fund(site, ines, 2_000)
    campaign = opened(site, camille, goal=1_000, days=1)
    assert pledge(louis, campaign, 600).status_code == 201
    assert pledge(ines, campaign, 700).status_code == 201
    lowered = louis.post(f"/api/v1/campaigns/{campaign['id']}/pledge/lower", json={"amount": 500})
    assert lowered.status_code == 200, lowered.text
    deadline(site, campaign)  # funded: both pledges released to Camille
    node_of(site).new_sealer().seal_all()
    html = {"Accept": "text/html", "Accept-Language": "fr"}
    trail = louis.get(f"/api/v1/campaigns/{campaign['id']}/trail").json()
    assert len(trail) == 5  # two pledges, a refund, two releases
    for reader, expected in ((louis, 2), (ines, 1), (camille, 2)):
        page = reader.client.get(f"/campaigns/{campaign['id']}", headers=html).text
        linked = re.findall(r'href="(/wallet/receipts/[0-9]+)"', page)
        assert len(linked) == expected, (reader.member["display_name"], linked)
        for href in linked:
            assert reader.client.get(href, headers=html).status_code == 200, href
        shown = [r for r in reader.get(f"/api/v1/campaigns/{campaign['id']}/trail").json()]
        assert sum(r["receipt"] for r in shown) == expected
    louis_page = louis.client.get(f"/campaigns/{campaign['id']}", headers=html).text
    assert "· vous</td>" in louis_page and louis.account not in louis_page
    assert "· Camille</td>" in louis_page  # a release names its beneficiary
    visitor = TestClient(site.app).get(f"/campaigns/{campaign['id']}", headers=html).text
    assert "/wallet/receipts/" not in visitor and "un membre" in visitor


def test_the_reaction_records_payments_posted_elsewhere(site: TestClient) -> None:
    """A pledge posted straight to the ledger (a crash before the plugin recorded it) is
    recorded from the log's event."""
    from tests.stripe_server import wait_until

    node = node_of(site)
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, louis, 1_000)
    campaign = opened(site, camille)
    from ledger.signing import SignedOrder
    from runtime.signing import post

    order = louis.order("escrow_payment", to=campaign["escrow"], amount=600)
    post(node, SignedOrder.from_json(order))
    wait_until(
        lambda: progress(louis, campaign)["pledged"] == 600,
        timeout=30,
        what="the reaction to the pledge",
    )
    assert node.ledger.balance(campaign["escrow"]) == 600


@pytest.mark.one_database
def test_the_demo_seed_makes_an_open_and_a_funded_campaign(tmp_path: Any) -> None:
    from node.demo import seed as seed_village
    from runtime.node import init_node
    from runtime.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path}/demo.db")
    node = init_node(settings)
    try:
        told: list[str] = []
        seed_village(node, say=told.append)  # which calls plugins/crowdfunding/demo.seed
        assert "  crowdfunding: a campaign open, one funded" in told
        found = {c["title"]: c for c in service.listed(node)}
        lavoir, benches = found["Réparer le lavoir"], found["Des bancs pour la place"]
        assert lavoir["state"] == "open" and benches["state"] == "funded"
        assert service.progress(node, lavoir)["backers"] == 3
        assert node.ledger.balance(service.escrow(benches["id"])) == 0
        assert node.ledger.balance(service.escrow(lavoir["id"])) == 4_500
        node.new_sealer().seal_all()
        from audits.audit import audit

        report = audit(node.engine, node_public_key=node.node_key.public_key, workers=1)
        assert report.ok, [f.message for f in report.findings]
    finally:
        node.close()


def _close_in_a_process(settings: Any, at_ms: int, barrier: Any, queue: Any) -> None:
    """A second node process running the deadline job at the same moment as another."""
    from runtime.node import open_node

    node = open_node(settings)
    try:
        barrier.wait(60)
        queue.put(service.close_due(node, at_ms))
    except BaseException as exc:  # reported to the test, which fails on it
        queue.put(f"error: {exc!r}")
    finally:
        node.close()


def test_the_deadline_run_by_two_processes_at_once_moves_money_once(site: TestClient) -> None:
    import multiprocessing

    node = node_of(site)
    camille, louis, ines = join(site, "Camille"), join(site, "Louis"), join(site, "Ines")
    for person in (louis, ines):
        fund(site, person, 5_000)
    funded = opened(site, camille, goal=1_000)
    missed = opened(site, camille, goal=90_000)
    for campaign in (funded, missed):
        assert pledge(louis, campaign, 700).status_code == 201
        assert pledge(ines, campaign, 800).status_code == 201
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(2), context.Queue()
    at_ms = max(funded["deadline_ms"], missed["deadline_ms"]) + 1
    children = [
        context.Process(target=_close_in_a_process, args=(node.settings, at_ms, barrier, queue))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    try:
        said = sorted(queue.get(timeout=120) for _ in children)
    finally:
        for child in children:
            child.join(timeout=30)
    assert not [s for s in said if s.startswith("error")], said
    assert sum(int(s.split()[0]) for s in said) == 2  # each campaign closed by one of them
    assert camille.balance() == 1_500
    assert (louis.balance(), ines.balance()) == (4_300, 4_200)
    for campaign in (funded, missed):
        assert node.ledger.balance(campaign["escrow"]) == 0


@pytest.mark.one_database
def test_every_message_of_the_plugin_has_its_french() -> None:
    """Each msgid of its templates, its refusals, its menu and its states is in its French
    catalogue, with the same placeholders, and the French keeps its narrow spaces."""
    import re
    from pathlib import Path

    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    from plugins.crowdfunding import errors

    here = Path(service.__file__).parent
    with (here / "locale/fr/LC_MESSAGES/crowdfunding.po").open("rb") as po:
        french = {str(m.id): str(m.string) for m in read_po(po) if m.id}
    found = {
        str(message)
        for _, _, message, _, _ in extract_from_dir(
            str(here / "templates"),
            method_map=[("**.html", "jinja2")],
            options_map={"**.html": {"extensions": "jinja2.ext.i18n"}},
        )
        if message
    }
    found |= {r.message for r in vars(errors).values() if isinstance(r, errors.NamedRefusal)}
    found |= set(service.STATES.values()) | {"Projects", "Campaigns to moderate"}
    found |= set(service.ESCROW_NAMES.values())
    assert sorted(m for m in found if not french.get(m)) == []
    placeholders = re.compile(r"\{\w+\}|%\(\w+\)s")
    for msgid in found:
        assert sorted(placeholders.findall(msgid)) == sorted(placeholders.findall(french[msgid]))
    for text in french.values():
        assert not re.search(r" [:;!?]", text), text  # U+202F before them, not a space


def test_a_pledge_posted_as_the_campaign_closes_is_given_back_at_once(
    site: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = node_of(site)
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, louis, 5_000)
    campaign = opened(site, camille, goal=1_000)
    assert pledge(louis, campaign, 1_000).status_code == 201
    # The pledge's check passed just before the deadline job closed the campaign.
    checked = service._open(node, campaign["id"])
    deadline(site, campaign)
    monkeypatch.setattr(service, "_open", lambda node, campaign_id: checked)
    late = pledge(louis, campaign, 700)
    assert late.status_code == 201, late.text
    assert louis.balance() == 4_000 and camille.balance() == 1_000  # the 700 came back
    assert node.ledger.balance(campaign["escrow"]) == 0


def test_a_pledge_lowered_as_the_deadline_passes_is_refused_not_refunded_after_the_count(
    site: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lowering was checked before the deadline but its refund reaches the ledger after
    it: the refund has expired with the campaign, so the count at closing stays true."""
    import time

    from sqlalchemy import update

    node = node_of(site)
    camille, louis = join(site, "Camille"), join(site, "Louis")
    louis.extra_headers["Accept-Language"] = "fr"
    fund(site, louis, 2_000)
    campaign = opened(site, camille, goal=1_000)
    assert pledge(louis, campaign, 1_000).status_code == 201
    closes_ms = int(time.time() * 1000) + 2_500
    with node.engine.begin() as conn:
        conn.execute(
            update(campaigns).where(campaigns.c.id == campaign["id"]).values(deadline_ms=closes_ms)
        )
    slow = service._move

    def on_a_slow_line(*args: Any, **kwargs: Any) -> Any:
        time.sleep(max(0.0, (closes_ms + 1_500) / 1000 - time.time()))
        return slow(*args, **kwargs)

    monkeypatch.setattr(service, "_move", on_a_slow_line)
    late = louis.post(f"/api/v1/campaigns/{campaign['id']}/pledge/lower", json={"amount": 0})
    assert late.status_code == 409 and late.json()["error"] == "campaign_not_open", late.text
    assert late.json()["message"] == "Cette campagne n’est pas ouverte aux contributions."
    assert louis.balance() == 1_000
    assert service.close_due(node, closes_ms + 1).startswith("1 campaigns closed")
    assert camille.balance() == 1_000 and node.ledger.balance(campaign["escrow"]) == 0


def test_the_matching_fund_page_for_the_treasurer_and_the_commune(site: TestClient) -> None:
    commune, treasurer = join(site, "Mairie"), operator(site, "treasurer")
    with_commune(site, commune)
    fund(site, commune, 3_000)
    paid = commune.post(
        "/api/v1/campaigns/matching/payments",
        json=commune.order("escrow_payment", to=service.MATCHING, amount=1_500),
    )
    assert paid.status_code == 201, paid.text
    louis = join(site, "Louis")
    fund(site, louis, 1_000)
    not_commune = louis.post(
        "/api/v1/campaigns/matching/payments",
        json=louis.order("escrow_payment", to=service.MATCHING, amount=100),
    )
    assert not_commune.status_code == 409 and not_commune.json()["error"] == "not_the_commune"
    html = {"Accept": "text/html", "Accept-Language": "fr"}
    seen = treasurer.client.get("/campaigns/matching", headers=html)
    assert seen.status_code == 200 and "Le fonds d’abondement de la commune" in seen.text
    assert "15,00" in seen.text and 'id="matching-form"' not in seen.text
    assert 'id="matching-form"' in commune.client.get("/campaigns/matching", headers=html).text
    assert treasurer.get("/api/v1/campaigns/matching").json()["left"] == 1_500


def test_the_admin_promises_matching_only_from_what_the_fund_has_not_promised(
    site: TestClient,
) -> None:
    commune, camille = join(site, "Mairie"), join(site, "Camille")
    with_commune(site, commune)
    fund(site, commune, 5_000)
    paid = commune.post(
        "/api/v1/campaigns/matching/payments",
        json=commune.order("escrow_payment", to=service.MATCHING, amount=3_000),
    )
    assert paid.status_code == 201, paid.text
    admin = operator(site, "admin")
    first = opened(site, camille, match_per_unit_bp=10_000, match_cap=2_000)
    assert (first["match_per_unit_bp"], first["match_cap"]) == (10_000, 2_000)
    second = propose(camille).json()
    publish = f"/api/v1/campaigns/{second['id']}/publish"
    # 3 000 in the fund, 2 000 promised to the first campaign: 1 000 is free.
    short = admin.post(publish, json={"match_per_unit_bp": 5_000, "match_cap": 1_500})
    assert short.status_code == 409 and short.json()["error"] == "matching_short", short.text
    assert (
        "10,00"
        in admin.client.post(
            publish,
            json={"match_per_unit_bp": 5_000, "match_cap": 1_500},
            headers={**admin.headers(), "Accept-Language": "fr"},
        ).json()["message"]
    )
    for wrong in ({"match_per_unit_bp": 5_000}, {"match_cap": 500}, {"match_per_unit_bp": 10**6}):
        answer = admin.post(publish, json={"match_cap": 0, "match_per_unit_bp": 0, **wrong})
        assert answer.status_code == 422 and answer.json()["error"] == "bad_matching", answer.text
    assert service.campaign(node_of(site), second["id"])["state"] == "proposed"  # untouched
    # A member cannot set the commune's matching in a proposal.
    sneaky = propose(camille, match_per_unit_bp=100_000, match_cap=10**6)
    assert sneaky.status_code == 422
    fits = admin.post(publish, json={"match_per_unit_bp": 5_000, "match_cap": 1_000})
    assert fits.status_code == 200 and fits.json()["state"] == "open", fits.text
    assert admin.get("/api/v1/campaigns/matching").json()["unpromised"] == 0


def _lowered_in_the_ledger_only(site: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refunds of a lowering reach the ledger but not the plugin's tables (as when the node
    stops in between, or the deadline job counts between the two)."""
    monkeypatch.setattr(service.repo, "record_movement", lambda conn, row: False)


def test_a_lowering_posted_but_not_yet_recorded_is_not_counted_at_the_deadline(
    site: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = node_of(site)
    camille, louis, ines = join(site, "Camille"), join(site, "Louis"), join(site, "Ines")
    for person in (louis, ines):
        fund(site, person, 2_000)
    campaign = opened(site, camille, goal=1_500)
    assert pledge(louis, campaign, 1_000).status_code == 201
    assert pledge(ines, campaign, 800).status_code == 201
    with monkeypatch.context() as patched:
        _lowered_in_the_ledger_only(site, patched)
        path = f"/api/v1/campaigns/{campaign['id']}/pledge/lower"
        assert louis.post(path, json={"amount": 400}).status_code == 200
        assert louis.balance() == 1_600  # the ledger gave 600 back; the plugin does not know
        # The count is 400 + 800 = 1200, what the escrow holds: missed.
        assert service.close(node, campaign["id"], campaign["deadline_ms"] + 1)
    found = service.campaign(node, campaign["id"])
    assert (found["state"], found["raised"]) == ("missed", 1_200)
    deadline(site, campaign)
    assert (louis.balance(), ines.balance(), camille.balance()) == (2_000, 2_000, 0)
    assert node.ledger.balance(campaign["escrow"]) == 0
    assert_audit(site)


def test_lowerings_sent_as_the_deadline_job_runs_leave_the_count_true(site: TestClient) -> None:
    """Members lower their pledges again and again while the deadline passes and the job
    runs: each lowering is refunded before the count (and not counted) or refused, and the
    campaign gives out exactly what the ledger held: the escrow ends empty."""
    import time

    from sqlalchemy import update

    node = node_of(site)
    camille = join(site, "Camille")
    backers = [join(site, f"Membre {i}") for i in range(4)]
    for person in backers:
        fund(site, person, 1_000)
    campaign = opened(site, camille, goal=1_200)
    for person in backers:
        assert pledge(person, campaign, 500).status_code == 201
    closes_ms = int(time.time() * 1000) + 1_500
    with node.engine.begin() as conn:
        conn.execute(
            update(campaigns).where(campaigns.c.id == campaign["id"]).values(deadline_ms=closes_ms)
        )
    path = f"/api/v1/campaigns/{campaign['id']}/pledge/lower"

    def lowering(person: Person) -> Callable[[], list[int]]:
        def run() -> list[int]:
            said, left = [], 500
            while left > 0:  # 100 less each time, until refused (closed) or nothing left
                answer = person.post(path, json={"amount": left - 100})
                said.append(answer.status_code)
                if answer.status_code != 200:
                    assert answer.json()["error"] == "campaign_not_open", answer.text
                    break
                left -= 100
            return said

        return run

    def the_job() -> str:
        while time.time() * 1000 <= closes_ms:  # the job's run after the deadline
            time.sleep(0.01)
        return str(service.close_due(node, int(time.time() * 1000)))

    answers = at_once([*(lowering(p) for p in backers), the_job])
    assert str(answers[-1]).startswith("1 campaigns closed"), answers
    deadline(site, campaign)  # the next run: anything still held goes out
    found = service.campaign(node, campaign["id"])
    assert node.ledger.balance(campaign["escrow"]) == 0
    kept = [1_000 - person.balance() for person in backers]  # what each one's pledge gave
    assert all(0 <= k <= 500 for k in kept), kept
    gained = camille.balance()
    if found["state"] == "funded":
        assert found["raised"] >= 1_200 and gained == found["raised"] == sum(kept)
    else:
        assert found["raised"] < 1_200 and gained == 0 and kept == [0] * 4
    assert_audit(site)


def assert_audit(site: TestClient) -> None:
    from audits.audit import audit

    node = node_of(site)
    node.new_sealer().seal_all()
    report = audit(node.engine, node_public_key=node.node_key.public_key, workers=1)
    assert report.ok, [f.message for f in report.findings]
