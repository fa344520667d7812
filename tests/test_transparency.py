"""The public transparency page and the verifier a resident runs.

The page's figures must be the ledger's after top-ups, payments, note sales and
reconversions; `python -m ledger.verify` must accept a real receipt from a live node (exit 0),
refuse one with a byte changed anywhere that matters (exit 1, in plain words) and say it
cannot read garbage (exit 2); two checkpoints must be consistent old → new. The page hands
out that same file, which runs on its own with PyNaCl and nothing of Sou."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger import repository
from ledger.chart import RULES, kind_of
from ledger.checkpoint import verifier_key
from runtime.node import open_node
from runtime.settings import Settings
from tests.people import Person, fund, join, new_client, operator
from tests.test_notes import print_series, sell, send, with_notes
from tests.test_reconversion import ask, with_units
from tests.test_wallet_api import wait_sealed
from web.i18n import money

ROOT = Path(__file__).resolve().parent.parent
VERIFIER = ROOT / "ledger" / "verify.py"


@pytest.fixture
def node(node_settings: Settings) -> Iterator[Any]:
    """The opened node, with the paper notes plugged in."""
    opened = open_node(node_settings, plugins=with_notes())
    yield opened
    opened.close()


def vkey(site: TestClient) -> str:
    node = site.app.state.node  # type: ignore[attr-defined]
    return verifier_key(node.ledger.origin, node.node_key.public_key)


def ledger_figures(site: TestClient) -> tuple[int, int, int]:
    """(reserve, digital units, paper units) straight from the ledger's balances."""
    node = site.app.state.node  # type: ignore[attr-defined]
    with node.ledger.reading() as conn:
        balances = repository.balances(conn)
    reserve = sum(b for c, b in balances.items() if RULES[kind_of(c)].backing)
    outstanding = sum(b for c, b in balances.items() if RULES[kind_of(c)].outstanding)
    paper = balances.get("notes:circulation", 0)
    return reserve, outstanding - paper, paper


def verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger.verify", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def clean_audit(site: TestClient) -> int:
    """Run a full audit and record it (once the scheduled one, if running, is done); when
    it finished."""
    from audits.service import run_audit
    from web.refusals import Refusal

    node = site.app.state.node  # type: ignore[attr-defined]
    while True:
        try:
            report, _ = run_audit(node.engine, node.node_key, full=True, workers=1)
            break
        except Refusal:  # the node's own scheduled audit is running: wait for its end
            time.sleep(0.1)
    assert report.ok, report.findings
    with node.ledger.reading() as conn:
        from audits.service import latest_run

        run = latest_run(conn, clean=True)
    assert run is not None and run.finished_ms is not None
    return int(run.finished_ms)


def test_the_ratio_never_shows_a_short_reserve_as_full() -> None:
    """Rounded down: a reserve a cent short reads below 100 %."""
    from hypothesis import given
    from hypothesis import strategies as st

    from audits.transparency.service import Figures

    @given(st.integers(1, 10**13), st.integers(0, 10**13), st.integers(0, 10**13))
    def check(digital: int, paper: int, reserve: int) -> None:
        f = Figures("SOU", digital, paper, reserve, None, None, "o", "k")
        assert f.ratio_percent is not None
        assert (f.ratio_percent >= 100) == f.backed == (reserve >= digital + paper)

    check()


# -- the page ----------------------------------------------------------------------------------


