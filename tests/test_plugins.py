"""The plugin seam, as a stranger's plugin uses it: the tool library (tests/plugin_example, a
distribution of its own, installed by `make test`) and plugins that go wrong in every way
(tests/broken_plugins)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sou_tools.settings import ToolSettings
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from audits.audit import audit
from node.app import create_app
from node.cli import build_cli
from runtime.hookspecs import hookimpl
from runtime.jobs import job_states
from runtime.models import job_runs
from runtime.node import open_node
from runtime.plugins import GROUP, Plugin, Plugins
from runtime.settings import Settings
from tests.live import free_port
from tests.people import fund, join, movements_of, operator
from tests.stripe_server import wait_until
from web.i18n import translations

FR = translations("fr")
BROKEN = {
    "import_error": "tests.broken_plugins.import_error",
    "names_nothing": "tests.broken_plugins.wrong:nothing_here",
    "no_hooks": "tests.broken_plugins.wrong:no_hooks",
    "failing_migration": "tests.broken_plugins.wrong:failing_migration",
    "route_taken": "tests.broken_plugins.wrong:route_taken",
    "escrow_outside": "tests.broken_plugins.wrong:escrow_outside",
    "startup_fails": "tests.broken_plugins.wrong:startup_fails",
}


def with_broken() -> Plugins:
    """The installed plugins, and every broken one."""
    plugins = Plugins.discover()
    for name, value in BROKEN.items():
        plugins.load(EntryPoint(name, value, GROUP))
    return plugins


@pytest.fixture
def tools(node: Any) -> Iterator[TestClient]:
    """The node's app, started, with the tool library as installed."""
    with TestClient(create_app(node.settings, node), base_url="http://127.0.0.1") as client:
        yield client


def test_the_installed_plugin_is_found_by_its_entry_point() -> None:
    found = {p.name: p for p in entry_points(group=GROUP)}
    assert found["tools"].value == "sou_tools.plugin"
    assert found["tools"].dist is not None and found["tools"].dist.name == "sou-tool-library"
    # The node's own features come through the same door.
    assert {"members", "wallet", "cards", "office", "admin", "merchants"} <= found.keys()
    assert all(found[n].dist.name == "sou" for n in ("wallet", "merchants"))  # type: ignore[union-attr]


