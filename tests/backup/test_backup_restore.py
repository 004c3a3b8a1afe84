"""`pacs backup` taken while ingest runs restores to an archive that `pacs check` finds consistent.

A thread keeps storing instances through the archive while the real command
line (`app.cli.main`) takes the backup; every instance acknowledged before the
backup started must be in the restored archive, and `pacs check` (hashing every
blob) must find index and blobs in agreement. On SQLite and PostgreSQL, with the
blobs copied by the backup, and (SQLite) with the blob folder copied by the
store's own means afterwards, where the newer blobs are orphans that
`pacs check --repair` adopts.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.cli import main
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes


class Ingesting:
    """Stores instances in a loop until stopped; remembers what was acknowledged and when."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.acknowledged: list[str] = []
        self.stop = threading.Event()
        self.started = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        study, series = generate_uid(), generate_uid()
        n = 0
        try:
            while not self.stop.is_set():
                ds = ct_slice(study, series, index=n, size=16, seed=n)
                self.archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
                self.acknowledged.append(str(ds.SOPInstanceUID))
                n += 1
                if n >= 5:
                    self.started.set()
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
            self.started.set()

    def __enter__(self) -> Ingesting:
        self.thread.start()
        assert self.started.wait(60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.errors, self.errors


def _cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, *args: str) -> int:
    monkeypatch.setenv("PACS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PACS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PACS_STORAGE_URL", settings.storage_url)
    monkeypatch.delenv("PACS_CONFIG", raising=False)
    return main(list(args))


@pytest.fixture
def target(tmp_path: Path, database_url: str) -> Iterator[Settings]:
    """An empty archive's settings on the same kind of database as the source."""
    data = tmp_path / "restored"
    if database_url.startswith("sqlite"):
        yield Settings(data_dir=data, database_url=f"sqlite:///{data / 'index.sqlite'}")
        return
    schema = f"r_{uuid.uuid4().hex[:12]}"
    admin = create_engine(database_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(database_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield Settings(data_dir=data, database_url=url.render_as_string(hide_password=False))
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _sop_uids(settings: Settings) -> set[str]:
    archive = Archive.open(settings)
    try:
        with archive.engine.connect() as connection:
            return set(connection.execute(text("SELECT sop_instance_uid FROM instance")).scalars())
    finally:
        archive.close()


def test_backup_during_ingest_restores_consistent(
    archive: Archive,
    settings: Settings,
    target: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = tmp_path / "backup"
    with Ingesting(archive) as ingest:
        before = list(ingest.acknowledged)
        assert _cli(monkeypatch, settings, "backup", str(dest), "--with-blobs", "--json") == 0
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["dialect"] == settings.database_url.split(":")[0].split("+")[0]
    assert manifest["blobs"] == manifest["blobs_copied"] >= len(before)
    capsys.readouterr()

    assert _cli(monkeypatch, target, "restore", str(dest), "--json") == 0
    restored = json.loads(capsys.readouterr().out)
    assert restored["rows"]["instance"] == manifest["rows"]["instance"]
    assert restored["blobs_restored"] == manifest["blobs"]
    uids = _sop_uids(target)
    assert set(before) <= uids  # everything acknowledged before the backup is there
    assert uids <= set(ingest.acknowledged)
    assert _cli(monkeypatch, target, "check", "--json") == 0  # hashes every blob
    report = json.loads(capsys.readouterr().out)
    assert report["consistent"] and report["index_rows"] == len(uids) == report["blobs"]
    # A restored archive takes new objects (sequences moved past the restored keys).
    again = Archive.open(target)
    try:
        ds = ct_slice(size=8)
        again.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    finally:
        again.close()
    # Restoring twice is refused: the target is no longer empty.
    assert _cli(monkeypatch, target, "restore", str(dest)) == 2


def test_blobs_by_the_stores_own_means_orphans_adopted(
    sqlite_archive: Archive,
    sqlite_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = tmp_path / "backup"
    target = Settings(data_dir=tmp_path / "restored")
    with Ingesting(sqlite_archive) as ingest:
        assert _cli(monkeypatch, sqlite_settings, "backup", str(dest)) == 0
        after_backup = len(ingest.acknowledged)
        while len(ingest.acknowledged) < after_backup + 3 and ingest.thread.is_alive():
            ingest.stop.wait(0.05)  # a few objects arrive after the index snapshot
    assert not (dest / "blobs").exists()
    # The blob folder copied afterwards (rsync, a snapshot): it has newer blobs too.
    blob_dir = sqlite_settings.data_dir / "blobs"
    shutil.copytree(blob_dir, target.data_dir / "blobs", ignore=shutil.ignore_patterns("*.tmp*"))
    capsys.readouterr()
    assert _cli(monkeypatch, target, "restore", str(dest)) == 0
    restored = _sop_uids(target)
    capsys.readouterr()
    assert _cli(monkeypatch, target, "check", "--json") in (0, 1)
    first = json.loads(capsys.readouterr().out)
    assert not first["missing_blobs"] and not first["hash_mismatches"]
    assert len(first["orphan_blobs"]) >= 3  # arrived after the index snapshot
    assert _cli(monkeypatch, target, "check", "--repair", "--json") in (0, 1)
    capsys.readouterr()
    assert _cli(monkeypatch, target, "check", "--json") == 0
    assert json.loads(capsys.readouterr().out)["consistent"]
    adopted = _sop_uids(target)
    assert restored <= adopted and len(adopted - restored) == len(first["orphan_blobs"])


def test_a_sqlite_backup_seeds_postgresql(
    sqlite_archive: Archive,
    sqlite_settings: Settings,
    postgres_schema_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scaling out from the embedded archive: its backup restores into PostgreSQL."""
    stored = []
    for n in range(4):
        ds = ct_slice(size=8, seed=n, patient_name="Đặng^Thị Thu")
        sqlite_archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
        stored.append(str(ds.SOPInstanceUID))
    dest = tmp_path / "backup"
    assert _cli(monkeypatch, sqlite_settings, "backup", str(dest), "--with-blobs") == 0
    target = Settings(data_dir=tmp_path / "pg", database_url=postgres_schema_url)
    assert _cli(monkeypatch, target, "restore", str(dest)) == 0
    assert _sop_uids(target) == set(stored)
    assert _cli(monkeypatch, target, "check") == 0
    found = Archive.open(target)
    try:
        with found.engine.connect() as connection:
            names = set(connection.execute(text("SELECT name FROM patient")).scalars())
        assert names == {"Đặng^Thị Thu"}  # UTF-8 text survives the move
    finally:
        found.close()
