"""The node as an operator meets it: `sou` commands, key files, settings, the web app."""

from __future__ import annotations

import inspect
import json
import logging
import random
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ledger.canonical import b64
from ledger.signing import SigningKey
from node.cli import app as cli
from node.cli import build_cli
from runtime.keystore import KeyFileError, key_path, load_key, save_key
from runtime.settings import Settings

runner = CliRunner()


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    return {"SOU_DATA_DIR": str(tmp_path / "data"), "SOU_DATABASE_URL": url}


def test_help_documents_every_command() -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("init", "serve", "audit", "migrate", "seal", "operator"):
        assert command in result.output
        sub = runner.invoke(cli, [command, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.output


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_every_help_text_is_shown_whole_and_flows_to_the_width(tmp_path: Path) -> None:
    """Each paragraph of each command's help (the plugins' too) comes out on one line of a
    wide terminal, every word of it: none is cut where the docstring's lines end, and no
    `<placeholder>` is taken for markup and dropped."""
    app = build_cli(Settings(data_dir=tmp_path))
    root = typer.main.get_command(app)
    paths = list(_commands(root))
    assert ("notes", "print") in paths and ("tools-loans",) in paths
    for path in paths:
        command = root
        for name in path:
            command = command.commands[name]
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "3000"}, color=False)
        assert shown.exit_code == 0, (path, shown.output)
        lines = [" ".join(line.replace("`", "").split()) for line in shown.output.splitlines()]
        texts = [command.help or ""] + [
            getattr(param, "help", None) or "" for param in command.params
        ]
        for text in texts:
            for paragraph in inspect.cleandoc(text).split("\n\n"):
                flowing = " ".join(paragraph.replace("`", "").split())
                assert any(flowing in line for line in lines), (path, flowing)


def test_init_demo_then_audit(
    tmp_path: Path, empty_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env = _env(tmp_path, empty_db_url)
    made = runner.invoke(cli, ["init", "--demo"], env=env)
    assert made.exit_code == 0, made.output
    assert "Initialised" in made.output
    keys = tmp_path / "data" / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    secrets = list(keys.rglob("*.key"))
    assert len(secrets) >= 12  # node, treasurer, office, ten members
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        seed = b64(load_key(path).seed)
        assert seed not in made.output and seed not in caplog.text  # never printed or logged
    again = runner.invoke(cli, ["init"], env=env)
    assert again.exit_code == 0 and "already initialised" in again.output
    audited = runner.invoke(cli, ["audit", "--json"], env=env)
    assert audited.exit_code == 0, audited.output
    report = json.loads(audited.output)
    assert report["ok"] and report["transfers"] >= 20 and report["unsealed"] == 0
    assert report["leaves"] == report["transfers"] + report["key_events"]


def test_commands_on_a_node_not_initialised_exit_2(tmp_path: Path) -> None:
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'none.db'}")
    for command in (["audit"], ["seal"]):
        result = runner.invoke(cli, command, env=env)
        assert result.exit_code == 2
        assert "sou init" in result.output
        if command == ["audit"]:  # it reads only: it makes no database file
            assert not (tmp_path / "none.db").exists()
    nowhere = tmp_path / "nowhere"
    result = runner.invoke(cli, ["audit"], env=_env(nowhere, f"sqlite:///{nowhere / 'sou.db'}"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"no database at {nowhere / 'sou.db'}" in " ".join(result.output.split())
    assert not nowhere.exists()


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = key_path(tmp_path / "keys", "role:office:gare")
    assert path.name == "role-office-gare.key"
    key = SigningKey.generate()
    save_key(path, key, "role:office:gare")
    assert load_key(path).public_key == key.public_key
    assert str(key.seed) not in repr(key) and b64(key.seed) not in repr(key)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(path)
    with pytest.raises(FileExistsError):
        save_key(path, key, "role:office:gare")  # never overwrites a key


def test_settings_from_environment_and_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "node.toml"
    config.write_text('currency = "EUSKO"\nport = 9000\norigin = "sou.example.org/pays"\n')
    monkeypatch.setenv("SOU_CONFIG", str(config))
    monkeypatch.setenv("SOU_PORT", "8123")
    monkeypatch.setenv("SOU_DATA_DIR", str(tmp_path / "d"))
    settings = Settings()
    assert (settings.currency, settings.port, settings.origin) == (
        "EUSKO",
        8123,
        "sou.example.org/pays",
    )
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'd' / 'sou.db'}"


def test_app_health_openapi_and_home(
    tmp_path: Path, empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _env(tmp_path, empty_db_url).items():
        monkeypatch.setenv(name, value)
    assert runner.invoke(cli, ["init", "--demo"]).exit_code == 0
    from node.app import create_app

    with TestClient(create_app()) as client:
        health = client.get("/healthz")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok" and body["currency"] == "SOU" and body["log_size"] > 0
        assert client.get("/openapi.json").json()["info"]["title"] == "Sou"
        home = client.get("/")
        assert "Val-de-Sou" in home.text and 'lang="fr"' in home.text
        assert "cdn" not in home.text.lower()


def test_operator_command_creates_a_login(tmp_path: Path, empty_db_url: str) -> None:
    env = _env(tmp_path, empty_db_url) | {"SOU_NEW_PASSWORD": "a long enough secret"}
    assert runner.invoke(cli, ["init"], env=env).exit_code == 0
    made = runner.invoke(
        cli,
        ["operator", "office", "Odile@Poste.fr", "--name", "Odile", "--office", "poste"],
        env=env,
    )
    assert made.exit_code == 0, made.output
    assert "odile@poste.fr" in made.output and "a long enough secret" not in made.output
    twice = runner.invoke(cli, ["operator", "admin", "odile@poste.fr", "--name", "Odile"], env=env)
    assert twice.exit_code == 2 and "already uses this email" in twice.output
    weak = runner.invoke(
        cli, ["operator", "admin", "a@b.fr", "--name", "A"], env=env | {"SOU_NEW_PASSWORD": "short"}
    )
    assert weak.exit_code == 2 and "10 characters" in weak.output
    from members.service import log_in
    from runtime.node import open_node

    node = open_node(Settings(data_dir=tmp_path / "data", database_url=empty_db_url))
    try:
        member = log_in(node, "odile@poste.fr", "a long enough secret", "127.0.0.1").member
        assert member.role == "office" and member.office == "poste"
        assert node.ledger.balance("office:poste:cash") == 0  # the office's till exists
    finally:
        node.close()


def test_racing_sealer_rounds_keep_the_largest_checkpoint(tmp_path: Path) -> None:
    """The poster and the sealer thread both remember checkpoints: whatever the order they
    race in, the file ends with the largest, whole, and no draft is left behind."""
    import threading

    from ledger.sealer import Sealed
    from runtime import witness

    sizes = list(range(1, 201))
    random.Random(7).shuffle(sizes)

    def remember(chunk: list[int]) -> None:
        for size in chunk:
            note = f"test.sou.localhost/village\n{size}\nroot{size}\n"
            witness.remember(tmp_path, Sealed(1, size, None, note))

    threads = [threading.Thread(target=remember, args=(sizes[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert witness.witnessed(tmp_path) == ["test.sou.localhost/village\n200\nroot200\n"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.txt"]
