"""``pacs check`` and ``pacs reindex`` on real archives (both index databases)."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.cli import main
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.index.models import Instance
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes

STUDY = "1.2.826.0.1.3680043.8.498.88"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, archive: Archive) -> Archive:
    monkeypatch.setenv("PACS_DATA_DIR", str(archive.settings.data_dir))
    monkeypatch.setenv("PACS_DATABASE_URL", archive.settings.database_url)
    for index in range(3):
        archive.ingest(io.BytesIO(to_bytes(ct_slice(STUDY, index=index))), Origin(door="test"))
    return archive


def _check(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, dict[str, Any]]:
    code = main(["check", "--json", *flags])
    return code, json.loads(capsys.readouterr().out)


def _blob_path(archive: Archive, key: str) -> Path:
    return Path(archive.store.root) / key  # type: ignore[attr-defined]


def test_consistent_archive(cli: Archive, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _check(capsys)
    assert code == 0 and report["consistent"] is True
    assert report["blobs"] == 3 and report["index_rows"] == 3


def test_missing_blob_reported_never_deleted(
    cli: Archive, capsys: pytest.CaptureFixture[str]
) -> None:
    key = cli.locate(STUDY)[0].blob_key
    _blob_path(cli, key).unlink()
    code, report = _check(capsys, "--repair")
    assert code == 1 and report["missing_blobs"] == [key]
    assert len(cli.locate(STUDY)) == 3  # the row stays for a human to decide


def test_corrupted_blob_is_a_hash_mismatch(
    cli: Archive, capsys: pytest.CaptureFixture[str]
) -> None:
    key = cli.locate(STUDY)[1].blob_key
    path = _blob_path(cli, key)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    code, report = _check(capsys)
    assert code == 1 and report["hash_mismatches"] == [key]
    _code, quick = _check(capsys, "--quick")  # sizes only: not caught, by design
    assert quick["hash_mismatches"] == []


def test_orphans_adopted_or_removed(cli: Archive, capsys: pytest.CaptureFixture[str]) -> None:
    # A valid object whose index row was never committed (the crash window), under its own key.
    orphan = ct_slice(STUDY, index=7)
    result = cli.ingest(io.BytesIO(to_bytes(orphan)), Origin(door="test"))
    with cli.sessions.begin() as session:
        row = session.scalar(
            select(Instance).where(Instance.sop_instance_uid == result.sop_instance_uid)
        )
        session.delete(row)
    # A valid object under a foreign key, and garbage.
    cli.store.put("stray/copy.dcm", io.BytesIO(to_bytes(ct_slice(STUDY, index=8))))
    cli.store.put("stray/garbage.bin", io.BytesIO(b"not dicom"))
    code, report = _check(capsys)
    assert code == 1
    assert sorted(report["orphan_blobs"]) == sorted(
        [result.blob_key, "stray/copy.dcm", "stray/garbage.bin"]
    )
    code, repaired = _check(capsys, "--repair")
    assert code == 0, repaired
    assert set(repaired["removed"]) == {"stray/copy.dcm", "stray/garbage.bin"}
    assert len(cli.locate(STUDY)) == 5  # original 3 + adopted + rekeyed
    code, after = _check(capsys)
    assert code == 0 and after["orphan_blobs"] == []


def test_stale_temporary_files_removed(cli: Archive, capsys: pytest.CaptureFixture[str]) -> None:
    temp = Path(cli.store.root) / STUDY / ".abc.tmp"  # type: ignore[attr-defined]
    temp.write_bytes(b"half a write")
    old = time.time() - 3600
    os.utime(temp, (old, old))
    code, report = _check(capsys, "--repair")
    assert str(temp) in report["removed"]
    assert code == 0 and not temp.exists()


def test_reindex_into_an_empty_database(
    cli: Archive,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = {i.sop_instance_uid: i.sha256 for i in cli.locate(STUDY)}
    fresh = f"sqlite:///{tmp_path / 'rebuilt.sqlite'}"
    monkeypatch.setenv("PACS_DATABASE_URL", fresh)
    assert main(["reindex", "--json"]) == 2  # no index there: refused, nothing created
    assert main(["db", "upgrade"]) == 0  # the recovery creates the empty index on purpose
    capsys.readouterr()
    assert main(["reindex", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"indexed": 3}
    rebuilt = Archive.open(Settings(data_dir=cli.settings.data_dir, database_url=fresh))
    try:
        assert rebuilt.counts() == cli.counts() == {"studies": 1, "series": 3, "instances": 3}
        assert {i.sop_instance_uid: i.sha256 for i in rebuilt.locate(STUDY)} == before
        original_json = cli.metadata(STUDY)
        assert sorted(rebuilt.metadata(STUDY)) == sorted(original_json)
    finally:
        rebuilt.close()


def test_reindex_drop_requires_confirmation(
    cli: Archive, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {i.sop_instance_uid: i.sha256 for i in cli.locate(STUDY)}
    counts = cli.counts()
    assert main(["reindex", "--drop"]) == 2
    assert main(["reindex", "--drop", "--yes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"indexed": 3}
    assert {i.sop_instance_uid: i.sha256 for i in cli.locate(STUDY)} == before
    assert cli.counts() == counts


def test_fresh_temporary_file_is_a_write_in_progress(
    cli: Archive, capsys: pytest.CaptureFixture[str]
) -> None:
    temp = Path(cli.store.root) / STUDY / ".inflight.tmp"  # type: ignore[attr-defined]
    temp.write_bytes(b"being written")
    code, report = _check(capsys, "--repair")
    assert code == 0 and report["temporary_files"] == []
    assert report["writes_in_progress"] == [str(temp)] and temp.exists()


def test_copy_of_an_instance_whose_blob_is_gone_is_kept(
    cli: Archive, capsys: pytest.CaptureFixture[str]
) -> None:
    instance = cli.locate(STUDY)[0]
    with cli.open_blob(instance.blob_key) as blob:
        content = blob.read()
    cli.store.put("backup/restored.dcm", io.BytesIO(content))
    _blob_path(cli, instance.blob_key).unlink()
    code, report = _check(capsys, "--repair")
    assert code == 1 and report["missing_blobs"] == [instance.blob_key]
    assert report["conflicts"] == ["backup/restored.dcm"] and report["removed"] == []
    assert cli.store.stat("backup/restored.dcm") is not None  # the only copy left


def test_reindex_moves_a_stray_copy_to_its_proper_key(
    cli: Archive, capsys: pytest.CaptureFixture[str]
) -> None:
    slice_ = ct_slice(STUDY, index=9)
    cli.store.put("manual/IM9", io.BytesIO(to_bytes(slice_)))
    assert main(["reindex", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out) == {"already-indexed": 3, "rekeyed": 1}
    assert cli.store.stat("manual/IM9") is None
    located = cli.locate(sop_instance_uid=slice_.SOPInstanceUID)
    assert len(located) == 1 and cli.store.stat(located[0].blob_key) is not None
    code, report = _check(capsys)
    assert code == 0 and report["blobs"] == 4
