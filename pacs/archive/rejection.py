"""IHE IOCM rejection: instances, series or studies withdrawn with a coded reason and a KOS note.

A rejection is a delete (:mod:`pacs.archive.lifecycle`) that says why in the
IOCM way. It

1. refuses a study under a legal hold (audited), like every delete;
2. builds a Key Object Selection document (highdicom) whose title is the
   reason's code (113001 quality, 113037 patient safety / wrong patient,
   113038 wrong modality worklist entry, 113039 data retention policy
   expired) and which references every rejected instance;
3. soft-deletes the rejected objects through the lifecycle, so they leave
   every door at once (QIDO, WADO, C-FIND, C-GET/C-MOVE, FHIR, the viewer all
   read the imaging tables) and their blobs are purged after
   ``delete_purge_after_hours``, unless a legal hold is set before then; the
   deletion records carry the code and the note's UID;
4. stores the note through ingest (the one writer path) in the same study, so
   a peer or a viewer that knows IOCM sees what was rejected and why.

There is one mechanism for taking data away (the deletion), not two: a plain
DICOMweb DELETE is a rejection without a code or a note.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from highdicom.ko import KeyObjectSelection, KeyObjectSelectionDocument
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from pacs.archive import retrieve
from pacs.archive.errors import InvalidRequest, LegalHoldActive, NotFound
from pacs.archive.ingest import IngestResult, Origin
from pacs.archive.lifecycle import DeletionView, Lifecycle
from pacs.audit import AuditTrail
from pacs.auth.principal import Principal

log = logging.getLogger(__name__)

# IOCM rejection note document titles (CID 7011), DCM coding scheme.
REASONS: dict[str, str] = {
    "113001": "Rejected for Quality Reasons",
    "113037": "Rejected for Patient Safety Reasons",
    "113038": "Incorrect Modality Worklist Entry",
    "113039": "Data Retention Policy Expired",
}
# The attributes of each rejected instance the note's evidence needs (patient, study, series, SOP).
EVIDENCE = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "SeriesInstanceUID",
    "Modality",
    "SOPClassUID",
    "SOPInstanceUID",
)


class InvalidRejection(InvalidRequest):
    """An unknown reason code, or instances named without their series."""


@dataclass(frozen=True)
class RejectionView:
    """What a rejection did: the deletions it recorded and the note it stored."""

    code: str
    meaning: str
    note_uid: str
    deletions: list[DeletionView]

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "meaning": self.meaning,
            "note_sop_instance_uid": self.note_uid,
            "instances": sum(d.instances for d in self.deletions),
            "deletions": [d.as_json() for d in self.deletions],
        }


def _evidence(text: str) -> Dataset:
    full = Dataset.from_json(text)
    ds = Dataset()
    for keyword in EVIDENCE:
        if keyword in full:
            setattr(ds, keyword, full.data_element(keyword).value)  # type: ignore[union-attr]
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        if keyword not in ds:
            setattr(ds, keyword, "")  # type 2 in the note's patient module
    return ds


def rejection_note(evidence: list[Dataset], code: str) -> KeyObjectSelectionDocument:
    """The IOCM Key Object Selection document rejecting ``evidence`` for ``code``."""
    title = Code(code, "DCM", REASONS[code])
    content = KeyObjectSelection(document_title=title, referenced_objects=evidence)
    note = KeyObjectSelectionDocument(
        evidence=evidence,
        content=content,
        series_instance_uid=generate_uid(),
        series_number=9999,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="pacs",
    )
    # The evidence holds decoded text (a Vietnamese patient name) without the character set
    # it came in: UTF-8 writes any of it (highdicom's default, Latin-1, wrote "Nguy?n").
    note.SpecificCharacterSet = "ISO_IR 192"
    return note


class Rejections:
    """Reject over one archive's lifecycle; the note stored with ``ingest``."""

    def __init__(
        self,
        sessions: Any,
        lifecycle: Lifecycle,
        audit: AuditTrail,
        ingest: Callable[[io.BytesIO, Origin], IngestResult],
    ) -> None:
        self.sessions = sessions
        self.lifecycle = lifecycle
        self.audit = audit
        self.ingest = ingest

    def reject(
        self,
        principal: Principal,
        study_uid: str,
        *,
        code: str,
        series_uid: str | None = None,
        sop_instance_uids: list[str] | None = None,
        reason: str = "",
    ) -> RejectionView:
        """Reject a study, a series of it, or instances of that series; see the module docstring.

        Raises InvalidRejection, NotFound (nothing to reject) and LegalHoldActive
        (audited). The note is stored after the objects left the index: a store
        failure then raises, the rejection itself stands (logged).
        """
        if code not in REASONS:
            raise InvalidRejection(f"unknown rejection code {code!r}: one of {', '.join(REASONS)}")
        if sop_instance_uids and series_uid is None:
            raise InvalidRejection("instances are rejected within their series: give series_uid")
        hold = self.lifecycle.hold_of(study_uid)
        if hold is not None:
            self.audit.record(
                principal,
                "reject",
                "failure: legal hold",
                study_uid=study_uid,
                detail=f"code={code} series={series_uid or ''}",
            )
            raise LegalHoldActive(f"study {study_uid} is under a legal hold: {hold.reason}")
        found = retrieve.instance_metadata(self.sessions, study_uid, series_uid)
        if sop_instance_uids:
            wanted = set(sop_instance_uids)
            found = [(uid, text) for uid, text in found if uid in wanted]
            missing = wanted - {uid for uid, _ in found}
            if missing:
                raise NotFound(f"instances not found: {', '.join(sorted(missing))}")
        if not found:
            raise NotFound(f"nothing to reject in {series_uid or study_uid}")
        note = rejection_note([_evidence(text) for _, text in found], code)
        note_uid = str(note.SOPInstanceUID)
        why = f"IOCM {code} {REASONS[code]}" + (f": {reason.strip()}" if reason.strip() else "")
        marks = {"rejection_code": code, "rejection_note_uid": note_uid}
        if sop_instance_uids:
            deletions = [
                self.lifecycle.delete(principal, study_uid, series_uid, uid, reason=why, **marks)
                for uid, _ in found
            ]
        else:
            deletions = [
                self.lifecycle.delete(principal, study_uid, series_uid, reason=why, **marks)
            ]
        self.audit.record(
            principal,
            "reject",
            patient_id=deletions[0].patient_id,
            study_uid=study_uid,
            detail=json.dumps(
                {
                    "code": code,
                    "series": series_uid or "",
                    "instances": sum(d.instances for d in deletions),
                    "note": note_uid,
                    "reason": reason.strip(),
                },
                ensure_ascii=False,
            ),
        )
        buffer = io.BytesIO()
        note.save_as(buffer, enforce_file_format=True)
        buffer.seek(0)
        self.ingest(buffer, Origin(door="rejection", user=principal.name))
        return RejectionView(code, REASONS[code], note_uid, deletions)
