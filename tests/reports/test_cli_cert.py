"""``pacs user cert USER FILE.p12``: the certificate is kept, the passphrase is not."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select

from app.cli import main
from pacs.archive import Archive
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.index.reports_models import SigningCertificate
from pacs.settings import Settings
from tests.reports.helpers import PASSPHRASE, make_signing_pki


def _run(monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_user_cert(
    monkeypatch: pytest.MonkeyPatch, sqlite_settings: Settings, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("PACS_DATA_DIR", str(sqlite_settings.data_dir))
    archive = Archive.open(sqlite_settings)
    create_account(archive.sessions, "bs.lan", "radiologist-password", Role.RADIOLOGIST)
    archive.close()
    p12 = make_signing_pki(tmp_path / "pki").p12["bs.lan"]
    command = ["user", "cert", "bs.lan", str(p12), "--code", "000123/BYT-CCHN", "--password-stdin"]
    assert _run(monkeypatch, command, "wrong\n") == 2
    assert "passphrase" in capsys.readouterr().err
    assert (
        _run(
            monkeypatch, ["user", "cert", "nobody", str(p12), "--password-stdin"], PASSPHRASE + "\n"
        )
        == 2
    )
    assert _run(monkeypatch, command, PASSPHRASE + "\n") == 0
    assert "Bác sĩ bs.lan" in capsys.readouterr().out
    archive = Archive.open(sqlite_settings)
    try:
        with archive.sessions() as session:
            row = session.scalars(select(SigningCertificate)).one()
            stored = b"".join(
                str(value).encode() if not isinstance(value, bytes) else value
                for value in (
                    row.username,
                    row.kind,
                    row.pkcs12,
                    row.subject,
                    row.serial,
                    row.sha256,
                )
            )
        assert row.professional_code == "000123/BYT-CCHN"
        assert bytes(row.pkcs12 or b"") == p12.read_bytes()
        assert PASSPHRASE.encode() not in stored
        archive.audit.flush()
        assert "user-cert" in [event.action for event in archive.audit.events()]
    finally:
        archive.close()
