"""Audited corrections of a study's patient and study attributes.

DESIGN.md: "Corrections create audited versions, not silent rewrites", and the
bytes a modality sent are kept as sent. So a correction

1. updates the index rows (what QIDO and C-FIND match and answer) and each
   instance's stored DICOM JSON (what WADO-RS metadata serves), in one
   transaction, and records a version row per affected study: who, when, why,
   and each attribute's old and new value; every version stays listable;
2. then writes, for each instance, a corrected copy of the object as received
   (the same bytes, with the corrected attributes in its header; Pixel Data and
   everything after it copied unchanged) under its own content-hash key, and
   points the instance row at it. The object as received stays in the store,
   recorded in ``instance_original``; later corrections are always made from
   it, and a delete purges both.

Retrieval therefore presents the corrected values the same way through every
door (WADO-RS metadata and instances, WADO-URI, rendered images, C-MOVE and
C-GET), with no per-request work. Step 2 follows step 1: if the process dies in
between, the instances still serve their previous bytes (never a missing blob)
and :meth:`Corrections.reapply` finishes the copies: the leader's periodic task
scans every corrected study once after it starts, then those corrected or sent
instances lately (a store that failed during a correction is retried so too).

Patient attributes belong to the patient row, which all of that patient's
studies share: correcting the name, birth date or sex corrects it for each of
those studies (each gets its version, naming the study the correction was made
on). Correcting the Patient ID moves the study to the patient with that ID,
created when it does not exist. An instance received after a correction is
stored as sent; a periodic task on the scheduler's leader finds it (see
:meth:`Corrections.pending`) and a job brings it in line within about a minute.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from pacs.archive.errors import InvalidCorrection, NotFound
from pacs.archive.ingest import _read_dataset, blob_key
from pacs.audit import AuditTrail
from pacs.auth.principal import Principal
from pacs.blobfile import seekable_blob
from pacs.index.lifecycle_models import CorrectedStudy, CorrectionVersion, InstanceOriginal
from pacs.index.models import Instance, Patient, Series, Study
from pacs.names import fold, normalize
from pacs.part10 import PREAMBLE, read_header
from storage import BlobStore

log = logging.getLogger(__name__)

MAX_REASON = 1024
SPOOL_IN_MEMORY = 16 << 20


@dataclass(frozen=True)
class Attribute:
    """A correctable attribute: its tag, VR, the index row and column that hold it."""

    tag: str
    vr: str
    level: str  # patient, study
    column: str
    limit: int
    pattern: str | None = None


CORRECTABLE: dict[str, Attribute] = {
    "PatientName": Attribute("00100010", "PN", "patient", "name", 324),
    "PatientID": Attribute("00100020", "LO", "patient", "patient_id", 64),
    "PatientBirthDate": Attribute("00100030", "DA", "patient", "birth_date", 8, r"(\d{8})?"),
    "PatientSex": Attribute("00100040", "CS", "patient", "sex", 16, r"(M|F|O)?"),
    "AccessionNumber": Attribute("00080050", "SH", "study", "accession_number", 16),
    "StudyID": Attribute("00200010", "SH", "study", "study_id", 16),
    "StudyDescription": Attribute("00081030", "LO", "study", "study_description", 64),
    "StudyDate": Attribute("00080020", "DA", "study", "study_date", 8, r"(\d{8})?"),
    "StudyTime": Attribute("00080030", "TM", "study", "study_time", 16, r"(\d{2,6}(\.\d{1,6})?)?"),
    "ReferringPhysicianName": Attribute("00080090", "PN", "study", "referring_physician_name", 324),
    # Not correctable by request: set when a series moves to another study (pacs.archive.series).
    "StudyInstanceUID": Attribute("0020000D", "UI", "study", "study_uid", 64),
}
INTERNAL = frozenset({"StudyInstanceUID"})
_FOLDED = {"name": "name_folded", "referring_physician_name": "referring_physician_folded"}


@dataclass(frozen=True)
class VersionView:
    """One correction of one study, as recorded."""

    study_uid: str
    version: int
    changes: dict[str, dict[str, str]]  # keyword -> {"old": ..., "new": ...}
    reason: str
    corrected_by: str
    corrected_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "version": self.version,
            "changes": self.changes,
            "reason": self.reason,
            "corrected_by": self.corrected_by,
            "corrected_at": self.corrected_at.isoformat(),
        }


def _view(row: CorrectionVersion) -> VersionView:
    at = row.corrected_at if row.corrected_at.tzinfo else row.corrected_at.replace(tzinfo=UTC)
    return VersionView(
        row.study_uid, row.version, json.loads(row.changes), row.reason, row.corrected_by, at
    )


def validate(values: dict[str, str]) -> dict[str, str]:
    """The requested values, normalized (NFC, trimmed); InvalidCorrection for anything else."""
    if not values:
        raise InvalidCorrection("no attribute to correct")
    clean: dict[str, str] = {}
    for keyword, raw in values.items():
        attribute = CORRECTABLE.get(keyword) if keyword not in INTERNAL else None
        if attribute is None:
            allowed = ", ".join(k for k in CORRECTABLE if k not in INTERNAL)
            raise InvalidCorrection(f"{keyword} cannot be corrected (correctable: {allowed})")
        if not isinstance(raw, str):
            raise InvalidCorrection(f"{keyword}: the value must be a string")
        value = normalize(raw.strip())
        if len(value) > attribute.limit or "\\" in value or any(c in value for c in "\r\n\0"):
            raise InvalidCorrection(f"{keyword}: at most {attribute.limit} characters, one value")
        if attribute.pattern and not re.fullmatch(attribute.pattern, value):
            raise InvalidCorrection(f"{keyword}: {value!r} is not a valid {attribute.vr} value")
        if keyword == "PatientID" and not value:
            raise InvalidCorrection("PatientID cannot be empty")
        clean[keyword] = value
    return clean


def _json_element(attribute: Attribute, value: str) -> dict[str, Any]:
    if not value:
        return {"vr": attribute.vr}
    if attribute.vr == "PN":
        return {"vr": "PN", "Value": [{"Alphabetic": value}]}
    return {"vr": attribute.vr, "Value": [value]}


def corrected_json(text: str, attributes: dict[str, str]) -> str:
    """An instance's stored DICOM JSON with ``attributes`` (keyword -> value) applied."""
    data = json.loads(text)
    for keyword, value in attributes.items():
        attribute = CORRECTABLE[keyword]
        data[attribute.tag] = _json_element(attribute, value)
    return json.dumps(dict(sorted(data.items())), ensure_ascii=False, separators=(",", ":"))


