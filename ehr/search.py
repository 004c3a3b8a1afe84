"""FHIR search requests (R4 3.1.1) as DICOM identifiers for the archive's matching engine.

The same engine answers C-FIND and QIDO-RS, so an EMR's ``ImagingStudy?patient.identifier=``
matches exactly the studies a C-FIND on OtherPatientIDsSequence would. Values are matched
exactly: FHIR tokens have no wildcards, so a ``*`` or ``?`` (DICOM wildcards) or a
backslash (DICOM's value separator) in a value is refused rather than silently widened.
Unknown parameters are ignored with a warning (lenient, the default) or refused with
``Prefer: handling=strict`` (R4 3.1.1.5.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fastapi import Request
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from ehr.identity import issuer_for_system, parse_patient_resource_id
from ehr.params import DateRange, bad, split_or, token
from ehr.resources import DCM, DICOM_UID
from pacs.settings import Settings

DEFAULT_COUNT = 20
MAX_COUNT = 200
MAX_OFFSET = 2**31
CONTROL = {"_count", "_offset", "_format"}
IGNORED_QUIETLY = {"_summary", "_elements", "_total"}  # answered in full; a warning says so
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")

STUDY_RETURN = (
    "PatientID", "IssuerOfPatientID", "PatientName", "StudyInstanceUID", "StudyDate",
    "StudyTime", "AccessionNumber", "StudyDescription", "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "ReferringPhysicianName",
)  # fmt: skip
SERIES_RETURN = (
    "StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
    "NumberOfSeriesRelatedInstances", "BodyPartExamined",
)  # fmt: skip
PATIENT_RETURN = (
    "PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate", "PatientSex",
    "OtherPatientIDsSequence",
)  # fmt: skip
_GENDER = {"male": "M", "female": "F", "other": "O"}


def identifier_with(keywords: tuple[str, ...]) -> Dataset:
    """An identifier asking for ``keywords`` back (universal matching)."""
    ds = Dataset()
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        assert tag is not None
        vr = dictionary_VR(tag)
        ds.add_new(tag, vr, [] if vr == "SQ" else None)
    return ds


def exact(value: str, what: str) -> str:
    """A value for exact matching: refuse what DICOM matching would read as wildcards or lists."""
    if not value:
        raise bad(f"{what}: an empty value")
    if any(c in value for c in "*?\\") or len(value) > 64:
        raise bad(f"{what}: a value with *, ? or \\, or over 64 characters, cannot be matched")
    return value


def uid(value: str, what: str) -> str:
    if not _UID.match(value) or len(value) > 64:
        raise bad(f"{what}: not a DICOM UID: {value[:70]!r}")
    return value


@dataclass
class Search:
    """One FHIR search: the DICOM identifier, paging, and the warnings for the client."""

    identifier: Dataset
    count: int = DEFAULT_COUNT
    offset: int = 0
    no_match: bool = False  # a condition no record can meet: answer empty without asking
    warnings: list[str] = field(default_factory=list)
    _other_ids: list[Dataset] = field(default_factory=list)

    def patient_id(self, patient_id: str, issuer: str | None) -> None:
        """Match a patient's own ID or any other identifier of it (the engine's PatientID rule)."""
        item = Dataset()
        item.PatientID = patient_id
        if issuer:
            item.IssuerOfPatientID = issuer
        self._other_ids.append(item)

    def finish(self) -> Search:
        if self._other_ids:
            self.identifier.OtherPatientIDsSequence = self._other_ids
        return self


def _strict(request: Request) -> bool:
    prefer = request.headers.get("prefer", "").replace(" ", "").lower()
    return "handling=strict" in prefer.split(";") or "handling=strict" in prefer.split(",")


def _paging(request: Request, search: Search) -> None:
    try:
        count = int(request.query_params.get("_count", DEFAULT_COUNT))
        offset = int(request.query_params.get("_offset", 0))
    except ValueError as exc:
        raise bad("_count and _offset must be integers") from exc
    if count < 0 or offset < 0:
        raise bad("_count and _offset must not be negative")
    search.count = min(count, MAX_COUNT)
    search.offset = min(offset, MAX_OFFSET)
    if request.query_params.get("_format", "json") not in (
        "json", "application/json", "application/fhir+json",
    ):  # fmt: skip
        raise bad("only JSON is served (_format=json)")


def _unknown(request: Request, name: str, search: Search) -> None:
    if _strict(request):
        raise bad(f"unknown or unsupported search parameter: {name[:64]}")
    search.warnings.append(f"parameter {name[:64]} is not supported and was ignored")


def _patient_reference(value: str, search: Search) -> None:
    alternatives = split_or(value)
    if len(alternatives) != 1:
        raise bad("patient: one patient per search")
    reference = alternatives[0].rstrip("/")
    resource_id = reference.rsplit("/", 1)[-1]
    if "/" in reference and reference.rsplit("/", 2)[-2] != "Patient":
        raise bad("patient: a reference to a Patient")
    parsed = parse_patient_resource_id(resource_id)
    if parsed is None:
        search.no_match = True
        return
    search.patient_id(parsed[0], parsed[1])


def _patient_identifier(value: str, settings: Settings, search: Search, what: str) -> None:
    alternatives = split_or(value)
    if len(alternatives) != 1:
        raise bad(f"{what}: one identifier per parameter (repeat the parameter to AND)")
    system, code = token(alternatives[0])
    code = exact(code, what)
    issuer = issuer_for_system(system, settings) if system else None
    search.patient_id(code, issuer)


def imaging_study_search(request: Request, settings: Settings) -> Search:
    """The study-level identifier of ``GET /fhir/ImagingStudy?...``."""
    search = Search(identifier_with(STUDY_RETURN))
    _paging(request, search)
    uids: list[str] | None = None
    started = DateRange()
    for name, value in request.query_params.multi_items():
        if name in CONTROL:
            continue
        if name in IGNORED_QUIETLY:
            search.warnings.append(f"{name} is not supported: full resources are returned")
        elif name == "_id":
            found = [uid(v, "_id") for v in split_or(value)]
            uids = found if uids is None else [u for u in uids if u in found]
        elif name in ("patient", "subject", "subject:Patient"):
            _patient_reference(value, search)
        elif name in ("patient.identifier", "subject:Patient.identifier", "subject.identifier"):
            _patient_identifier(value, settings, search, name)
        elif name == "identifier":
            accessions: list[str] = []
            found = []
            for alternative in split_or(value):
                system, code = token(alternative)
                if code.startswith("urn:oid:") and system in (None, "", DICOM_UID):
                    found.append(uid(code[len("urn:oid:") :], name))
                elif system == DICOM_UID:
                    found.append(uid(code, name))
                else:
                    accessions.append(exact(code, name))
            if (accessions and found) or len(accessions) > 1:
                raise bad("identifier: one accession number, or study UIDs, per parameter")
            if accessions:
                search.identifier.AccessionNumber = accessions[0]
            else:
                uids = found if uids is None else [u for u in uids if u in found]
        elif name == "started":
            started.narrow(value)
        elif name == "modality":
            codes = []
            for alternative in split_or(value):
                system, code = token(alternative)
                if system in (None, "", DCM):
                    codes.append(exact(code, name))
            if not codes:
                search.no_match = True
            else:
                search.identifier.ModalitiesInStudy = codes
        else:
            _unknown(request, name, search)
    if uids is not None:
        if not uids:
            search.no_match = True
        else:
            search.identifier.StudyInstanceUID = uids
    if started.empty:
        search.no_match = True
    elif started.low or started.high:
        search.identifier.StudyDate = started.dicom()
    return search.finish()


def patient_search(request: Request, settings: Settings) -> Search:
    """The patient-level identifier of ``GET /fhir/Patient?...``."""
    search = Search(identifier_with(PATIENT_RETURN))
    _paging(request, search)
    birth = DateRange()
    for name, value in request.query_params.multi_items():
        if name in CONTROL:
            continue
        if name in IGNORED_QUIETLY:
            search.warnings.append(f"{name} is not supported: full resources are returned")
        elif name == "_id":
            _patient_reference(value, search)
        elif name == "identifier":
            _patient_identifier(value, settings, search, name)
        elif name in ("name", "family", "given"):
            if any(c in value for c in "*?\\"):
                raise bad(f"{name}: a value with *, ? or \\ cannot be matched")
            current = str(search.identifier.get("PatientName", "") or "")
            search.identifier.PatientName = f"{current} {value}".strip()[:324]
        elif name == "birthdate":
            birth.narrow(value)
        elif name == "gender":
            codes = [_GENDER.get(v) for v in split_or(value)]
            if any(c is None for c in codes):
                search.no_match = not any(codes)
            chosen = [c for c in codes if c]
            if chosen:
                search.identifier.PatientSex = "\\".join(chosen)
        else:
            _unknown(request, name, search)
    if birth.empty:
        search.no_match = True
    elif birth.low or birth.high:
        search.identifier.PatientBirthDate = birth.dicom()
    return search.finish()
