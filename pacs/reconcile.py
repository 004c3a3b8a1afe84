"""``pacs check``: compare the index with the blob store, and repair what is safe to repair.

Because ingest writes the blob before the index row, a crash can leave an
orphan blob but never an index row without its blob. Orphans that are valid
DICOM are adopted (indexed, never rewritten); orphans that are not DICOM, and
copies whose content is already indexed under another key, are removed;
leftover temporary files of interrupted writes are removed once stale. Index
rows whose blob is missing or whose content no longer matches its SHA-256 are
reported, never deleted: deciding to forget an image is a human's call.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pacs.archive import Archive
from pacs.archive.ingest import Adoption, IngestError, InvalidObject, Origin
from pacs.blobfile import seekable_blob
from pacs.index.models import Instance
from storage import BlobNotFound, StorageError

log = logging.getLogger(__name__)
STALE_TEMPORARY_SECONDS = 60.0


@dataclass
class CheckReport:
    blobs: int = 0
    index_rows: int = 0
    orphan_blobs: list[str] = field(default_factory=list)
    missing_blobs: list[str] = field(default_factory=list)
    hash_mismatches: list[str] = field(default_factory=list)
    temporary_files: list[str] = field(default_factory=list)  # stale: older than a minute
    writes_in_progress: list[str] = field(default_factory=list)  # fresh temporaries, left alone
    adopted: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Blobs of deleted instances awaiting their purge: not orphans, never adopted back.
    awaiting_purge: list[str] = field(default_factory=list)
    # Objects as received, kept while a corrected copy is served: not orphans either.
    kept_originals: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        unresolved = set(self.orphan_blobs) - set(self.adopted) - set(self.removed)
        stale_temps = set(self.temporary_files) - set(self.removed)
        return not (
            unresolved or self.missing_blobs or self.hash_mismatches or stale_temps or self.errors
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "consistent": self.consistent}


def _index_rows(archive: Archive) -> Iterator[tuple[str, str, int]]:
    with archive.sessions() as session:
        query = select(Instance.blob_key, Instance.sha256, Instance.size).execution_options(
            yield_per=5000
        )
        for row in session.execute(query):
            yield row.blob_key, row.sha256, row.size


def _sha256_of(archive: Archive, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in archive.store.iter_chunks(key):
        digest.update(chunk)
    return digest.hexdigest()


def check(archive: Archive, *, repair: bool = False, quick: bool = False) -> CheckReport:
    """Compare every index row with its blob and every blob with the index.

    ``quick`` compares sizes only; otherwise each blob is hashed again.
    """
    report = CheckReport()
    stored = {blob.key: blob.size for blob in archive.store.list()}
    report.blobs = len(stored)
    indexed: set[str] = set()
    for key, sha256, size in _index_rows(archive):
        report.index_rows += 1
        indexed.add(key)
        _check_row(archive, key, sha256, size, stored, quick, report)
    deleted = archive.lifecycle.awaiting_purge()
    originals = archive.lifecycle.kept_originals()
    report.awaiting_purge = sorted(set(stored) & deleted - indexed)
    report.kept_originals = sorted(set(stored) & originals - indexed)
    report.orphan_blobs = sorted(set(stored) - indexed - deleted - originals)
    temporaries = _temporaries(archive, report)
    report.temporary_files = sorted(str(path) for path in temporaries)
    if repair:
        for key in report.orphan_blobs:
            _repair_orphan(archive, key, report)
        for path in temporaries:
            _remove_temporary(path, report)
    return report


def _check_row(
    archive: Archive,
    key: str,
    sha256: str,
    size: int,
    stored: dict[str, int],
    quick: bool,
    report: CheckReport,
) -> None:
    try:
        if key not in stored:
            # The store was listed before this row was read: a blob stored meanwhile is there.
            info = archive.store.stat(key)
            if info is None:
                report.missing_blobs.append(key)
                return
            stored[key] = info.size
        if stored[key] != size or (not quick and _sha256_of(archive, key) != sha256):
            report.hash_mismatches.append(key)
    except BlobNotFound:
        report.missing_blobs.append(key)
    except StorageError as exc:
        report.errors.append(f"{key}: {exc}")


def _temporaries(archive: Archive, report: CheckReport) -> list[Path]:
    """Stale temporary files of interrupted writes; fresh ones may be writes in progress."""
    list_temporary = getattr(archive.store, "list_temporary", None)
    if list_temporary is None:
        return []  # object stores write atomically: nothing half-written is visible
    stale_before = time.time() - STALE_TEMPORARY_SECONDS
    stale: list[Path] = []
    for path in list_temporary():
        try:
            fresh = path.stat().st_mtime > stale_before
        except FileNotFoundError:
            continue  # finished (renamed) meanwhile
        if fresh:
            report.writes_in_progress.append(str(path))
        else:
            stale.append(path)
    return stale


def _remove_temporary(path: Path, report: CheckReport) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        report.errors.append(f"{path}: {exc.strerror}")
        return
    report.removed.append(str(path))


def _repair_orphan(archive: Archive, key: str, report: CheckReport) -> None:
    origin = Origin(door="check")
    try:
        with seekable_blob(archive.store, key) as fp:
            outcome = archive.ingestor.adopt(key, fp, origin)
    except InvalidObject as exc:
        log.warning("removing orphan %s: not a storable DICOM object (%s)", key, exc)
        _remove(archive, key, report)
        return
    except BlobNotFound:
        return  # gone meanwhile
    except (IngestError, StorageError) as exc:
        report.errors.append(f"{key}: {exc}")
        return
    if outcome in (Adoption.INDEXED, Adoption.ALREADY_INDEXED):
        report.adopted.append(key)
    elif outcome is Adoption.REKEYED:  # now indexed under its proper key: drop the stray
        report.adopted.append(key)
        _remove(archive, key, report)
    elif outcome is Adoption.REDUNDANT_COPY:
        _remove(archive, key, report)
    else:
        report.conflicts.append(key)


def _remove(archive: Archive, key: str, report: CheckReport) -> None:
    try:
        archive.store.delete(key)
        report.removed.append(key)
    except StorageError as exc:
        report.errors.append(f"{key}: {exc}")