def apply_to_dataset(ds: Dataset, attributes: dict[str, str]) -> None:
    """Set the corrected values; a value the dataset's character set cannot hold makes it UTF-8."""
    if any(not value.isascii() for value in attributes.values()):
        charset = ds.get("SpecificCharacterSet", "")
        charsets = [charset] if isinstance(charset, str) else list(charset)
        if "ISO_IR 192" not in charsets:
            ds.decode()  # every text value to str, so that all are re-encoded consistently
            ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)


def corrected_copy(source: BinaryIO, attributes: dict[str, str], out: BinaryIO) -> None:
    """Write ``source`` (a stored Part 10 object, seekable) with ``attributes`` applied to ``out``.

    Everything from Pixel Data on is copied byte for byte, so memory stays
    bounded whatever the object's size. A deflated object is inflated, corrected
    and written whole (in the transfer syntax it came in).
    """
    header = read_header(source)
    ds = _read_dataset(source, header)
    apply_to_dataset(ds, attributes)
    if header.deflated:
        from pydicom import dcmread

        source.seek(0)
        whole = dcmread(source)
        apply_to_dataset(whole, attributes)
        whole.save_as(out, enforce_file_format=True)
        return
    pixel_start = source.tell()
    body = DicomBytesIO()
    body.is_implicit_VR = header.implicit_vr
    body.is_little_endian = header.little_endian
    write_dataset(body, ds)
    out.write(PREAMBLE)
    out.write(header.meta_bytes)
    out.write(body.getvalue())
    source.seek(pixel_start)
    while chunk := source.read(1 << 20):
        out.write(chunk)


