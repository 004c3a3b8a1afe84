"""Backup and restore of the index, with the manifest of the blobs it references.

A backup is a folder:

- ``manifest.json``: format, when, the source database's dialect and schema
  revision, row counts, and ``blobs.jsonl`` (one ``{"key", "size", "sha256"}``
  per blob the index references: instances, objects kept as received beside
  corrected copies, blobs of deletions not yet purged);
- the index: on SQLite ``index.sqlite``, written by SQLite's online backup API
  (a consistent copy while ingest goes on: WAL readers never block the writer);
  on PostgreSQL ``tables/<table>.jsonl.gz``, every table read in one
  REPEATABLE READ transaction (one snapshot, no locks that stop ingest);
- ``blobs/<key>`` only with ``--with-blobs`` (copied through the store's own
  interface, for small sites). Otherwise the blobs are backed up by the
  store's own means (rsync or a filesystem snapshot of the data folder,
  ``mc mirror`` or bucket replication for MinIO/S3) *after* the index backup.

Why this is consistent while ingest runs: an index row is committed only after
its blob is durable (blob first, index second), so every blob the snapshot
names exists when the snapshot is taken, and purges wait
``delete_purge_after_hours``. Blobs that arrive after the snapshot are orphans
to the restored index; ``pacs check --repair`` adopts them.

Restore loads the rows into an empty archive (any database: a SQLite backup can
seed PostgreSQL when a site scales out), recomputes the statistics' summary from
the instance rows (the triggers counted them again as they went in), puts the
backed-up blobs back when the backup has them, and leaves the verdict to ``pacs check``.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    LargeBinary,
    MetaData,
    Table,
    create_engine,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.types import Date, DateTime

from pacs.index.migrate import upgrade
from pacs.stats import summary
from storage import BlobStore
from storage.base import check_key

log = logging.getLogger(__name__)

FORMAT = 1
BATCH = 1000
# Tables whose rows name a blob: (table, key column, size column, hash column or None).
BLOB_TABLES = (
    ("instance", "blob_key", "size", "sha256"),
    ("instance_original", "blob_key", "size", "sha256"),
    ("deleted_blob", "blob_key", "size", None),
)


class BackupError(Exception):
    """The backup cannot be taken or restored (the message says why, for the operator)."""


@dataclass
class BackupReport:
    path: Path
    dialect: str
    revision: str
    rows: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    blob_bytes: int = 0
    blobs_copied: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "dialect": self.dialect,
            "revision": self.revision,
            "rows": self.rows,
            "blobs": self.blobs,
            "blob_bytes": self.blob_bytes,
            "blobs_copied": self.blobs_copied,
        }


# -- backup --------------------------------------------------------------------------------


def backup(
    engine: Engine, store: BlobStore, dest: Path, *, with_blobs: bool = False
) -> BackupReport:
    """Write a backup of the index (and optionally the blobs) into the new folder ``dest``."""
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} exists and is not empty: choose a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o700)  # patient data: owner only
    if engine.dialect.name == "sqlite":
        report = _backup_sqlite(engine, dest)
    elif engine.dialect.name == "postgresql":
        report = _backup_snapshot(engine, dest)
    else:
        raise BackupError(f"no backup for a {engine.dialect.name} index")
    if with_blobs:
        report.blobs_copied = _copy_blobs_out(store, dest)
    _write_manifest(dest, report, with_blobs)
    return report


def _backup_sqlite(engine: Engine, dest: Path) -> BackupReport:
    source_path = engine.url.database
    if not source_path or source_path == ":memory:":
        raise BackupError("an in-memory SQLite index cannot be backed up")
    target = dest / "index.sqlite"
    source = sqlite3.connect(source_path, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)  # online backup API: a consistent copy, writers keep going
        finally:
            copy.close()
    finally:
        source.close()
    os.chmod(target, 0o600)
    copy_engine = create_engine(f"sqlite:///{target}")
    try:
        with copy_engine.connect() as connection:
            report = BackupReport(dest, "sqlite", _revision(connection))
            report.rows = _row_counts(connection)
            _write_blob_list(connection, dest, report)
    finally:
        copy_engine.dispose()
    return report


def _backup_snapshot(engine: Engine, dest: Path) -> BackupReport:
    tables_dir = dest / "tables"
    tables_dir.mkdir(mode=0o700)
    snapshot = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with snapshot as connection, connection.begin():  # one snapshot: every table, blob list
        connection.execute(text("SET TRANSACTION READ ONLY"))
        report = BackupReport(dest, "postgresql", _revision(connection))
        for table in _tables(connection):
            report.rows[table.name] = _dump_table(connection, table, tables_dir)
        _write_blob_list(connection, dest, report)
    return report


def _tables(connection: Connection) -> list[Table]:
    metadata = MetaData()
    metadata.reflect(bind=connection)
    return [t for t in metadata.sorted_tables if t.name != "alembic_version"]


def _revision(connection: Connection) -> str:
    return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


def _row_counts(connection: Connection) -> dict[str, int]:
    return {
        t.name: int(connection.execute(select(func.count()).select_from(t)).scalar_one())
        for t in _tables(connection)
    }


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, bytes | memoryview):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    return value


def _dump_table(connection: Connection, table: Table, folder: Path) -> int:
    count = 0
    path = folder / f"{table.name}.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        ordered = select(table).order_by(*table.primary_key.columns)
        result = connection.execution_options(yield_per=BATCH).execute(ordered)
        for row in result.mappings():
            out.write(json.dumps({k: _encode(v) for k, v in row.items()}) + "\n")
            count += 1
    os.chmod(path, 0o600)
    return count


def _write_blob_list(connection: Connection, dest: Path, report: BackupReport) -> None:
    names = {t.name: t for t in _tables(connection)}
    with (dest / "blobs.jsonl").open("w", encoding="utf-8") as out:
        for name, key_col, size_col, hash_col in BLOB_TABLES:
            table = names.get(name)
            if table is None:
                continue
            columns = [table.c[key_col], table.c[size_col]]
            if hash_col:
                columns.append(table.c[hash_col])
            for row in connection.execution_options(yield_per=BATCH).execute(select(*columns)):
                entry = {"key": row[0], "size": int(row[1]), "sha256": row[2] if hash_col else ""}
                out.write(json.dumps(entry) + "\n")
                report.blobs += 1
                report.blob_bytes += int(row[1])


def blob_list(backup_dir: Path) -> Iterator[dict[str, Any]]:
    """The blobs a backup's index references (key, size, sha256 or empty)."""
    with (backup_dir / "blobs.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def _copy_blobs_out(store: BlobStore, dest: Path) -> int:
    copied = 0
    for entry in blob_list(dest):
        key = check_key(entry["key"])
        target = dest / "blobs" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            for chunk in store.iter_chunks(key):
                out.write(chunk)
        copied += 1
    return copied


def _write_manifest(dest: Path, report: BackupReport, with_blobs: bool) -> None:
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "with_blobs": with_blobs,
        **report.as_dict(),
    }
    manifest.pop("path")
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def read_manifest(backup_dir: Path) -> dict[str, Any]:
    path = backup_dir / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{backup_dir} holds no readable backup manifest: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r} is not {FORMAT}")
    return manifest


