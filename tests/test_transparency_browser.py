"""The transparency page in a real browser, as a visitor on a phone: French first, then
English; nothing wider than the screen, nothing blocked by the Content-Security-Policy,
no serious axe-core finding; its link hands out the node's own verifier. And the resident's
whole path: the receipt downloaded from the receipt page is one the verifier accepts."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from ledger.checkpoint import verifier_key
from tests.browser import PHONE
from tests.people import fund, join
from tests.test_pos_browser import _log_in
from tests.test_wallet_api import wait_sealed

pytest_plugins = ["tests.browser"]  # fixtures: `chromium`, `open_browser`

ROOT = Path(__file__).resolve().parent.parent
VERIFIER = ROOT / "ledger" / "verify.py"


def fits_the_phone(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"])


@pytest.mark.one_database  # the figures are checked on both databases in test_transparency.py
def test_a_visitor_reads_the_page_on_a_phone_in_french_and_english(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    from tests.test_pages_browser_walk import Walk

    camille, louis = join(village, "Camille"), join(village, "Louis")
    fund(village, camille, 5_000)
    assert camille.pay(louis, 1_250).status_code == 201
    wait_sealed(village)
    node = village.app.state.node  # type: ignore[attr-defined]
    key = verifier_key(node.ledger.origin, node.node_key.public_key)

    for lang, locale, heading, backed in (
        ("fr", "fr-FR", "Transparence", "Chaque unité en circulation est couverte"),
        ("en", "en-GB", "Transparency", "Every unit in circulation is backed"),
    ):
        walk = Walk(lang)
        page = walk.watch(open_browser(locale))
        walk.visit(page, ["/transparence"])
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page.locator("#backing-status")).to_contain_text(backed)
        expect(page.locator("#verifier-key")).to_have_text(key)
        expect(page.locator("#checkpoint")).to_contain_text(node.ledger.origin)
        expect(page.locator("#verify-commands")).to_contain_text("pip install pynacl")
        expect(page.locator("#verify-commands")).to_contain_text("python sou_verify.py")
        expect(page.locator("#verifier-sha256")).to_have_text(
            hashlib.sha256(VERIFIER.read_bytes()).hexdigest()
        )
        assert fits_the_phone(page)
        assert not walk.problems, "\n".join(walk.problems)
    with page.expect_download() as download:
        page.click("#verifier-download")
    assert download.value.suggested_filename == "sou_verify.py"
    assert Path(download.value.path()).read_bytes() == VERIFIER.read_bytes()


@pytest.mark.one_database
def test_the_receipt_downloaded_from_its_page_is_valid(
    open_browser: Callable[..., Page], village: TestClient, live_site: str, tmp_path: Path
) -> None:
    camille, louis = join(village, "Camille"), join(village, "Louis")
    fund(village, camille, 5_000)
    paid = camille.pay(louis, 725)
    assert paid.status_code == 201, paid.text
    wait_sealed(village)
    page = open_browser()
    receipt = f"/wallet/receipts/{paid.json()['transfer_id']}"
    _log_in(page, camille, receipt)
    with page.expect_download() as download:
        page.click("#receipt-download")
    saved = tmp_path / "receipt.json"
    download.value.save_as(saved)
    checked = subprocess.run(
        [sys.executable, "-m", "ledger.verify", str(saved), "--node", live_site],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("Valid: transfer")
