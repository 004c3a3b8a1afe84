"""Remote AEs in the database: validation, changes seen by every node within seconds, TOML seed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pacs.archive import Archive
from pacs.config import DuplicateAE, InvalidConfig, UnknownAE, remote_ae
from pacs.config import RemoteAE as Peer
from pacs.settings import RemoteAE, Settings


def _peer(title: str = "CT01", host: str = "192.168.1.20", port: int = 104, **kw: Any) -> Peer:
    return remote_ae(ae_title=title, host=host, port=port, **kw)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("title", "", "1 to 16"),
        ("title", "A" * 17, "1 to 16"),
        ("title", "BAD\\AE", "backslash"),
        ("host", "not a host!", "host"),
        ("host", "", "host"),
        ("port", 0, "1 to 65535"),
        ("port", 70000, "1 to 65535"),
        ("services", ["find", "steal"], "unknown steal"),
    ],
)
def test_invalid_values_are_refused_with_the_rule(field: str, value: object, message: str) -> None:
    fields: dict[str, object] = {"title": "CT01", "host": "10.0.0.1", "port": 104}
    fields[field] = value
    services = fields.pop("services", ["find"])
    with pytest.raises(InvalidConfig, match=message):
        remote_ae(
            ae_title=fields["title"],
            host=fields["host"],
            port=fields["port"],
            services=services,  # type: ignore[arg-type]
        )


def test_add_change_remove(archive: Archive) -> None:
    peers = archive.remote_aes
    peers.add(_peer(services=["store", "find"], description="CT phòng 2"))
    assert peers.get("CT01").services == ("find", "store")
    assert peers.get("CT01").description == "CT phòng 2"
    with pytest.raises(DuplicateAE):
        peers.add(_peer())
    peers.replace("CT01", _peer("CT02", port=11112, charset_fallback="ISO_IR 100"))
    assert peers.find("CT01") is None
    assert peers.destination("CT02") == ("192.168.1.20", 11112)
    assert peers.charset_fallback_for("CT02") == "ISO_IR 100"
    assert peers.charset_fallback_for("OTHER") == archive.settings.default_charset
    peers.replace("CT02", _peer("CT02", enabled=False))
    assert peers.destination("CT02") is None  # a disabled peer is no C-MOVE destination
    peers.remove("CT02")
    assert peers.all() == []
    with pytest.raises(UnknownAE):
        peers.remove("CT02")


def test_a_change_on_one_node_reaches_another_within_seconds(
    settings: Settings, archive: Archive
) -> None:
    """Two archives on one database are two nodes; the second was not restarted."""
    other = Archive.open(settings)
    try:
        assert other.remote_aes.find("WS01") is None  # its cache is loaded now
        archive.remote_aes.add(_peer("WS01", services=["find"]))
        started = time.monotonic()
        while other.remote_aes.find("WS01") is None:
            assert time.monotonic() - started < other.remote_aes.cache.ttl + 3, "never seen"
            time.sleep(0.05)
        archive.remote_aes.remove("WS01")
        while other.remote_aes.find("WS01") is not None:
            assert time.monotonic() - started < 2 * other.remote_aes.cache.ttl + 6
            time.sleep(0.05)
    finally:
        other.close()


def test_settings_file_seeds_missing_titles_and_the_database_wins(
    tmp_path: Path, database_url: str
) -> None:
    seed = [
        RemoteAE(ae_title="CT01", host="10.0.0.21", port=104, charset_fallback="ISO_IR 100"),
        RemoteAE(ae_title="WS01", host="10.0.0.50", port=11113, services=["find", "move"]),
    ]
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        remote_aes=seed,
        allowed_calling_aes=["US01"],
    )
    archive = Archive.open(settings)
    try:
        assert [p.ae_title for p in archive.remote_aes.all()] == ["CT01", "WS01"]
        assert archive.remote_aes.calling_aes() == ["US01"]
        assert archive.remote_aes.get("WS01").services == ("find", "move")
        # An administrator changes CT01 and removes WS01 at run time...
        archive.remote_aes.replace("CT01", _peer("CT01", host="10.0.0.99"))
        archive.remote_aes.remove("WS01")
    finally:
        archive.close()
    # ...a restart keeps the change to CT01 and adds back what the file has and the table lacks.
    archive = Archive.open(settings)
    try:
        assert archive.remote_aes.get("CT01").host == "10.0.0.99"
        assert archive.remote_aes.get("WS01").port == 11113
        assert archive.remote_aes.seed_from_settings() == []  # idempotent
    finally:
        archive.close()


def test_invalid_seed_stops_the_start_with_the_reason(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        remote_aes=[RemoteAE(ae_title="CT01", host="10.0.0.21", port=0)],
    )
    with pytest.raises(InvalidConfig, match="port"):
        Archive.open(settings)


def test_toml_file_seeds_the_table(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "pacs.toml"
    toml.write_text(
        f"""
database_url = "{database_url}"
allowed_calling_aes = ["US_PORTABLE"]

[[remote_aes]]
ae_title = "CT_SCANNER"
host = "192.168.10.21"
port = 104
services = ["store"]
charset_fallback = "ISO_IR 100"
description = "CT tầng 1"

[[remote_aes]]
ae_title = "WS_RADIO"
host = "192.168.10.50"
port = 11113
services = ["find", "move"]
charset_profile = "ascii"
tls_required = true
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("PACS_CONFIG", str(toml))
    monkeypatch.setenv("PACS_DATA_DIR", str(tmp_path / "data"))
    archive = Archive.open(Settings())
    try:
        ct, ws = archive.remote_aes.all()
        assert (ct.ae_title, ct.host, ct.services, ct.description) == (
            "CT_SCANNER",
            "192.168.10.21",
            ("store",),
            "CT tầng 1",
        )
        assert archive.remote_aes.charset_fallback_for("CT_SCANNER") == "ISO_IR 100"
        assert (ws.charset_profile, ws.tls_required) == ("ascii", True)
        assert archive.remote_aes.calling_aes() == ["US_PORTABLE"]
    finally:
        archive.close()
