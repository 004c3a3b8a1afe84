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
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast

from pydicom import dcmread
from pydicom.filereader import read_file_meta_info
from pydicom.uid import MediaStorageDirectoryStorage

from pacs.archive import Archive
from pacs.archive.ingest import InvalidObject, Origin, Outcome, Rejected, Unavailable
from pacs.auth.principal import Kind, Principal, Role
from pacs.part10 import NotDicom

log = logging.getLogger(__name__)
SPOOL_IN_MEMORY = 64 << 20
# A zip bomb (1 MiB expanding to 924 MiB of temporary disk) is refused while it expands:
# a member may grow beyond RATIO_FLOOR only up to MAX_RATIO times its compressed size,
# and never beyond MAX_MEMBER_BYTES. DICOM compresses a few times; zeros a thousand.
MAX_RATIO = 100
RATIO_FLOOR = 16 << 20
MAX_MEMBER_BYTES = 8 << 30

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


class UnreadableSource(Exception):
    """A candidate that cannot be read at all (encrypted or damaged zip member, I/O error)."""


def _zip_member_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Opener:
    @contextmanager
    def opener() -> Iterator[BinaryIO]:
        # Ingest needs to seek; members are streamed into an anonymous spool, never to a
        # path named by the archive.
        limit = min(MAX_MEMBER_BYTES, max(RATIO_FLOOR, MAX_RATIO * info.compress_size))
        if info.file_size > limit:
            raise UnreadableSource(_bomb(info, info.file_size))
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            written = 0
            try:
                with archive.open(info) as member:
                    # The declared size may lie: count what actually comes out.
                    while chunk := member.read(1 << 20):
                        written += len(chunk)
                        if written > limit:
                            raise UnreadableSource(_bomb(info, written))
                        spool.write(chunk)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError) as exc:
                # RuntimeError: encrypted member; NotImplementedError: unknown compression.
                raise UnreadableSource(f"damaged or unsupported zip member: {exc}") from exc
            spool.seek(0)
            yield cast(BinaryIO, spool)

    return opener


def _bomb(info: zipfile.ZipInfo, size: int) -> str:
    return (
        f"zip member expands to over {size >> 20} MiB from {info.compress_size >> 10} KiB"
        f" (more than {MAX_RATIO}:1): refused as a zip bomb"
    )


def _refusal(reason: str) -> Opener:
    """An opener for a candidate that must not or cannot be opened: reported, not read."""

    def opener() -> AbstractContextManager[BinaryIO]:
        raise UnreadableSource(reason)

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
    try:
        ds = dcmread(dicomdir)
    except Exception as exc:  # damaged media: fall back to walking the folder
        log.warning("DICOMDIR %s unreadable (%s); walking its folder instead", dicomdir, exc)
        yield from _walk(root)
        return
    for record in ds.get("DirectoryRecordSequence", []):
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        name = f"{dicomdir}: {'/'.join(parts)}"
        path = root.joinpath(*parts)
        unsafe = any(p in ("", ".", "..") or "/" in p or "\\" in p for p in parts)
        if unsafe or not _inside(root, path):
            yield Source(name, _refusal("DICOMDIR reference leaves the media folder"))
        elif path.is_file():
            yield Source(str(path), _file_opener(path))
        else:  # media made on Windows may differ in case
            matches = [p for p in path.parent.glob("*") if p.name.upper() == path.name.upper()]
            if matches and _inside(root, matches[0]):
                yield Source(str(matches[0]), _file_opener(matches[0]))
            else:
                yield Source(name, _refusal("file listed in the DICOMDIR is missing"))


def _is_dicomdir(path: Path) -> bool:
    if path.name.upper() != "DICOMDIR":
        return False
    try:
        meta = read_file_meta_info(path)
    except Exception:  # anything named DICOMDIR that is not one is just skipped
        return False
    return str(meta.get("MediaStorageSOPClassUID", "")) == MediaStorageDirectoryStorage


def _has_part10_prefix(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(132)[128:] == b"DICM"


def _walk(folder: Path) -> Iterator[Source]:
    """Files below ``folder``; a sub-folder holding a DICOMDIR is read as media instead."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        here = Path(dirpath)
        if here != folder:
            dicomdir = _dicomdir_in(here)
            if dicomdir is not None:
                dirnames.clear()
                yield from _dicomdir_sources(dicomdir)
                continue
        for name in sorted(filenames):
            if name.upper() != "DICOMDIR":
                yield from _file_sources(here / name)


def _dicomdir_in(folder: Path) -> Path | None:
    try:
        return next((p for p in folder.iterdir() if p.is_file() and _is_dicomdir(p)), None)
    except OSError:
        return None  # unreadable folder: walking it reports nothing either


def _file_sources(path: Path) -> Iterator[Source]:
    """One file: a zip yields its members, anything else is one candidate."""
    if not path.is_file():
        return  # sockets, broken links
    try:
        is_zip = not _has_part10_prefix(path) and zipfile.is_zipfile(path)
    except OSError:
        is_zip = False  # unreadable: ingest reports why
    if not is_zip:
        yield Source(str(path), _file_opener(path))
        return
    try:
        bundle = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        yield Source(str(path), _file_opener(path))  # only looked like a zip
        return
    with bundle:
        for info in bundle.infolist():
            if not info.is_dir() and PurePosixPath(info.filename).name.upper() != "DICOMDIR":
                yield Source(f"{path}!{info.filename}", _zip_member_opener(bundle, info))


def iter_sources(path: Path) -> Iterator[Source]:
    """Every candidate object below ``path`` (a folder, a zip, a DICOMDIR or a file)."""
    if path.is_dir():
        dicomdir = _dicomdir_in(path)
        if dicomdir is not None:
            yield from _dicomdir_sources(dicomdir)
        else:
            yield from _walk(path)
    elif _is_dicomdir(path):
        yield from _dicomdir_sources(path)
    else:
        yield from _file_sources(path)


def import_paths(
    archive: Archive,
    paths: list[Path],
    progress: Callable[[str], None] | None = None,
) -> ImportSummary:
    summary = ImportSummary()
    user = _os_user()
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


def _os_user() -> str:
    """Who ran the import, for the audit trail (containers may have no passwd entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


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
    except UnreadableSource as exc:
        summary.rejected[str(exc)] += 1
        log.warning("rejected %s: %s", source.name, exc)
        return
    except OSError as exc:
        summary.rejected[f"unreadable file: {exc.strerror or exc}"] += 1
        log.warning("rejected %s: %s", source.name, exc)
        return
    if result.outcome is Outcome.DUPLICATE:
        summary.duplicates += 1
    elif result.outcome is Outcome.CONFLICT_KEPT:
        summary.conflicts += 1
    else:
        summary.imported += 1
        summary.studies[(result.patient_id, result.study_uid)] += 1