def test_plugins_are_listed_with_their_version_and_hooks(tools: TestClient) -> None:
    listed = {p["name"]: p for p in tools.get("/api/v1/plugins").json()["plugins"]}
    assert listed["tools"]["version"] == "0.3.0"
    assert listed["tools"]["distribution"] == "sou-tool-library"
    assert listed["tools"]["state"] == "active"
    assert {
        "sou_routers",
        "sou_migrations",
        "sou_jobs",
        "sou_reactions",
        "sou_menu",
        "sou_escrow_names",
    } <= set(listed["tools"]["hooks"])
    assert listed["wallet"]["shipped"] is True and listed["tools"]["shipped"] is False
    page = tools.get("/plugins", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "sou-tool-library" in page.text and "0.3.0" in page.text


def test_a_plugins_api_documents_the_nodes_refusals(tools: TestClient) -> None:
    """The tool library declares no refusals of its own: its operations are documented with
    the node's, and a request it finds invalid is answered as documented (a Problem)."""
    document = tools.get("/openapi.json").json()
    problem = {"$ref": "#/components/schemas/Problem"}
    operations = {
        (method, path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    assert ("post", "/api/v1/tools/loans") in operations
    for (method, path), operation in operations.items():
        answers = operation["responses"]
        for status in ("4XX", "503"):
            assert answers[status]["content"]["application/json"]["schema"] == problem, (
                method,
                path,
                status,
            )
        assert "HTTPValidationError" not in str(answers), (method, path)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and {"error", "message"} <= set(
        schemas["Problem"]["required"]
    )
    borrower = join(tools, "Agathe")
    refused = borrower.post("/api/v1/tools/loans", json={"tool": "", "deposit": -1})
    assert refused.status_code == 422
    assert set(refused.json()) >= {"error", "message"}


def test_the_plugins_table_is_made_by_its_own_migration(node: Any) -> None:
    tables = inspect(node.engine).get_table_names()
    assert "tool_loans" in tables and "alembic_version_tools" in tables
    with node.engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version_tools")) == "tools_0001"
        core = conn.scalar(text("SELECT version_num FROM alembic_version"))
    assert core and not core.startswith("tools")  # the node's history is its own


def test_its_page_is_in_the_menu_of_its_roles_in_french(tools: TestClient) -> None:
    camille, office = join(tools, "Camille"), operator(tools, "office")
    html = {"Accept": "text/html", "Accept-Language": "fr"}
    wallet = camille.client.get("/wallet", headers=html)
    assert '<a href="/tools">Outilthèque</a>' in wallet.text
    assert '<a href="/tools">' not in office.client.get("/office", headers=html).text
    page = camille.client.get("/tools", headers=html)
    assert page.status_code == 200
    assert "<h1>Outilthèque</h1>" in page.text
    assert "Vous n’avez encore rien emprunté." in page.text
    assert tools.get("/static/tools/tools.css").status_code == 200


def test_deposits_held_in_escrow_are_given_back_or_released_and_the_audit_agrees(
    tools: TestClient,
) -> None:
    node = tools.app.state.node  # type: ignore[attr-defined]
    camille, admin = join(tools, "Camille"), operator(tools, "admin")
    fund(tools, camille, 5_000)
    lent = camille.post("/api/v1/tools/loans", json={"tool": "Tondeuse", "deposit": 2_000})
    assert lent.status_code == 201, lent.text
    loan = lent.json()
    assert loan["escrow"] == f"escrow:tools:loan-{loan['id']}"
    # A deposit that is not the loan's is refused, in plain words, and moves nothing.
    wrong = camille.post(
        f"/api/v1/tools/loans/{loan['id']}/deposit",
        json=camille.order("escrow_payment", to=loan["escrow"], amount=1_000),
    )
    assert wrong.status_code == 422 and wrong.json()["error"] == "not_the_deposit"
    paid = camille.post(
        f"/api/v1/tools/loans/{loan['id']}/deposit",
        json=camille.order("escrow_payment", to=loan["escrow"], amount=2_000),
    )
    assert paid.status_code == 201, paid.text
    assert camille.balance() == 3_000
    # The loan turns out when the payment reaches the log: the plugin's reaction, run by
    # the node's scheduler thread, sees it.
    node.new_sealer().seal_all()
    states = lambda: [x["state"] for x in camille.get("/api/v1/tools/loans").json()]  # noqa: E731
    wait_until(lambda: states() == ["out"], timeout=30, what="the reaction to the deposit")

    back = admin.post(f"/api/v1/tools/loans/{loan['id']}/return")
    assert back.status_code == 200, back.text
    again = admin.post(f"/api/v1/tools/loans/{loan['id']}/return")
    assert again.status_code == 409 and again.json()["error"] == "loan_not_out"
    assert camille.balance() == 5_000
    assert node.ledger.balance(loan["escrow"]) == 0
    # Her wallet reads what the deposit was for, as the plugin names its escrow.
    seen = movements_of(camille, "fr")
    assert "Mis de côté · à Outilthèque · Tondeuse" in seen
    assert "Mise de côté rendue · d’Outilthèque · Tondeuse" in seen

    # A second tool is lost: its deposit is released to the library's keeper.
    keeper = join(tools, "Gardien")
    node.plugins.settings["tools"] = ToolSettings(keeper=keeper.id)
    second = camille.post("/api/v1/tools/loans", json={"tool": "Scie", "deposit": 1_500}).json()
    deposit = camille.order("escrow_payment", to=second["escrow"], amount=1_500)
    assert camille.post(f"/api/v1/tools/loans/{second['id']}/deposit", json=deposit).is_success
    node.new_sealer().seal_all()
    wait_until(lambda: states() == ["returned", "out"], timeout=30, what="the second deposit")
    lost = admin.post(f"/api/v1/tools/loans/{second['id']}/lost")
    assert lost.status_code == 200, lost.text
    assert (camille.balance(), keeper.balance()) == (3_500, 1_500)
    seen = movements_of(keeper, "fr")
    assert "Versé depuis une mise de côté · d’Outilthèque · Scie" in seen
    assert node.ledger.balance(second["escrow"]) == 0
    node.new_sealer().seal_all()
    report = audit(node.engine, node_public_key=node.node_key.public_key, workers=1)
    assert report.ok, report.findings


def test_a_plugin_moves_no_units_but_out_of_its_own_escrows(tools: TestClient) -> None:
    """Its key signs releases and refunds of `escrow:tools:...` only: a payment from a
    member's wallet, or a release from another plugin's escrow, is refused by the ledger."""
    from ledger.errors import LedgerError
    from runtime.signing import post, sign_as

    node = tools.app.state.node  # type: ignore[attr-defined]
    camille = join(tools, "Camille")
    fund(tools, camille, 1_000)
    theft = sign_as(
        node,
        "plugin:tools",
        "payment",
        "tools-theft",
        to="member:nobody",
        amount=500,
        currency="SOU",
        **{"from": camille.account},
    )
    with pytest.raises(LedgerError) as refused:
        post(node, theft)
    assert refused.value.code == "wrong_signer"
    assert camille.balance() == 1_000


class Impostor:
    """A plugin that names every escrow it is asked about, its own or not."""

    @hookimpl
    def sou_escrow_names(self, codes: list[str]) -> dict[str, str]:
        return {code: "Impostor" for code in codes}


def test_a_plugin_names_its_own_escrows_only(tools: TestClient) -> None:
    """The wallet asks every plugin at once for the escrows a page shows, and takes each
    plugin's names for its own escrows only: another plugin cannot rename them."""
    node = tools.app.state.node  # type: ignore[attr-defined]
    node.plugins.manager.register(Impostor(), name="impostor")
    node.plugins.found["impostor"] = Plugin("impostor", "impostor", "1.0")
    camille = join(tools, "Camille")
    fund(tools, camille, 5_000)
    loan = camille.post("/api/v1/tools/loans", json={"tool": "Tondeuse", "deposit": 2_000}).json()
    deposit = camille.order("escrow_payment", to=loan["escrow"], amount=2_000)
    assert camille.post(f"/api/v1/tools/loans/{loan['id']}/deposit", json=deposit).is_success
    assert "Put aside · to Tool library · Tondeuse" in movements_of(camille, "en")
    assert "Mis de côté · à Outilthèque · Tondeuse" in movements_of(camille, "fr")
    assert "Impostor" not in movements_of(camille, "fr")


@pytest.mark.parametrize("disabled", ["tools", " tools , cards"])
def test_a_disabled_plugin_is_not_served(node_settings: Settings, disabled: str) -> None:
    node_settings.plugins_disabled = disabled
    node = open_node(node_settings)
    try:
        with TestClient(create_app(node_settings, node), base_url="http://127.0.0.1") as site:
            assert site.get("/api/v1/tools/loans").status_code == 404
            listed = {p["name"]: p for p in site.get("/api/v1/plugins").json()["plugins"]}
            assert listed["tools"]["state"] == "disabled"
            assert listed["wallet"]["state"] == "active"
    finally:
        node.close()


CIVIC = {"amap": "/amap", "crowdfunding": "/campaigns"}  # the civic plugins, by their page


def test_the_civic_plugins_are_shipped_on_and_can_be_switched_off(
    node_settings: Settings,
) -> None:
    node = open_node(node_settings)
    try:
        with TestClient(create_app(node_settings, node), base_url="http://127.0.0.1") as site:
            listed = {p["name"]: p for p in site.get("/api/v1/plugins").json()["plugins"]}
            camille = join(site, "Camille")
            menu = camille.get("/wallet").text
            for name, path in CIVIC.items():
                assert listed[name]["state"] == "active" and listed[name]["shipped"] is True
                assert camille.get(path).status_code == 200
                assert f'href="{path}"' in menu
    finally:
        node.close()
    node_settings.plugins_disabled = ",".join(CIVIC)
    node = open_node(node_settings)
    try:
        with TestClient(create_app(node_settings, node), base_url="http://127.0.0.1") as site:
            listed = {p["name"]: p for p in site.get("/api/v1/plugins").json()["plugins"]}
            camille = join(site, "Camille")
            menu = camille.get("/wallet").text
            for name, path in CIVIC.items():
                assert listed[name]["state"] == "disabled"
                assert camille.get(path).status_code == 404
                assert f'href="{path}"' not in menu
            assert camille.get("/api/v1/wallet").json()["balance"] == 0  # the rest is served
    finally:
        node.close()


def test_broken_plugins_are_left_out_and_the_node_serves_the_rest(
    node_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    node = open_node(node_settings, plugins=with_broken())
    try:
        with TestClient(create_app(node_settings, node), base_url="http://127.0.0.1") as site:
            anyone = site.get("/api/v1/plugins").json()["plugins"]
            assert all(p["problem"] is None for p in anyone)  # why: for the admin's eyes
            admin = operator(site, "admin")
            listed = {p["name"]: p for p in admin.get("/api/v1/plugins").json()["plugins"]}
            camille = join(site, "Camille")  # the node's own features work
            assert camille.get("/api/v1/wallet").json()["balance"] == 0
            assert site.get("/api/v1/broken/fine").status_code == 404
            assert site.get("/api/v1/startup_fails").status_code == 404
            assert camille.get("/api/v1/tools/loans").status_code == 200
    finally:
        node.close()
    problems = {name: listed[name]["problem"] for name in BROKEN}
    assert all(listed[name]["state"] == "left_out" for name in BROKEN), problems
    assert problems["import_error"].startswith("import: ModuleNotFoundError")
    assert "nothing_here" in problems["names_nothing"]
    assert "implements none of Sou's hooks" in problems["no_hooks"]
    assert problems["failing_migration"].startswith("migrate:")
    assert "GET /api/v1/wallet" in problems["route_taken"]
    assert "escrow:tools:pool" in problems["escrow_outside"]
    assert "does not answer" in problems["startup_fails"]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert all(f"plugin {name}" in logged for name in BROKEN)
    # Nothing of theirs was written: no table half made, no account opened.
    assert "half_done" not in inspect(node.engine).get_table_names()
    with node.engine.connect() as conn:
        assert (
            conn.scalar(
                text("SELECT count(*) FROM accounts WHERE code LIKE 'escrow:escrow_outside:%'")
            )
            == 0
        )


def test_a_plugin_adds_its_commands_to_sou(node_settings: Settings) -> None:
    env = {
        "SOU_DATA_DIR": str(node_settings.data_dir),
        "SOU_DATABASE_URL": node_settings.database_url,
    }
    cli = build_cli(Settings(**{k: v for k, v in node_settings.model_dump().items()}))
    helped = CliRunner().invoke(cli, ["--help"], env=env)
    assert "tools-loans" in helped.output
    counted = CliRunner().invoke(cli, ["tools-loans"], env=env)
    assert counted.exit_code == 0, counted.output
    assert counted.output.strip() == "0 out, 0 waiting"


def test_a_job_runs_once_across_two_server_processes(
    node_settings: Settings, tmp_path: Path
) -> None:
    """`sou serve` with two processes: the tool library's daily job, due at start, runs
    once, and so does the reaction's delivery of each event."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOU_")}
    env.update(
        SOU_DATA_DIR=str(node_settings.data_dir), SOU_DATABASE_URL=node_settings.database_url
    )
    log = (tmp_path / "serve.log").open("wb")
    command = [sys.executable, "-m", "node.cli", "serve", "--workers", "2"]
    server = subprocess.Popen(
        [*command, "--port", str(free_port())],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        node = open_node(node_settings)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with node.engine.connect() as conn:
                    runs = conn.execute(
                        select(job_runs.c.owner).where(job_runs.c.name == "tools.remind_overdue")
                    ).all()
                if runs:
                    break
                time.sleep(0.2)
            time.sleep(3)  # both processes have had their rounds
            with node.engine.connect() as conn:
                runs = conn.execute(
                    select(job_runs.c.owner, job_runs.c.ok).where(
                        job_runs.c.name == "tools.remind_overdue"
                    )
                ).all()
                states = {s.name: s for s in job_states(conn)}
        finally:
            node.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
    assert len(runs) == 1, (runs, (tmp_path / "serve.log").read_text())
    assert runs[0].ok
    assert states["tools.remind_overdue"].lease_owner is None
    assert "reactions.tools.deposits" in states


@pytest.mark.one_database  # the catalogues do not hang on the database
def test_no_plugin_rewords_what_the_node_says(tools: TestClient) -> None:
    """With every plugin's catalogue added (the app is built), each message of the node's
    own catalogues reads as they say, even where a plugin's catalogue translates it too
    (the crowdfunding's once said "Au plus deux décimales" on the wallet's pages)."""
    from importlib.resources import files

    from babel.messages.pofile import read_po

    def catalogue(folder: Any) -> dict[str, str]:
        found: dict[str, str] = {}
        for part in sorted(folder.iterdir(), key=str):
            if part.name.endswith(".po"):
                with part.open("rb") as po:
                    for m in read_po(po, locale="fr"):
                        if isinstance(m.id, str) and m.id and m.string:
                            found.setdefault(m.id, str(m.string))
        return found

    own = catalogue(files("web") / "locale" / "fr" / "LC_MESSAGES")
    fr = translations("fr")
    assert fr.gettext("Tool library") == "Outilthèque"  # the plugins' catalogues are in
    reworded = {i: fr.gettext(i) for i, said in own.items() if fr.gettext(i) != said}
    assert not reworded, reworded
    for name in ("amap", "crowdfunding"):
        theirs = catalogue(files(f"plugins.{name}") / "locale" / "fr" / "LC_MESSAGES")
        assert all(fr.gettext(i) == own.get(i, said) for i, said in theirs.items())


def test_no_two_of_the_node_catalogues_translate_one_message_otherwise() -> None:
    """The node's catalogues are merged, the first translation of a message kept: two
    features translating one English message differently would reword one of them (the
    counter's cancelled invoice once read « Annulé », the payouts' word for a batch)."""
    from importlib.resources import files

    from babel.messages.pofile import read_po

    said: dict[str, tuple[str, str]] = {}
    differing = []
    folder = files("web") / "locale" / "fr" / "LC_MESSAGES"
    for part in sorted(folder.iterdir(), key=str):
        if not part.name.endswith(".po"):
            continue
        with part.open("rb") as po:
            for m in read_po(po, locale="fr"):
                if not (isinstance(m.id, str) and m.id and m.string):
                    continue
                first = said.setdefault(m.id, (part.name, str(m.string)))
                if first[1] != m.string:
                    differing.append((m.id, first, (part.name, str(m.string))))
    assert not differing, differing


@pytest.mark.parametrize("plugin", ["amap", "crowdfunding"])
def test_the_node_shows_each_civic_plugins_own_french(plugin: str) -> None:
    """The node's catalogues come first (no plugin rewords the node's pages): a msgid a
    shipped plugin shares with them must mean the same there, or its page says the other."""
    from babel.messages.pofile import read_po

    from tests.test_pages import LOCALE

    def french(path: Path) -> dict[str, str]:
        with path.open("rb") as po:
            return {str(m.id): str(m.string) for m in read_po(po) if m.id and m.string}

    node: dict[str, str] = {}
    for part in sorted(LOCALE.glob("*.po")):
        node = french(part) | node  # the first translation stands, as the node reads them
    root = Path(__file__).parent.parent
    own = french(root / f"plugins/{plugin}/locale/fr/LC_MESSAGES/{plugin}.po")
    same_space = str.maketrans({"\xa0": "\u202f"})
    differ = {
        msgid: (text, node[msgid])
        for msgid, text in own.items()
        if msgid in node and text.translate(same_space) != node[msgid].translate(same_space)
    }
    assert not differ, differ
