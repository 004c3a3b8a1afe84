"""Settings reach the server from PACS_* variables and a TOML file, and never leak secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.cli import main
from pacs.settings import Settings

ENVIRONMENT = {
    "PACS_DATA_DIR": "/srv/pacs",
    "PACS_DATABASE_URL": "postgresql+psycopg://pacs:db-pass-123@db.example:5432/pacs",
    "PACS_STORAGE_URL": "s3://archive/pacs/",
    "PACS_S3_ENDPOINT": "http://minio:9000",
    "PACS_S3_ACCESS_KEY": "access-abc",
    "PACS_S3_SECRET_KEY": "secret-xyz-789",
    "PACS_AE_TITLE": "BV_TINH_PACS",
    "PACS_DICOM_HOST": "10.0.0.5",
    "PACS_DICOM_PORT": "104",
    "PACS_HTTP_HOST": "10.0.0.6",
    "PACS_HTTP_PORT": "8443",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PACS_* from the caller's shell and no ./pacs.toml: each test sets its own."""
    for name in list(os.environ):
        if name.startswith("PACS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write_toml(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("PACS_CONFIG", str(path))
    return path


def test_defaults_run_the_embedded_archive_under_data(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'index.sqlite'}"
    assert settings.storage_url == f"file://{tmp_path / 'data' / 'blobs'}"
    assert (settings.ae_title, settings.dicom_port, settings.http_port) == ("PACS", 11112, 8080)
    assert settings.http_host == "127.0.0.1"


def test_every_documented_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.data_dir == Path("/srv/pacs")
    assert settings.database_url == ENVIRONMENT["PACS_DATABASE_URL"]
    assert settings.storage_url == "s3://archive/pacs/"
    assert settings.s3_endpoint == "http://minio:9000"
    assert settings.s3_access_key is not None
    assert settings.s3_access_key.get_secret_value() == "access-abc"
    assert settings.s3_secret_key is not None
    assert settings.s3_secret_key.get_secret_value() == "secret-xyz-789"
    assert settings.ae_title == "BV_TINH_PACS"
    assert (settings.dicom_host, settings.dicom_port) == ("10.0.0.5", 104)
    assert (settings.http_host, settings.http_port) == ("10.0.0.6", 8443)


def test_toml_file_is_read_and_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(
        tmp_path,
        'ae_title = "FROM_FILE"\ndicom_port = 2104\nhttp_port = 9000\n'
        f'data_dir = "{tmp_path / "archive"}"\n',
        monkeypatch,
    )
    monkeypatch.setenv("PACS_DICOM_PORT", "3104")
    settings = Settings()
    assert settings.ae_title == "FROM_FILE"
    assert settings.http_port == 9000
    assert settings.dicom_port == 3104  # the variable wins over the file
    assert settings.database_url == f"sqlite:///{tmp_path / 'archive' / 'index.sqlite'}"


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PACS_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(FileNotFoundError, match=r"absent\.toml"):
        Settings()


def test_local_pacs_toml_is_found_without_pacs_config(tmp_path: Path) -> None:
    (tmp_path / "pacs.toml").write_text('ae_title = "LOCAL_FILE"\n')
    assert Settings().ae_title == "LOCAL_FILE"


@pytest.mark.parametrize("title", ["", "   ", "SEVENTEEN_CHARS_X", "BAD\\AE"])
def test_invalid_ae_title_is_refused(monkeypatch: pytest.MonkeyPatch, title: str) -> None:
    monkeypatch.setenv("PACS_AE_TITLE", title)
    with pytest.raises(ValidationError, match="AE title"):
        Settings()


def test_remote_aes_from_toml_array_of_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(
        tmp_path,
        """
[[remote_aes]]
ae_title = "CT_PHILIPS"
host = "192.168.10.21"
port = 104
charset_fallback = "ISO_IR 100"

[[remote_aes]]
ae_title = "VIEWER_1"
host = "192.168.10.50"
port = 11113
services = ["find", "move"]
charset_profile = "ascii"
""",
        monkeypatch,
    )
    settings = Settings()
    ct, viewer = settings.remote_aes
    assert (ct.ae_title, ct.host, ct.port) == ("CT_PHILIPS", "192.168.10.21", 104)
    assert ct.services == ["echo", "store", "find", "move", "get"]
    assert (viewer.ae_title, viewer.port, viewer.services) == ("VIEWER_1", 11113, ["find", "move"])
    assert viewer.charset_profile == "ascii"
    assert (ct.charset_fallback, viewer.charset_fallback) == ("ISO_IR 100", None)


def test_pacs_config_prints_settings_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PACS_ADMIN_PASSWORD", "first-admin-pass")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    for secret in ("secret-xyz-789", "db-pass-123", "first-admin-pass", "access-abc"):
        assert secret not in out
    shown = json.loads(out)
    assert shown["s3_secret_key"] == "********"
    assert shown["admin_password"] == "********"
    assert shown["database_url"] == "postgresql+psycopg://pacs:***@db.example:5432/pacs"
    assert shown["ae_title"] == "BV_TINH_PACS"
    assert shown["dicom_port"] == 104


def test_serve_spools_received_datasets_on_the_data_volume(tmp_path: Path) -> None:
    import tempfile

    from app.serve import use_spool

    spool = tmp_path / "data" / "spool"
    spool.mkdir(parents=True)
    (spool / "tmpab12cd.dcm").write_bytes(b"left by a crash")  # pynetdicom's name
    (spool / "pacs-4242-0a1b2c3d-7.dcm").write_bytes(b"left by a crash")  # ours
    (spool / "keep.txt").write_text("not ours")
    before = tempfile.tempdir
    try:
        use_spool(spool)
        assert tempfile.gettempdir() == str(spool)
    finally:
        tempfile.tempdir = before
    assert sorted(p.name for p in spool.iterdir()) == ["keep.txt"]
