"""A small generated archive for query tests: Vietnamese names, several dates, levels and models.

UIDs are derived from positions, so a test can name "the second series of the
first study" without reading it back; everything else (names, dates,
modalities, identifiers) varies so each matching type has something to tell
apart.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from pydicom.dataset import Dataset

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from tests.dicom_factory import ct_slice, to_bytes

ROOT = "1.2.826.0.1.3680043.8.498.4242"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
SOP_CLASS = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": MR_IMAGE_STORAGE, "CR": CR_IMAGE_STORAGE}


@dataclass(frozen=True)
class PatientSpec:
    name: str
    patient_id: str
    birth_date: str
    sex: str
    citizen_id: str = ""


@dataclass(frozen=True)
class StudySpec:
    patient: int
    date: str
    time: str
    accession: str
    description: str
    referring: str
    series: tuple[tuple[str, int], ...]  # (modality, number of instances) per series


PATIENTS = (
    PatientSpec("Nguyễn^Văn An", "BN001", "19800101", "M", "079080001234"),
    PatientSpec("Trần^Thị Bình", "BN002", "19751231", "F", "001175009876"),
    PatientSpec("Lê^Đức Anh", "BN003", "19900615", "M"),
    PatientSpec("Phạm^Minh Đức", "BN004", "20010203", "M", "036201000111"),
    PatientSpec("NGUYEN^VAN BINH", "BN005", "19650707", "M"),
    PatientSpec("Smith^John", "EXT-77", "19500101", "M"),
)

STUDIES = (
    StudySpec(0, "20250110", "083000", "ACC1001", "CT ngực có cản quang", "Hoàng^Văn Nam",
              (("CT", 3), ("CT", 2))),
    StudySpec(0, "20260315", "141500", "ACC1002", "MR sọ não", "Hoàng^Văn Nam", (("MR", 2),)),
    StudySpec(1, "20250620", "101010", "ACC2001", "XQ phổi thẳng", "Đặng^Thu Hà", (("CR", 1),)),
    StudySpec(1, "20251201", "235900", "ACC2002", "CT bụng", "Đặng^Thu Hà",
              (("CT", 2), ("MR", 1))),
    StudySpec(2, "20260101", "000000", "ACC3001", "MR cột sống", "", (("MR", 2),)),
    StudySpec(3, "20240229", "120000", "ACC4001", "CT sọ", "Hoàng^Văn Nam", (("CT", 1),)),
    StudySpec(4, "20251111", "091500", "ACC5001", "XQ gối", "Smith^Anna", (("CR", 2),)),
    StudySpec(5, "20260701", "170000", "ACC6001", "CT chest", "Smith^Anna",
              (("CT", 1), ("CR", 1))),
)  # fmt: skip


def study_uid(study: int) -> str:
    return f"{ROOT}.1.{study + 1}"


def series_uid(study: int, series: int) -> str:
    return f"{ROOT}.2.{study + 1}.{series + 1}"


def sop_uid(study: int, series: int, instance: int) -> str:
    return f"{ROOT}.3.{study + 1}.{series + 1}.{instance + 1}"


def _instance(s: int, spec: StudySpec, r: int, modality: str, i: int) -> Dataset:
    patient = PATIENTS[spec.patient]
    ds = ct_slice(
        study_uid(s),
        series_uid(s, r),
        sop_uid(s, r, i),
        index=i,
        size=8,
        patient_name=patient.name,
        patient_id=patient.patient_id,
    )
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SOP_CLASS[modality]
    ds.Modality = modality
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    if patient.citizen_id:
        item = Dataset()
        item.PatientID = patient.citizen_id
        item.IssuerOfPatientID = "CCCD"
        item.TypeOfPatientID = "TEXT"
        ds.OtherPatientIDsSequence = [item]
    ds.IssuerOfPatientID = "BV-HUE"
    ds.StudyDate = ds.SeriesDate = spec.date
    ds.StudyTime = ds.SeriesTime = spec.time
    ds.AccessionNumber = spec.accession
    ds.StudyID = str(s + 1)
    ds.StudyDescription = spec.description
    ds.ReferringPhysicianName = spec.referring
    ds.SeriesNumber = r + 1
    ds.SeriesDescription = f"{modality} loạt {r + 1}"
    ds.BodyPartExamined = "CHEST" if modality == "CT" else "HEAD"
    ds.PatientAge = patient_age(s)  # held in no index column: answered from the stored JSON
    return ds


def patient_age(study: int) -> str:
    return f"{30 + study:03d}Y"


def populate(archive: Archive) -> int:
    """Ingest the whole generated archive through the one ingest path; return the instance count."""
    count = 0
    for s, spec in enumerate(STUDIES):
        for r, (modality, instances) in enumerate(spec.series):
            for i in range(instances):
                data = to_bytes(_instance(s, spec, r, modality, i))
                archive.ingest(io.BytesIO(data), Origin(door="test"))
                count += 1
    return count
