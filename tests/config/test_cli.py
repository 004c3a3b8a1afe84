"""``pacs ae``: the same peers as the admin API, from the shell, with reasons for bad input."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from pacs.archive import Archive
from tests.conftest import free_port


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, archive: Archive) -> Archive:
    monkeypatch.setenv("PACS_DATA_DIR", str(archive.settings.data_dir))
    monkeypatch.setenv("PACS_DATABASE_URL", archive.settings.database_url)
    return archive


def test_add_list_echo_remove(cli: Archive, capsys: pytest.CaptureFixture[str]) -> None:
    closed = free_port()
    assert main(["ae", "add", "WS01", "127.0.0.1", str(closed), "--services", "find", "move"]) == 0
    assert main(["ae", "allow", "US01"]) == 0
    capsys.readouterr()
    assert main(["ae", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(p["ae_title"], p["services"]) for p in listed["remote_aes"]] == [
        ("WS01", ["find", "move"])
    ]
    assert listed["allowed_calling_aes"] == ["US01"]
    assert cli.remote_aes.get("WS01").port == closed  # the facade of a running server sees it
    assert main(["ae", "echo", "WS01"]) == 1  # nothing listens there
    assert f"FAILED: cannot connect to 127.0.0.1:{closed}" in capsys.readouterr().out
    assert main(["ae", "remove", "WS01"]) == 0
    assert main(["ae", "remove", "WS01"]) == 2
    assert "no remote AE WS01" in capsys.readouterr().err
    actions = [e.action for e in cli.audit.events()]
    assert {"ae-add", "calling-ae-add", "ae-echo", "ae-remove"} <= set(actions)


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["ae", "add", "WS01", "127.0.0.1", "99999"], "port: a number from 1 to 65535"),
        (["ae", "add", "A_TITLE_TOO_LONG_X", "127.0.0.1", "104"], "1 to 16 characters"),
        (["ae", "add", "WS01", "bad/host", "104"], "host"),
        (["ae", "add", "WS01", "127.0.0.1", "104", "--services", "steal"], "unknown steal"),
    ],
)
def test_bad_input_says_why(
    cli: Archive, capsys: pytest.CaptureFixture[str], argv: list[str], reason: str
) -> None:
    assert main(argv) == 2
    assert reason in capsys.readouterr().err
    assert cli.remote_aes.all() == []
