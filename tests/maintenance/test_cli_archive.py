"""The CLI acts on the server's archive from any folder, or refuses; it never makes a second."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.cli import main
from pacs.archive import Archive
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, write


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No PACS_* from the caller's shell; the command runs in an unrelated folder."""
    for name in list(os.environ):
        if name.startswith("PACS_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)
    return home


def _site(tmp_path: Path, database_url: str | None = None) -> Path:
    """A server folder with its settings file (data folder relative to it)."""
    site = tmp_path / "srv-pacs"
    site.mkdir()
    toml = site / "pacs.toml"
    lines = ['data_dir = "data"', 'ae_title = "BV_HUYEN"']
    if database_url:
        lines.append(f'database_url = "{database_url}"')
    toml.write_text("\n".join(lines) + "\n")
    return toml


def test_import_from_another_folder_refuses_and_creates_nothing(
    tmp_path: Path, clean_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(ct_slice(), tmp_path / "cd" / "1.dcm")
    assert main(["import", str(tmp_path / "cd")]) == 2
    message = capsys.readouterr().err
    assert f"data folder: {clean_environment / 'data'}" in message
    assert "no settings file" in message
    assert "PACS_CONFIG=" in message and "PACS_DATA_DIR=" in message
    assert not (clean_environment / "data").exists()  # no hidden second archive
    assert main(["ae", "list"]) == 2
    assert main(["user", "list"]) == 2
    assert not (clean_environment / "data").exists()


def test_settings_file_anywhere_reaches_the_servers_data_folder(
    tmp_path: Path,
    clean_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
) -> None:
    is_sqlite = database_url.startswith("sqlite")
    toml = _site(tmp_path, None if is_sqlite else database_url)
    monkeypatch.setenv("PACS_CONFIG", str(toml))
    # The server's first start, in its own folder, creates the archive.
    monkeypatch.chdir(toml.parent)
    assert main(["db", "upgrade"]) == 0
    assert "no archive yet in" in capsys.readouterr().err
    # An administrator imports from their home folder with the server's settings file.
    monkeypatch.chdir(clean_environment)
    write(ct_slice(), tmp_path / "cd" / "1.dcm")
    assert main(["import", str(tmp_path / "cd"), "-q"]) == 0
    assert main(["ae", "add", "CT01", "10.0.0.21", "104"]) == 0
    settings = Settings()
    assert settings.data_dir == toml.parent / "data"  # relative to the file, not to the folder
    archive = Archive.open(settings)
    try:
        assert archive.counts()["instances"] == 1
        assert archive.remote_aes.get("CT01").host == "10.0.0.21"
    finally:
        archive.close()
    assert not (clean_environment / "data").exists()


def test_a_database_without_an_archive_is_refused(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PACS_DATABASE_URL", postgres_schema_url)
    assert main(["jobs", "list"]) == 2
    assert "has no archive tables" in capsys.readouterr().err
    assert main(["db", "upgrade"]) == 0
    assert main(["jobs", "list"]) == 0


def test_config_shows_the_absolute_data_folder(
    clean_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config"]) == 0
    assert f'"data_dir": "{clean_environment / "data"}"' in capsys.readouterr().out
    assert not (clean_environment / "data").exists()


def test_a_missing_settings_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PACS_CONFIG", str(tmp_path / "typo.toml"))
    assert main(["ae", "list"]) == 2
    assert "typo.toml" in capsys.readouterr().err