class Corrections:
    """Correct, list versions, and finish corrected copies, over one archive's index and store."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        audit: AuditTrail,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.audit = audit
        self.clock = clock

    def correct(
        self, principal: Principal, study_uid: str, values: dict[str, str], reason: str
    ) -> list[VersionView]:
        """Apply ``values`` (keyword -> new value); the versions recorded, this study's first.

        Raises NotFound for an unknown study and InvalidCorrection for a bad
        attribute, value or missing reason. Values equal to the present ones
        are no change; a request changing nothing records no version.
        """
        reason = reason.strip()[:MAX_REASON]
        if not reason:
            raise InvalidCorrection("a reason is required")
        values = validate(values)
        versions = self._correct_index(principal, study_uid, values, reason)
        for view in versions:
            self.audit.record(
                principal,
                "correct",
                patient_id=view.changes.get("PatientID", {}).get("new") or self._patient(view),
                study_uid=view.study_uid,
                detail=json.dumps(
                    {"version": view.version, "changes": view.changes, "reason": reason},
                    ensure_ascii=False,
                ),
            )
        for view in versions:
            self.reapply(view.study_uid)
        return versions

    def _patient(self, view: VersionView) -> str:
        with self.sessions() as session:
            found = session.scalar(
                select(Patient.patient_id)
                .join(Study, Study.patient_pk == Patient.pk)
                .where(Study.study_uid == view.study_uid)
            )
        return found or ""

    def versions(self, study_uid: str) -> list[VersionView]:
        """Every correction of the study, oldest first; NotFound for a study never known."""
        with self.sessions() as session:
            rows = session.scalars(
                select(CorrectionVersion)
                .where(CorrectionVersion.study_uid == study_uid)
                .order_by(CorrectionVersion.version)
            )
            found = [_view(row) for row in rows]
            if (
                not found
                and session.scalar(select(Study.pk).where(Study.study_uid == study_uid)) is None
            ):
                raise NotFound(f"study {study_uid} not found")
            return found

    # -- the index ---------------------------------------------------------------------

    def _correct_index(
        self, principal: Principal, study_uid: str, values: dict[str, str], reason: str
    ) -> list[VersionView]:
        now = self.clock()
        with self.sessions.begin() as session:
            study = session.execute(
                select(Study).where(Study.study_uid == study_uid).with_for_update()
            ).scalar_one_or_none()
            if study is None:
                raise NotFound(f"study {study_uid} not found")
            patient = session.get(Patient, study.patient_pk)
            assert patient is not None
            patient_values = {k: v for k, v in values.items() if CORRECTABLE[k].level == "patient"}
            target: Patient | None = None
            new_id = patient_values.get("PatientID")
            if new_id is not None and new_id != patient.patient_id:
                target = session.execute(
                    select(Patient).where(
                        Patient.patient_id == new_id, Patient.issuer == patient.issuer
                    )
                ).scalar_one_or_none()
            affected = {study.pk}
            for holder in (patient, target):
                if holder is not None and patient_values:
                    affected |= set(
                        session.scalars(select(Study.pk).where(Study.patient_pk == holder.pk))
                    )
            before = {pk: _present(session, pk) for pk in affected}

            for keyword, value in values.items():
                attribute = CORRECTABLE[keyword]
                if attribute.level == "study":
                    _set(study, attribute.column, value)
            if patient_values:
                self._move_patient(session, study, patient, target, patient_values)
            session.flush()

            versions = []
            for pk in sorted(affected, key=lambda pk: pk != study.pk):
                after = _present(session, pk)
                changes = {
                    k: {"old": before[pk][k], "new": after[k]}
                    for k in CORRECTABLE
                    if before[pk][k] != after[k]
                }
                if changes:
                    uid = session.scalar(select(Study.study_uid).where(Study.pk == pk))
                    assert uid is not None
                    note = reason if pk == study.pk else f"{reason} (via study {study_uid})"
                    versions.append(
                        self._record(session, pk, uid, changes, after, note, principal, now)
                    )
            return versions

    @staticmethod
    def _move_patient(
        session: Session,
        study: Study,
        patient: Patient,
        target: Patient | None,
        values: dict[str, str],
    ) -> None:
        new_id = values.get("PatientID", patient.patient_id)
        if new_id != patient.patient_id:
            alone = (
                session.scalar(
                    select(func.count()).select_from(Study).where(Study.patient_pk == patient.pk)
                )
                == 1
            )
            if target is None and alone:
                target = patient  # the patient's only study: the row itself gets the new ID
            elif target is None:
                target = Patient(
                    patient_id=new_id,
                    issuer=patient.issuer,
                    name=patient.name,
                    name_folded=patient.name_folded,
                    birth_date=patient.birth_date,
                    sex=patient.sex,
                )
                session.add(target)
                session.flush()
            study.patient_pk = target.pk
        else:
            target = patient
        for keyword, value in values.items():
            _set(target, CORRECTABLE[keyword].column, value)
        session.flush()
        if target is not patient:
            left = session.scalar(
                select(func.count()).select_from(Study).where(Study.patient_pk == patient.pk)
            )
            if not left:
                session.delete(patient)

    def _record(
        self,
        session: Session,
        study_pk: int,
        study_uid: str,
        changes: dict[str, dict[str, str]],
        after: dict[str, str],
        reason: str,
        principal: Principal,
        now: datetime,
    ) -> VersionView:
        last = session.scalar(
            select(func.max(CorrectionVersion.version)).where(
                CorrectionVersion.study_uid == study_uid
            )
        )
        version = (last or 0) + 1
        row = CorrectionVersion(
            study_uid=study_uid,
            version=version,
            changes=json.dumps(changes, ensure_ascii=False, sort_keys=True),
            reason=reason,
            corrected_by=principal.name[:128],
            corrected_at=now,
        )
        session.add(row)
        state = session.get(CorrectedStudy, study_uid)
        attributes = json.loads(state.attributes) if state is not None else {}
        attributes.update({k: after[k] for k in changes})
        if state is None:
            text = _stamp(attributes)
            session.add(CorrectedStudy(study_uid=study_uid, attributes=text, version=version))
        else:
            state.attributes, state.version = _stamp(attributes), version
        instances = session.execute(
            select(Instance.pk, Instance.dicom_json)
            .join(Series, Instance.series_pk == Series.pk)
            .where(Series.study_pk == study_pk)
        ).all()
        for pk, text in instances:
            session.execute(
                update(Instance)
                .where(Instance.pk == pk)
                .values(dicom_json=corrected_json(text, attributes))
            )
        return VersionView(study_uid, version, changes, reason, row.corrected_by, now)

    # -- the served copies -------------------------------------------------------------

    def attributes_of(self, study_uid: str) -> dict[str, str]:
        """The corrected attributes a study presents (empty when never corrected)."""
        with self.sessions() as session:
            state = session.get(CorrectedStudy, study_uid)
            return json.loads(state.attributes) if state is not None else {}

    def pending(self, since: datetime | None = None, limit: int = 100) -> list[tuple[str, int]]:
        """Corrected studies with an instance not serving the present corrections (a late
        arrival, or a copy a crash left undone): (study UID, newest such instance's key).

        ``since`` limits the search to studies corrected or sent an instance since
        then (ingest touches ``study.updated_at``), which keeps the periodic scan
        cheap however many studies were ever corrected.
        """
        query = (
            select(CorrectedStudy.study_uid, func.max(Instance.pk))
            .join(Study, Study.study_uid == CorrectedStudy.study_uid)
            .join(Series, Series.study_pk == Study.pk)
            .join(Instance, Instance.series_pk == Series.pk)
            .outerjoin(
                InstanceOriginal, InstanceOriginal.sop_instance_uid == Instance.sop_instance_uid
            )
            .where(
                or_(
                    InstanceOriginal.sop_instance_uid.is_(None),
                    InstanceOriginal.applied != CorrectedStudy.attributes,
                )
            )
            .group_by(CorrectedStudy.study_uid)
            .limit(limit)
        )
        if since is not None:
            corrected_lately = (
                select(CorrectionVersion.pk)
                .where(
                    CorrectionVersion.study_uid == CorrectedStudy.study_uid,
                    CorrectionVersion.corrected_at >= since,
                )
                .exists()
            )
            query = query.where(or_(Study.updated_at >= since, corrected_lately))
        with self.sessions() as session:
            return [(uid, int(pk)) for uid, pk in session.execute(query).all()]

    def reapply(self, study_uid: str) -> int:
        """Make every instance of the study serve its corrected values; how many were rewritten.

        Idempotent: an instance whose served copy already carries the present
        corrections is left alone. Raises StorageError when the store fails
        (what was done stays done).
        """
        attributes = self.attributes_of(study_uid)
        if not attributes:
            return 0
        with self.sessions() as session:
            rows = session.execute(
                select(
                    Instance.pk,
                    Instance.sop_instance_uid,
                    Instance.blob_key,
                    Instance.sha256,
                    Instance.size,
                    Instance.dicom_json,
                    Series.series_uid,
                    InstanceOriginal.blob_key.label("original_key"),
                    InstanceOriginal.applied,
                )
                .join(Series, Instance.series_pk == Series.pk)
                .join(Study, Series.study_pk == Study.pk)
                .outerjoin(
                    InstanceOriginal,
                    InstanceOriginal.sop_instance_uid == Instance.sop_instance_uid,
                )
                .where(Study.study_uid == study_uid)
            ).all()
        stamp = _stamp(attributes)
        rewritten = 0
        for row in rows:
            if row.original_key is not None and row.applied == stamp:
                continue  # its served copy carries the present corrections
            self._rewrite(study_uid, row, attributes, stamp)
            rewritten += 1
        return rewritten

    def _rewrite(self, study_uid: str, row: Any, attributes: dict[str, str], stamp: str) -> None:
        original_key = row.original_key or row.blob_key
        with (
            tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as out,
            seekable_blob(self.store, original_key) as source,
        ):
            corrected_copy(source, attributes, cast(BinaryIO, out))
            out.seek(0)
            digest = hashlib.sha256()
            while chunk := out.read(1 << 20):
                digest.update(chunk)
            sha256 = digest.hexdigest()
            key = blob_key(study_uid, row.series_uid, row.sop_instance_uid, sha256)
            out.seek(0)
            stored = self.store.put(key, cast(BinaryIO, out))
        with self.sessions.begin() as session:
            moved = (
                session.connection()
                .execute(
                    update(Instance)
                    .where(Instance.pk == row.pk, Instance.blob_key == row.blob_key)
                    .values(
                        blob_key=key,
                        sha256=sha256,
                        size=stored.size,
                        dicom_json=corrected_json(row.dicom_json, attributes),
                    )
                )
                .rowcount
            )
            if not moved:
                pass  # replaced or deleted meanwhile: nothing to record
            elif row.original_key is None:
                session.add(
                    InstanceOriginal(
                        sop_instance_uid=row.sop_instance_uid,
                        blob_key=row.blob_key,
                        sha256=row.sha256,
                        size=row.size,
                        applied=stamp,
                    )
                )
            else:
                session.execute(
                    update(InstanceOriginal)
                    .where(InstanceOriginal.sop_instance_uid == row.sop_instance_uid)
                    .values(applied=stamp)
                )
        if not moved:
            if key != row.blob_key:
                self.store.delete(key)  # our copy serves nothing
        elif row.blob_key not in (original_key, key):
            self.store.delete(row.blob_key)  # the previous corrected copy


def _set(row: Any, column: str, value: str) -> None:
    setattr(row, column, value)
    if column in _FOLDED:
        setattr(row, _FOLDED[column], fold(value))


def _present(session: Session, study_pk: int) -> dict[str, str]:
    """Every correctable attribute's present value for a study, from its index rows."""
    study = session.get(Study, study_pk)
    assert study is not None
    patient = session.get(Patient, study.patient_pk)
    assert patient is not None
    return {
        keyword: str(getattr(patient if a.level == "patient" else study, a.column) or "")
        for keyword, a in CORRECTABLE.items()
    }


def _stamp(attributes: dict[str, str]) -> str:
    return json.dumps(attributes, sort_keys=True, ensure_ascii=False)