def test_the_page_shows_the_ledgers_figures_after_every_kind_of_movement(site: TestClient) -> None:
    visitor = new_client(site)
    empty = visitor.get("/api/v1/transparency").json()
    assert (empty["outstanding"], empty["reserve"], empty["ratio_percent"]) == (0, 0, None)

    camille, louis = join(site, "Camille"), join(site, "Louis")
    fund(site, camille, 12_345)
    assert camille.pay(louis, 2_000).status_code == 201
    shop = with_units(site, 10_000)
    assert ask(shop, 5_000, 150).status_code == 201  # a reconversion: units leave
    treasurer, office = operator(site, "treasurer"), operator(site, "office")
    print_series(treasurer, "T", count=5, cents=1_000)
    send(treasurer, "T", 1, 5)
    sell(office, "T", 1, 3)
    wait_sealed(site)
    audited = clean_audit(site)

    reserve, digital, paper = ledger_figures(site)
    assert paper == 3_000 and digital > 0 and reserve >= digital + paper
    body = visitor.get("/api/v1/transparency").json()
    assert (body["reserve"], body["digital"], body["paper"]) == (reserve, digital, paper)
    assert body["outstanding"] == digital + paper
    assert body["verifier_key"] == vkey(site)
    assert body["checkpoint"] == visitor.get("/api/v1/checkpoint").text
    assert body["last_clean_audit_ms"] >= audited  # this one, or the schedule's since

    page = visitor.get("/transparence", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["cache-control"] == "private, max-age=5"
    html = page.text
    local = site.app.state.node.ledger.chart.local  # type: ignore[attr-defined]
    for cents, currency in ((digital, local), (paper, local), (reserve, "EUR")):
        assert money(cents, "fr", currency) in html
    assert "Transparence" in html and "Chaque unité en circulation est couverte" in html
    assert "\u202f%" in html  # the ratio, French typography
    assert vkey(site) in html and "python sou_verify.py receipt.json" in html
    assert "Aucun audit n’a encore été enregistré." not in html  # one ran: see below
    english = visitor.get("/transparence?lang=en").text
    assert "Every unit in circulation is backed" in english


@pytest.mark.one_database  # the file and the page's words, whatever the database
def test_the_page_hands_out_the_nodes_own_verifier(site: TestClient) -> None:
    from tests.test_pages import assert_all_french, template_msgids

    visitor = new_client(site)
    download = visitor.get("/transparence/sou_verify.py")
    assert download.status_code == 200
    assert download.content == VERIFIER.read_bytes()
    assert download.headers["content-type"] == "text/x-python; charset=utf-8"
    assert download.headers["content-disposition"] == 'attachment; filename="sou_verify.py"'
    assert download.headers["x-content-type-options"] == "nosniff"

    html = visitor.get("/transparence", headers={"Accept": "text/html"}).text
    assert 'href="/transparence/sou_verify.py"' in html
    assert "Télécharger le vérificateur (sou_verify.py)" in html
    assert "n’a besoin que de PyNaCl\u202f: lisez-le avant de le lancer" in html
    assert hashlib.sha256(VERIFIER.read_bytes()).hexdigest() in html
    assert "pip install pynacl\npython sou_verify.py receipt.json --key" in html
    assert "pip install sou" not in html and "python -m ledger.verify" not in html
    english = visitor.get("/transparence?lang=en").text
    assert "Download the verifier (sou_verify.py)" in english
    assert_all_french(template_msgids(ROOT / "web/templates/transparency/page.html"))


def test_a_signed_in_readers_page_is_not_kept_by_caches(site: TestClient) -> None:
    camille = join(site, "Camille")
    answer = camille.get("/transparence")
    assert answer.status_code == 200 and "no-store" in answer.headers["cache-control"]
    assert '<a href="/transparence">Transparence</a>' in answer.text  # in the menu


# -- the verifier on a live node ---------------------------------------------------------------


def receipt_of(person: Person, transfer_id: int) -> dict[str, Any]:
    answer = person.get(f"/api/v1/transfers/{transfer_id}/receipt")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.fixture
def paid(village: TestClient, live_site: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    camille, louis = join(village, "Camille"), join(village, "Louis")
    fund(village, camille, 10_000)
    answer = camille.pay(louis, 1_234, memo="Pain et œufs")
    assert answer.status_code == 201, answer.text
    wait_sealed(village)
    receipt = receipt_of(camille, answer.json()["transfer_id"])
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    return path, receipt


def test_a_real_receipt_is_valid(
    village: TestClient, live_site: str, paid: tuple[Path, dict[str, Any]]
) -> None:
    path, _ = paid
    by_key = verify(str(path), "--key", vkey(village))
    assert by_key.returncode == 0, by_key.stderr
    assert by_key.stdout.startswith("Valid: transfer")
    by_node = verify(str(path), "--node", live_site)
    assert by_node.returncode == 0, by_node.stderr
    assert "still holds it" in by_node.stdout


def altered(receipt: dict[str, Any], part: str) -> dict[str, Any]:
    changed: dict[str, Any] = json.loads(json.dumps(receipt))
    if part == "transfer":
        changed["leaf"] = changed["leaf"].replace("1234", "1235")
    elif part == "proof":
        first = changed["proof"][0]
        changed["proof"][0] = ("B" if first[0] == "A" else "A") + first[1:]
    elif part == "checkpoint":
        lines = changed["checkpoint"].split("\n")
        lines[1] = str(int(lines[1]) + 1)
        changed["checkpoint"] = "\n".join(lines)
    else:  # the signature: one byte of it
        body, _, sig_line = changed["checkpoint"][:-1].rpartition("\n")
        dash, name, stamp = sig_line.split(" ")
        raw = bytearray(base64.b64decode(stamp))
        raw[-1] ^= 1
        changed["checkpoint"] = f"{body}\n{dash} {name} {base64.b64encode(raw).decode()}\n"
    assert changed != receipt
    return changed


@pytest.mark.parametrize("part", ["transfer", "proof", "checkpoint", "signature"])
def test_a_receipt_with_one_byte_changed_is_not_valid(
    village: TestClient, paid: tuple[Path, dict[str, Any]], tmp_path: Path, part: str
) -> None:
    _, receipt = paid
    assert receipt["proof"], "two entries at least: the proof is not empty"
    path = tmp_path / f"{part}.json"
    path.write_text(json.dumps(altered(receipt, part)))
    checked = verify(str(path), "--key", vkey(village))
    assert checked.returncode == 1, (checked.stdout, checked.stderr)
    assert checked.stderr.startswith("NOT VALID: ") and "Traceback" not in checked.stderr


def pynacl_only(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose only packages are PyNaCl and its C binding: with `python -S` the
    node's own packages (installed in place, through a .pth file) cannot be imported."""
    import _cffi_backend
    import nacl

    packages = tmp_path_factory.mktemp("pynacl-only")
    for found in (Path(nacl.__file__).parent, Path(_cffi_backend.__file__)):
        (packages / found.name).symlink_to(found)
    return {**os.environ, "PYTHONPATH": str(packages)}


@pytest.mark.one_database  # the receipts' checks run on both in the tests above
def test_the_downloaded_verifier_checks_a_receipt_on_its_own(
    village: TestClient,
    paid: tuple[Path, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    resident = tmp_path_factory.mktemp("resident")  # outside the repository
    assert not resident.resolve().is_relative_to(ROOT)
    script = resident / "sou_verify.py"
    download = new_client(village).get("/transparence/sou_verify.py")
    assert download.status_code == 200
    script.write_bytes(download.content)
    _, receipt = paid
    (resident / "receipt.json").write_text(json.dumps(receipt))
    (resident / "altered.json").write_text(json.dumps(altered(receipt, "transfer")))
    env = pynacl_only(tmp_path_factory)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-S", *args],
            capture_output=True,
            text=True,
            cwd=resident,
            env=env,
            timeout=120,
            check=False,
        )

    assert run("-c", "import ledger").returncode == 1  # nothing of Sou to lean on
    valid = run(str(script), "receipt.json", "--key", vkey(village))
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.startswith("Valid: transfer")
    refused = run(str(script), "altered.json", "--key", vkey(village))
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert refused.stderr.startswith("NOT VALID: ")
    helped = run(str(script), "--help")  # in the words the resident typed
    assert helped.returncode == 0 and "usage: python sou_verify.py " in helped.stdout


@pytest.mark.parametrize(
    "content", ["", "not json", "[]", '{"leaf": 1}', "\x00\xff garbage", '{"transfer_id": "x"}']
)
def test_garbage_cannot_be_checked(village: TestClient, tmp_path: Path, content: str) -> None:
    path = tmp_path / "garbage.json"
    path.write_text(content, errors="surrogateescape")
    checked = verify(str(path), "--key", vkey(village))
    assert checked.returncode == 2, (checked.stdout, checked.stderr)
    assert checked.stderr.startswith("Could not check: ") and "Traceback" not in checked.stderr


def test_no_key_no_file_and_a_bad_key_cannot_be_checked(
    village: TestClient, paid: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, _ = paid
    assert verify(str(path)).returncode == 2
    assert verify(str(tmp_path / "missing.json"), "--key", vkey(village)).returncode == 2
    assert verify(str(path), "--key", "not+a+key").returncode == 2
    helped = verify("--help")
    assert helped.returncode == 0 and "usage: python -m ledger.verify " in helped.stdout


def test_checkpoints_kept_and_newer_are_consistent(
    village: TestClient, live_site: str, paid: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, receipt = paid
    old = tmp_path / "kept.txt"
    old.write_text(receipt["checkpoint"])
    camille, louis = join(village, "Camille"), join(village, "Louis")
    fund(village, camille, 500)
    assert camille.pay(louis, 100).status_code == 201
    wait_sealed(village)
    new = tmp_path / "latest.txt"
    new.write_text(village.get("/api/v1/checkpoint").text)

    one = verify("checkpoint", str(old), "--key", vkey(village))
    assert one.returncode == 0 and one.stdout.startswith("Valid:"), one.stderr
    both = verify("checkpoint", str(old), str(new), "--key", vkey(village), "--node", live_site)
    assert both.returncode == 0, both.stderr
    assert "Consistent" in both.stdout

    # A checkpoint of another log state of the same size (a fork) is refused.
    forged = tmp_path / "other.txt"
    lines = new.read_text().split("\n")
    lines[2] = "A" * 43 + "="
    forged.write_text("\n".join(lines))
    assert verify("checkpoint", str(forged), "--key", vkey(village)).returncode == 1
