"""The wallet API as residents use it: join, log in, keys, pay, history, receipts."""

from __future__ import annotations

from tests.people import fund, join


def test_join_pay_and_see_history(site) -> None:
    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, camille, 5_000)
    paid = camille.pay(louis, 1_250, memo="Covoiturage")
    assert paid.status_code == 201, paid.text
    assert camille.balance() == 3_750 and louis.balance() == 1_250
    items = louis.get("/api/v1/wallet/history").json()["items"]
    assert items[0]["amount"] == 1_250 and items[0]["counterparty"] == camille.id
    assert items[0]["memo"] == "Covoiturage"
