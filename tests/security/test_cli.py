"""``pacs user`` and ``pacs audit`` through the real command-line entry point."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from app.cli import main
from pacs.archive import Archive
from pacs.auth import accounts
from pacs.settings import Settings


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Settings:
    monkeypatch.setenv("PACS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PACS_DATABASE_URL", settings.database_url)
    Archive.open(settings).close()  # the archive `pacs serve` created: the CLI needs one
    return settings


def _run(monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_user_lifecycle(
    monkeypatch: pytest.MonkeyPatch, cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    add = ["user", "add", "bs.hoa", "--role", "radiologist", "--password-stdin"]
    assert _run(monkeypatch, add, "mat-khau-dai\n") == 0
    assert _run(monkeypatch, add, "mat-khau-dai\n") == 2  # exists
    assert _run(monkeypatch, ["user", "token", "bs.hoa", "--name", "script"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert _run(monkeypatch, ["user", "disable", "bs.hoa"]) == 0
    archive = Archive.open(cli_env)
    try:
        assert accounts.check_password(archive.sessions, "bs.hoa", "mat-khau-dai") is None
        assert accounts.check_token(archive.sessions, token) is None  # disabled owner
        accounts.set_disabled(archive.sessions, "bs.hoa", False)
        assert accounts.check_token(archive.sessions, token) is not None
        actions = [event.action for event in archive.audit.events()]
        assert actions == ["user-add", "user-token", "user-disable"]
    finally:
        archive.close()
    assert _run(monkeypatch, ["user", "list"]) == 0
    assert "bs.hoa\tradiologist" in capsys.readouterr().out


def test_audit_verify_detects_tampering(
    monkeypatch: pytest.MonkeyPatch, cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(
        monkeypatch,
        ["user", "add", "u1", "--role", "clinician", "--password-stdin"],
        "mat-khau-dai\n",
    )
    _run(monkeypatch, ["user", "disable", "u1"])
    assert _run(monkeypatch, ["audit", "verify"]) == 0
    archive = Archive.open(cli_env)
    with archive.engine.begin() as connection:
        from sqlalchemy import text

        connection.execute(text("UPDATE audit_event SET actor = 'x' WHERE action = 'user-add'"))
    archive.close()
    assert _run(monkeypatch, ["audit", "verify"]) == 1
    assert "BROKEN" in capsys.readouterr().out


def test_first_start_prints_admin_password_once(tmp_path: Path) -> None:
    from app.serve import _bootstrap_admin

    archive = Archive.open(Settings(data_dir=tmp_path))
    try:
        out = io.StringIO()
        import contextlib

        with contextlib.redirect_stdout(out):
            _bootstrap_admin(archive)
            _bootstrap_admin(archive)
        printed = out.getvalue()
        assert printed.count("created user 'admin'") == 1
        password = printed.split("password")[1].split()[0]
        assert accounts.check_password(archive.sessions, "admin", password) is not None
    finally:
        archive.close()


def test_audit_list_filters_newest_first(
    monkeypatch: pytest.MonkeyPatch, cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("u1", "u2", "u3"):
        add = ["user", "add", name, "--role", "clinician", "--password-stdin"]
        assert _run(monkeypatch, add, "mat-khau-dai\n") == 0
    assert _run(monkeypatch, ["user", "disable", "u2"]) == 0
    capsys.readouterr()
    assert _run(monkeypatch, ["audit", "list", "--action", "user-add"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["detail"] for r in rows] == ["u3", "u2", "u1"]
    assert rows[0]["pk"] > rows[1]["pk"] > rows[2]["pk"]
    assert _run(monkeypatch, ["audit", "list", "--action", "user", "--limit", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["action"], r["detail"]) for r in rows] == [
        ("user-disable", "u2"),
        ("user-add", "u3"),
    ]
    assert _run(monkeypatch, ["audit", "list", "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out == ""
    assert _run(monkeypatch, ["audit", "list", "--until", "yesterday"]) == 2
