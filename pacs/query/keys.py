"""Which attributes can be matched, at which level, against which column, and how.

A key missing here can still be *returned* (from the stored DICOM JSON), but
asking to *match* on it is reported with :class:`QueryError`: silently
treating an unsupported key as universal would return studies the user
filtered out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from pacs.index.models import Instance, Patient, Series, Study


class QueryError(ValueError):
    """The query cannot be answered as asked (unknown key, bad range...): say why."""


class Level(enum.IntEnum):
    PATIENT = 0
    STUDY = 1
    SERIES = 2
    IMAGE = 3


class Kind(enum.Enum):
    UID = "uid"  # single UID or a list of UIDs
    TEXT = "text"  # single value or wildcard, case-sensitive
    NAME = "name"  # person name: folded, case- and accent-insensitive, optionally fuzzy
    DATE = "date"  # DA: single or range
    TIME = "time"  # TM: single (prefix) or range
    NUMBER = "number"  # IS: single value
    CODE = "code"  # CS: single value, wildcard, or a list (Modality "CT\MR")
    PATIENT_ID = "patient-id"  # own PatientID or any other identifier of the patient
    COMPUTED = "computed"  # derived (ModalitiesInStudy...): matched by an EXISTS


@dataclass(frozen=True)
class Key:
    keyword: str
    level: Level
    kind: Kind
    column: Any = None  # SQLAlchemy column for matching and for the returned value


KEYS: dict[str, Key] = {
    k.keyword: k
    for k in (
        Key("PatientID", Level.PATIENT, Kind.PATIENT_ID, Patient.patient_id),
        Key("IssuerOfPatientID", Level.PATIENT, Kind.TEXT, Patient.issuer),
        Key("PatientName", Level.PATIENT, Kind.NAME, Patient.name_folded),
        Key("PatientBirthDate", Level.PATIENT, Kind.DATE, Patient.birth_date),
        Key("PatientSex", Level.PATIENT, Kind.CODE, Patient.sex),
        Key("OtherPatientIDsSequence", Level.PATIENT, Kind.PATIENT_ID),
        Key("StudyInstanceUID", Level.STUDY, Kind.UID, Study.study_uid),
        Key("StudyDate", Level.STUDY, Kind.DATE, Study.study_date),
        Key("StudyTime", Level.STUDY, Kind.TIME, Study.study_time),
        Key("AccessionNumber", Level.STUDY, Kind.TEXT, Study.accession_number),
        Key("StudyID", Level.STUDY, Kind.TEXT, Study.study_id),
        Key("StudyDescription", Level.STUDY, Kind.TEXT, Study.study_description),
        Key("ReferringPhysicianName", Level.STUDY, Kind.NAME, Study.referring_physician_folded),
        Key("InstitutionName", Level.STUDY, Kind.TEXT, Study.institution_name),
        Key("ModalitiesInStudy", Level.STUDY, Kind.COMPUTED),
        Key("SOPClassesInStudy", Level.STUDY, Kind.COMPUTED),
        Key("SeriesInstanceUID", Level.SERIES, Kind.UID, Series.series_uid),
        Key("Modality", Level.SERIES, Kind.CODE, Series.modality),
        Key("SeriesNumber", Level.SERIES, Kind.NUMBER, Series.series_number),
        Key("SeriesDescription", Level.SERIES, Kind.TEXT, Series.series_description),
        Key("BodyPartExamined", Level.SERIES, Kind.CODE, Series.body_part_examined),
        Key("SeriesDate", Level.SERIES, Kind.DATE, Series.series_date),
        Key("SeriesTime", Level.SERIES, Kind.TIME, Series.series_time),
        Key(
            "PerformedProcedureStepStartDate",
            Level.SERIES,
            Kind.DATE,
            Series.performed_procedure_step_start_date,
        ),
        Key("SOPInstanceUID", Level.IMAGE, Kind.UID, Instance.sop_instance_uid),
        Key("SOPClassUID", Level.IMAGE, Kind.UID, Instance.sop_class_uid),
        Key("InstanceNumber", Level.IMAGE, Kind.NUMBER, Instance.instance_number),
    )
}

# Returned, never matched: counts and the like, computed per result row.
COMPUTED_RETURN = {
    "NumberOfPatientRelatedStudies": Level.PATIENT,
    "NumberOfPatientRelatedSeries": Level.PATIENT,
    "NumberOfPatientRelatedInstances": Level.PATIENT,
    "NumberOfStudyRelatedSeries": Level.STUDY,
    "NumberOfStudyRelatedInstances": Level.STUDY,
    "ModalitiesInStudy": Level.STUDY,
    "SOPClassesInStudy": Level.STUDY,
    "NumberOfSeriesRelatedInstances": Level.SERIES,
}

# Request control attributes: never matching keys.
CONTROL = {"QueryRetrieveLevel", "SpecificCharacterSet", "TimezoneOffsetFromUTC"}

UNIQUE_KEY = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}
