"""The Modality Worklist: scheduled procedure steps of open orders, as DICOM datasets.

Matching keys (PS3.4 K.6.1.2): Scheduled Station AE Title, Modality and the
Scheduled Procedure Step Start Date (single value or range), inside the
Scheduled Procedure Step Sequence; Patient's Name (wildcards, accents and case
ignored like study search: the folded form), Patient ID and Accession Number
at the top. Only steps of orders still scheduled or in progress are listed.
The Study Instance UID a modality should use is derived from the accession
number (a UUID-derived ``2.25`` UID), so every worklist answer gives the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from pacs.archive.errors import InvalidRequest
from pacs.index.workflow_models import HisPatient, ImagingOrder, ScheduledStep
from pacs.names import fold

OPEN = ("scheduled", "in progress")
MAX_ITEMS = 5000


@dataclass(frozen=True)
class WorklistQuery:
    station_ae: str = ""
    modality: str = ""
    start_date: str = ""  # YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD or YYYYMMDD-
    patient_name: str = ""  # may hold * and ?
    patient_id: str = ""
    accession_number: str = ""


def study_uid_for(accession_number: str) -> str:
    """The Study Instance UID the worklist gives for this order (stable across queries)."""
    return str(generate_uid(prefix="2.25.", entropy_srcs=["pacs-order", accession_number]))


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _date_range(value: str) -> tuple[str, str]:
    low, dash, high = value.partition("-")
    if not dash:
        high = low
    for part in (low, high):
        if part and not (len(part) == 8 and part.isdigit()):
            raise InvalidRequest(f"ScheduledProcedureStepStartDate {value!r} is not a date range")
    return low, high


def build_query(query: WorklistQuery) -> Select:
    stmt = (
        select(ScheduledStep, ImagingOrder, HisPatient)
        .join(ImagingOrder, ImagingOrder.pk == ScheduledStep.order_pk)
        .join(HisPatient, HisPatient.pk == ImagingOrder.patient_pk)
        .where(ImagingOrder.status.in_(OPEN))
    )
    for column, value in (
        (ScheduledStep.station_ae, query.station_ae),
        (ScheduledStep.modality, query.modality),
        (HisPatient.patient_id, query.patient_id),
        (ImagingOrder.accession_number, query.accession_number),
    ):
        if value and value != "*":
            if "*" in value or "?" in value:
                stmt = stmt.where(column.like(_like(value), escape="\\"))
            else:
                stmt = stmt.where(column == value)
    if query.start_date:
        low, high = _date_range(query.start_date)
        if low:
            stmt = stmt.where(ScheduledStep.start_date >= low)
        if high:
            stmt = stmt.where(ScheduledStep.start_date <= high)
    name = query.patient_name.strip()
    if name and name != "*":
        folded = fold(name.replace("*", " * ").replace("?", " ? "))
        words = [w for w in folded.split() if w not in ("*", "?")]
        for word in words:  # every word present, in any order (like study search)
            stmt = stmt.where(HisPatient.name_folded.contains(word))
    return stmt.order_by(ScheduledStep.start_date, ScheduledStep.start_time, ScheduledStep.pk)


def find(session: Session, query: WorklistQuery) -> list[Dataset]:
    """The matching worklist items (UTF-8 datasets, every return key filled)."""
    rows = session.execute(build_query(query).limit(MAX_ITEMS)).all()
    return [_item(step, order, patient) for step, order, patient in rows]


def _item(step: ScheduledStep, order: ImagingOrder, patient: HisPatient) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.AccessionNumber = order.accession_number
    ds.ReferringPhysicianName = order.referring_physician
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    if patient.citizen_id:
        other = Dataset()
        other.PatientID = patient.citizen_id
        other.TypeOfPatientID = "TEXT"
        ds.OtherPatientIDsSequence = Sequence([other])
    ds.StudyInstanceUID = study_uid_for(order.accession_number)
    ds.RequestedProcedureID = order.requested_procedure_id
    ds.RequestedProcedureDescription = order.procedure_description
    ds.RequestedProcedurePriority = order.priority
    sps = Dataset()
    sps.ScheduledStationAETitle = step.station_ae
    sps.ScheduledProcedureStepStartDate = step.start_date
    sps.ScheduledProcedureStepStartTime = step.start_time
    sps.Modality = step.modality
    sps.ScheduledPerformingPhysicianName = ""
    sps.ScheduledProcedureStepDescription = step.description
    sps.ScheduledProcedureStepID = step.step_id
    sps.ScheduledProcedureStepStatus = "SCHEDULED" if order.status == "scheduled" else "STARTED"
    if step.code:
        code = Dataset()
        code.CodeValue = step.code[:16]
        code.CodingSchemeDesignator = "99HIS"
        code.CodeMeaning = step.description or step.code
        sps.ScheduledProtocolCodeSequence = Sequence([code])
    ds.ScheduledProcedureStepSequence = Sequence([sps])
    return ds