# -- restore -------------------------------------------------------------------------------


@dataclass
class RestoreReport:
    rows: dict[str, int] = field(default_factory=dict)
    blobs_restored: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "blobs_restored": self.blobs_restored}


def restore(engine: Engine, store: BlobStore, backup_dir: Path) -> RestoreReport:
    """Load a backup into the empty archive of ``engine`` and ``store``.

    Raises :class:`BackupError` when the target index already holds studies or
    the backup was made by a release with another schema.
    """
    manifest = read_manifest(backup_dir)
    upgrade(engine)
    with engine.connect() as connection:
        head = _revision(connection)
        if _has_rows(connection):
            raise BackupError("the target archive is not empty: restore into a new one")
    report = RestoreReport()
    if manifest["dialect"] == "sqlite":
        _restore_from_sqlite(engine, backup_dir / "index.sqlite", report)
    else:
        if manifest["revision"] != head:
            raise BackupError(
                f"the backup's schema is {manifest['revision']}, this release's {head}: "
                "restore with the release that made it, then `pacs db upgrade`"
            )
        _restore_from_tables(engine, backup_dir / "tables", report)
    blobs = backup_dir / "blobs"
    if blobs.is_dir():
        for entry in blob_list(backup_dir):
            key = check_key(entry["key"])
            path = blobs / key
            if path.is_file() and store.stat(key) is None:
                with path.open("rb") as stream:  # a copy: the backup stays independent
                    store.put(key, stream, path.stat().st_size)
                report.blobs_restored += 1
    return report


def _has_rows(connection: Connection) -> bool:
    names = {t.name: t for t in _tables(connection)}
    return any(
        connection.execute(select(func.count()).select_from(names[n])).scalar_one()
        for n in ("patient", "instance", "account")
        if n in names
    )


