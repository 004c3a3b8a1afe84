"""Exports: studies packed as a ZIP or as DICOMDIR media, optionally de-identified, as jobs.

``create`` records the request (an :class:`~pacs.index.lifecycle_models.Export`
row) and queues an ``export`` job; the job writes ``<data_dir>/exports/<id>.zip``
and counts the instances done, which the API shows as progress; the file is
downloaded once the export is ``done``. Memory stays bounded whatever the size:

* ZIP: each stored object is streamed into its zip entry in 1 MiB chunks (a
  de-identified one is read, changed and written one at a time);
* DICOMDIR: each object is first written to a staging folder, pydicom's
  :class:`~pydicom.fileset.FileSet` builds the media there (DICOMDIR and the
  PS3.10 file tree), and the result is streamed into the zip. The media also
  carries a small offline viewer (INDEX.HTM at its root, :mod:`pacs.archive.offline_viewer`)
  showing the images and the reports from a browser without any server.

A job that runs twice starts again from nothing (idempotent); the file appears
under its final name only when complete. Creating, finishing and downloading
are audited with the patients concerned.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.fileset import FileSet
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from pacs.archive import retrieve
from pacs.archive.errors import InvalidRequest, NotFound
from pacs.archive.offline_viewer import OfflineViewer
from pacs.audit import AuditTrail
from pacs.auth.principal import Kind, Principal, Role
from pacs.blobfile import seekable_blob
from pacs.dicom.deidentify import DeidOptions, deidentify
from pacs.index.lifecycle_models import Export
from pacs.index.models import Study
from pacs.jobs import Jobs
from storage import BlobStore

log = logging.getLogger(__name__)

EXPORT_JOB = "export"
MEDIA = ("zip", "dicomdir")
MAX_STUDIES = 100
CHUNK = 1 << 20
EXPORTER = Principal(Kind.USER, "pacs-export", Role.ADMIN)


class InvalidExport(InvalidRequest):
    """An unknown media, no study, too many studies, or a download of an unfinished export."""


@dataclass(frozen=True)
class ExportView:
    id: int
    media: str
    options: dict[str, bool]
    studies: list[str]
    status: str
    total: int
    done: int
    size: int
    error: str
    created_by: str
    created_at: datetime
    finished_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "media": self.media,
            "options": self.options,
            "studies": self.studies,
            "status": self.status,
            "total": self.total,
            "done": self.done,
            "progress": round(self.done / self.total, 3) if self.total else 0.0,
            "size": self.size,
            "error": self.error or None,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _view(row: Export) -> ExportView:
    return ExportView(
        row.pk,
        row.media,
        json.loads(row.options),
        json.loads(row.studies),
        row.status,
        row.total,
        row.done,
        row.size,
        row.error,
        row.created_by,
        _aware(row.created_at) or row.created_at,
        _aware(row.finished_at),
    )


class Exports:
    """Create, run, list and open exports over one archive."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        audit: AuditTrail,
        jobs: Jobs,
        folder: Path,
        secret: Callable[[], str],
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.audit = audit
        self.jobs = jobs
        self.folder = folder
        self.secret = secret
        jobs.handle(EXPORT_JOB, self._job, backoff_s=30.0)

    def create(
        self,
        principal: Principal,
        study_uids: list[str],
        media: str,
        *,
        deidentify: bool = False,
        retain_dates: bool = False,
        retain_device: bool = False,
        viewer: bool = True,
    ) -> ExportView:
        """Record an export and queue its job. Raises InvalidExport and NotFound (a study).

        ``viewer`` (DICOMDIR media only) puts the offline viewer on the medium; its copy
        of the pixels adds 0.7-1.2x an uncompressed study's size, so a study that must
        fit a CD can go without it.
        """
        if media not in MEDIA:
            raise InvalidExport(f"media must be one of {', '.join(MEDIA)}")
        studies = list(dict.fromkeys(study_uids))
        if not studies or len(studies) > MAX_STUDIES:
            raise InvalidExport(f"between 1 and {MAX_STUDIES} studies")
        options = {
            "deidentify": deidentify,
            "retain_dates": deidentify and retain_dates,
            "retain_device": deidentify and retain_device,
            "viewer": media == "dicomdir" and viewer,
        }
        with self.sessions.begin() as session:
            known = set(
                session.scalars(select(Study.study_uid).where(Study.study_uid.in_(studies)))
            )
            missing = [uid for uid in studies if uid not in known]
            if missing:
                raise NotFound(f"studies not found: {', '.join(missing)}")
            row = Export(
                media=media,
                options=json.dumps(options),
                studies=json.dumps(studies),
                status="queued",
                total=0,
                done=0,
                size=0,
                error="",
                created_by=principal.name[:128],
                created_at=datetime.now(UTC),
                finished_at=None,
            )
            session.add(row)
            session.flush()
            view = _view(row)
        self.jobs.enqueue(EXPORT_JOB, {"export": view.id}, dedup_key=f"export:{view.id}")
        for study_uid in studies:
            self.audit.record(
                principal,
                "export",
                study_uid=study_uid,
                patient_id=self._patient_of(study_uid),
                detail=f"export={view.id} media={media} options={json.dumps(options)}",
            )
        return view

    def get(self, export_id: int) -> ExportView:
        with self.sessions() as session:
            row = session.get(Export, export_id)
            if row is None:
                raise NotFound(f"no export {export_id}")
            return _view(row)

    def listed(self, created_by: str | None = None, limit: int = 100) -> list[ExportView]:
        query = select(Export).order_by(Export.pk.desc()).limit(limit)
        if created_by is not None:
            query = query.where(Export.created_by == created_by)
        with self.sessions() as session:
            return [_view(row) for row in session.scalars(query)]

    def path(self, export_id: int) -> Path:
        """The finished export's file; InvalidExport while not done, NotFound when gone."""
        view = self.get(export_id)
        if view.status != "done":
            raise InvalidExport(f"export {export_id} is {view.status}")
        path = self._file(export_id)
        if not path.exists():
            raise NotFound(f"export {export_id}'s file is gone")
        return path

    def remove(self, export_id: int) -> None:
        """Delete the export's file and record (an admin or its creator cleaning up)."""
        self.get(export_id)
        self._file(export_id).unlink(missing_ok=True)
        with self.sessions.begin() as session:
            row = session.get(Export, export_id)
            if row is not None:
                session.delete(row)

    # -- the job --------------------------------------------------------------------------------

    def _file(self, export_id: int) -> Path:
        return self.folder / f"{int(export_id)}.zip"

    def _job(self, payload: dict[str, Any]) -> None:
        self.run(int(payload["export"]))

    def run(self, export_id: int) -> ExportView:
        """Write the export's file from nothing; its view once done (or failed)."""
        view = self.get(export_id)
        if view.status == "done" and self._file(export_id).exists():
            return view
        instances = [i for uid in view.studies for i in retrieve.locate(self.sessions, uid)]
        self._set(export_id, status="running", total=len(instances), done=0, error="")
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.folder / f"{export_id}.zip.part"
        staging = self.folder / f"{export_id}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        options = DeidOptions(view.options["retain_dates"], view.options["retain_device"])
        deid = bool(view.options["deidentify"])
        try:
            with zipfile.ZipFile(part, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                if view.media == "zip":
                    self._zip(export_id, instances, archive, deid, options)
                else:
                    with_viewer = bool(view.options.get("viewer", True))
                    self._dicomdir(
                        export_id, instances, archive, staging, deid, options, with_viewer
                    )
        except Exception as exc:
            part.unlink(missing_ok=True)
            self._set(export_id, status="failed", error=str(exc)[:1000], finished_at=_now())
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        part.replace(self._file(export_id))
        self._set(
            export_id,
            status="done",
            done=len(instances),
            size=self._file(export_id).stat().st_size,
            finished_at=_now(),
        )
        self.audit.record(EXPORTER, "export", detail=f"export={export_id} written")
        return self.get(export_id)

    def _zip(
        self,
        export_id: int,
        instances: Sequence[retrieve.StoredInstance],
        archive: zipfile.ZipFile,
        deid: bool,
        options: DeidOptions,
    ) -> None:
        for n, item in enumerate(instances, 1):
            with seekable_blob(self.store, item.blob_key) as source:
                if deid:
                    ds = dcmread(source)
                    deidentify(ds, self.secret(), options)
                    name = f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
                    with (
                        tempfile.SpooledTemporaryFile(max_size=16 << 20) as spool,
                        archive.open(name, "w", force_zip64=True) as out,
                    ):
                        ds.save_as(spool, enforce_file_format=True)  # writing seeks back
                        spool.seek(0)
                        shutil.copyfileobj(spool, out, CHUNK)
                else:
                    name = f"{item.study_uid}/{item.series_uid}/{item.sop_instance_uid}.dcm"
                    with archive.open(name, "w", force_zip64=True) as out:
                        while chunk := source.read(CHUNK):
                            out.write(chunk)
            self._progress(export_id, n)

    def _dicomdir(
        self,
        export_id: int,
        instances: Sequence[retrieve.StoredInstance],
        archive: zipfile.ZipFile,
        staging: Path,
        deid: bool,
        options: DeidOptions,
        with_viewer: bool,
    ) -> None:
        incoming = staging / "in"
        incoming.mkdir(parents=True)
        media = FileSet()
        media.ID = "PACS_EXPORT"
        viewer = OfflineViewer(staging / "viewer") if with_viewer else None
        for n, item in enumerate(instances, 1):
            path = incoming / f"{n:08d}.dcm"
            with seekable_blob(self.store, item.blob_key) as source:
                if deid:
                    ds = dcmread(source)
                    deidentify(ds, self.secret(), options)
                    ds.save_as(path, enforce_file_format=True)
                else:
                    with path.open("wb") as out:
                        shutil.copyfileobj(source, out, CHUNK)
            ds = dcmread(path)
            _invent_directory_keys(ds, n)
            if viewer is not None:
                viewer.add(ds)
            media.add(ds)  # written into the FileSet's own staging: ours can go
            del ds
            path.unlink()
            self._progress(export_id, n)
        written = staging / "media"
        media.write(written)
        for file in sorted(p for p in written.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(written).as_posix())
        if viewer is not None:
            viewer.write()
            for file, name in viewer.files():
                archive.write(file, name)

    def _progress(self, export_id: int, done: int) -> None:
        self._set(export_id, done=done)

    def _set(self, export_id: int, **values: Any) -> None:
        with self.sessions.begin() as session:
            session.execute(update(Export).where(Export.pk == export_id).values(**values))

    def _patient_of(self, study_uid: str) -> str:
        found = next(iter(retrieve.locate(self.sessions, study_uid)), None)
        return found.patient_id if found is not None else ""


def _invent_directory_keys(ds: Any, n: int) -> None:
    """Give a copy going onto media the type 1 values its DICOMDIR records need (PS3.3 F.5)
    when the modality left them out, as DCMTK's ``dcmmkdir +I`` does: dates from the series
    or content, StudyID from the accession number, numbers from the order, Modality OT."""

    def missing(keyword: str) -> bool:
        return keyword not in ds or ds[keyword].VM == 0

    fallbacks = {
        "PatientID": lambda: "UNKNOWN",
        "StudyDate": lambda: ds.get("SeriesDate") or ds.get("ContentDate") or "19000101",
        "StudyTime": lambda: ds.get("SeriesTime") or ds.get("ContentTime") or "000000",
        "StudyID": lambda: (str(ds.get("AccessionNumber") or "") or "1")[:16],
        "Modality": lambda: "OT",
        "SeriesNumber": lambda: 1,
        "InstanceNumber": lambda: n,
    }
    for keyword, value in fallbacks.items():
        if missing(keyword):
            setattr(ds, keyword, value())


def _now() -> datetime:
    return datetime.now(UTC)
