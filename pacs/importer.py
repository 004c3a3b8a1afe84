"""``pacs import``: load old studies from folders, zip files and DICOMDIR media.

CDs from other hospitals carry a DICOMDIR, viewer programs and autorun files;
folders exported by other archives carry anything. Every DICOM object goes
through the same ingest as C-STORE; everything else is counted and skipped.
Names inside zip files and DICOMDIR records are never used as paths to
write; DICOMDIR references are resolved only inside the media's own folder.
"""

from __future__ import annotations

import getpass
import logging
import os
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from pacs.archive import Archive
from pacs.auth.principal import Kind, Principal, Role
from pacs.ingest import InvalidObject, Origin, Outcome, Rejected, Unavailable
from pacs.part10 import NotDicom

log = logging.getLogger(__name__)
SPOOL_IN_MEMORY = 64 << 20

Opener = Callable[[], AbstractContextManager[BinaryIO]]


@dataclass
class ImportSummary:
    files: int = 0
    imported: int = 0
    duplicates: int = 0
    conflicts: int = 0
    not_dicom: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    studies: Counter[tuple[str, str]] = field(default_factory=Counter)  # (patient, study)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "not_dicom": self.not_dicom,
            "rejected": sum(self.rejected.values()),
            "rejected_reasons": dict(self.rejected.most_common()),
            "studies": len(self.studies),
        }


@dataclass(frozen=True)
class Source:
    """One candidate object: a name for the report and a way to open it."""

    name: str
    open: Opener


def _file_opener(path: Path) -> Opener:
    return lambda: cast(AbstractContextManager[BinaryIO], path.open("rb"))


def _zip_member_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Opener:
    @contextmanager
    def opener() -> Iterator[BinaryIO]:
        # Ingest needs to seek; members are streamed into a spool, never to a named path.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            with archive.open(info) as member:
                while chunk := member.read(1 << 20):
                    spool.write(chunk)
            spool.seek(0)
            yield cast(BinaryIO, spool)

    return opener


def _inside(root: Path, candidate: Path) -> bool:
    try:
        candidate.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _dicomdir_sources(dicomdir: Path) -> Iterator[Source]:
    """The files a DICOMDIR references, resolved inside its own folder only."""
    root = dicomdir.parent
    ds = dcmread(dicomdir)
    for record in ds.get("DirectoryRecordSequence", []):
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        if any(p in ("", ".", "..") or "/" in p or "\\" in p for p in parts):
            log.warning("DICOMDIR %s: refusing reference %r", dicomdir, file_id)
            continue
        path = root.joinpath(*parts)
        if not _inside(root, path):
            log.warning("DICOMDIR %s: reference %r leaves the media", dicomdir, file_id)
            continue
        if path.is_file():
            yield Source(str(path), _file_opener(path))
        else:  # media made on Windows may differ in case
            matches = [p for p in path.parent.glob("*") if p.name.upper() == path.name.upper()]
            if matches and _inside(root, matches[0]):
                yield Source(str(matches[0]), _file_opener(matches[0]))


def _is_dicomdir(path: Path) -> bool:
    if path.name.upper() != "DICOMDIR":
        return False
    try:
        meta = dcmread(path, stop_before_pixels=True, specific_tags=["MediaStorageSOPClassUID"])
    except (InvalidDicomError, OSError, ValueError):
        return False
    return str(meta.file_meta.get("MediaStorageSOPClassUID", "")) == "1.2.840.10008.1.3.10"


def iter_sources(path: Path) -> Iterator[Source]:
    """Every candidate object below ``path`` (a folder, a zip, a DICOMDIR or a file)."""
    if path.is_dir():
        dicomdir = next((p for p in path.iterdir() if _is_dicomdir(p)), None)
        if dicomdir is not None:
            yield from _dicomdir_sources(dicomdir)
            return
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(filenames):
                yield from iter_sources(Path(dirpath) / name)
        return
    if _is_dicomdir(path):
        yield from _dicomdir_sources(path)
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as bundle:
            for info in bundle.infolist():
                if not info.is_dir() and Path(info.filename).name.upper() != "DICOMDIR":
                    yield Source(f"{path}!{info.filename}", _zip_member_opener(bundle, info))
    elif path.is_file():
        yield Source(str(path), _file_opener(path))


def import_paths(
    archive: Archive,
    paths: list[Path],
    progress: Callable[[str], None] | None = None,
) -> ImportSummary:
    summary = ImportSummary()
    user = getpass.getuser()
    origin = Origin(door="import", user=user)
    for path in paths:
        if not path.exists():
            summary.rejected[f"no such file or folder: {path}"] += 1
            continue
        for source in iter_sources(path):
            summary.files += 1
            _import_one(archive, source, origin, summary)
            if progress is not None:
                progress(source.name)
    principal = Principal(Kind.USER, f"os:{user}", Role.ADMIN, "console")
    for (patient_id, study_uid), count in summary.studies.items():
        archive.audit.record(
            principal,
            "import",
            patient_id=patient_id,
            study_uid=study_uid,
            detail=f"{count} instances",
        )
    return summary


def _import_one(archive: Archive, source: Source, origin: Origin, summary: ImportSummary) -> None:
    try:
        with source.open() as fp:
            result = archive.ingest(fp, origin)
    except InvalidObject as exc:
        if isinstance(exc.__cause__, NotDicom):
            summary.not_dicom += 1
        else:
            summary.rejected[str(exc)] += 1
            log.warning("rejected %s: %s", source.name, exc)
        return
    except Rejected as exc:
        summary.rejected[f"duplicate refused: {exc}"] += 1
        return
    except Unavailable as exc:
        summary.rejected[f"archive unavailable: {exc}"] += 1
        return
    except (OSError, zipfile.BadZipFile) as exc:
        summary.rejected[f"unreadable file: {exc}"] += 1
        return
    if result.outcome is Outcome.DUPLICATE:
        summary.duplicates += 1
    elif result.outcome is Outcome.CONFLICT_KEPT:
        summary.conflicts += 1
    else:
        summary.imported += 1
        summary.studies[(result.patient_id, result.study_uid)] += 1