def _restore_from_sqlite(engine: Engine, path: Path, report: RestoreReport) -> None:
    """Bring a copy of the backed-up SQLite file to this release's schema, then copy its rows."""
    work = path.with_name("restore-work.sqlite")
    shutil.copyfile(path, work)
    source = create_engine(f"sqlite:///{work}")
    try:
        upgrade(source)
        with source.connect() as src, engine.begin() as dst:
            _clear_seeded(dst)
            for table in _tables(dst):
                source_table = Table(table.name, MetaData(), autoload_with=src)
                rows = (dict(r) for r in src.execute(select(source_table)).mappings())
                report.rows[table.name] = _insert_rows(dst, table, rows)
            _reset_sequences(dst)
            summary.rebuild(dst)
    finally:
        source.dispose()
        work.unlink(missing_ok=True)


def _decode(value: Any, column_type: Any) -> Any:
    if isinstance(value, dict):
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$d" in value:
            return date.fromisoformat(value["$d"])
        if "$b64" in value:
            return base64.b64decode(value["$b64"])
    if isinstance(value, str) and isinstance(column_type, DateTime | Date):
        return datetime.fromisoformat(value)
    if isinstance(value, str) and isinstance(column_type, LargeBinary):
        return base64.b64decode(value)
    return value


def _restore_from_tables(engine: Engine, folder: Path, report: RestoreReport) -> None:
    with engine.begin() as dst:
        _clear_seeded(dst)
        for table in _tables(dst):
            path = folder / f"{table.name}.jsonl.gz"
            if not path.is_file():
                continue
            types = {c.name: c.type for c in table.columns}

            def rows(path: Path = path, types: dict[str, Any] = types) -> Iterator[dict[str, Any]]:
                with gzip.open(path, "rt", encoding="utf-8") as lines:
                    for line in lines:
                        raw = json.loads(line)
                        yield {k: _decode(v, types.get(k)) for k, v in raw.items() if k in types}

            report.rows[table.name] = _insert_rows(dst, table, rows())
        _reset_sequences(dst)
        summary.rebuild(dst)


def _clear_seeded(connection: Connection) -> None:
    """Rows that opening an archive seeds (remote AEs from the settings file) make way for
    the backup's own; foreign keys are checked at commit (a merged patient may point to a
    later row)."""
    for table in reversed(_tables(connection)):
        connection.execute(table.delete())
    if connection.dialect.name == "sqlite":
        connection.execute(text("PRAGMA defer_foreign_keys=ON"))
    else:
        try:  # needs a superuser; without it rows go in primary-key order, which suffices
            with connection.begin_nested():
                connection.execute(text("SET LOCAL session_replication_role = replica"))
        except Exception:  # the fallback is the primary-key order above
            log.info("no superuser: foreign keys checked row by row during the restore")


def _insert_rows(connection: Connection, table: Table, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    batch: list[dict[str, Any]] = []
    names = {c.name for c in table.columns}
    for row in rows:
        batch.append({k: v for k, v in row.items() if k in names})
        if len(batch) >= BATCH:
            connection.execute(insert(table), batch)
            count += len(batch)
            batch = []
    if batch:
        connection.execute(insert(table), batch)
        count += len(batch)
    return count


def _reset_sequences(connection: Connection) -> None:
    """PostgreSQL: move each serial column's sequence past the restored keys."""
    if connection.dialect.name != "postgresql":
        return
    for table in _tables(connection):
        for column in table.primary_key.columns:
            sequence = connection.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
            ).scalar()
            if sequence:
                connection.execute(
                    text(
                        f'SELECT setval(:s, COALESCE((SELECT MAX("{column.name}") '
                        f'FROM "{table.name}"), 0) + 1, false)'
                    ),
                    {"s": sequence},
                )


# -- entry points for the CLI (a door: it reaches the index only through these) -------------


def backup_archive(archive: Any, principal: Any, dest: Path, *, with_blobs: bool) -> BackupReport:
    """Back up a running or stopped archive; audited (a backup reads every patient's data)."""
    try:
        report = backup(archive.engine, archive.store, dest, with_blobs=with_blobs)
    except Exception as exc:
        archive.audit.record(principal, "backup", f"failure: {exc}"[:256], detail=str(dest))
        raise
    archive.audit.record(principal, "backup", detail=f"{dest} ({report.blobs} blobs)")
    return report


def restore_into(settings: Any, backup_dir: Path) -> RestoreReport:
    """Restore into the (empty) archive that ``settings`` name, creating its schema."""
    from pacs.index.database import make_engine

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        return restore(engine, settings.open_store(), backup_dir)
    finally:
        engine.dispose()
