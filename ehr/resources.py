"""Matches of the archive's search (DICOM JSON) as FHIR R4 resources (fhir.resources.R4B).

Each builder returns a validated model: a resource that breaks FHIR's rules
fails here, in our tests, rather than in the EMR.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.patient import Patient

from ehr.identity import patient_resource_id, system_for_issuer
from pacs.settings import Settings

DCM = "http://dicom.nema.org/resources/ontology/DCM"
DICOM_UID = "urn:dicom:uid"
RFC3986 = "urn:ietf:rfc:3986"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
CONNECTION_TYPE = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
ENDPOINT_ID = "dicomweb"
_GENDER = {"M": "male", "F": "female", "O": "other"}

Json = dict[str, dict[str, Any]]


def first(item: Json, tag: str) -> Any:
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def values(item: Json, tag: str) -> list[Any]:
    return list(item.get(tag, {}).get("Value") or [])


def text(item: Json, tag: str) -> str:
    value = first(item, tag)
    return "" if value is None else str(value).strip()


def human_name(item: Json) -> dict[str, Any] | None:
    """PatientName (PS3.5 6.2: family^given^middle^prefix^suffix) as a HumanName.

    Vietnamese order is family, middle, given ("Nguyễn Văn An"), which is DICOM's
    family^given order with the given names' words kept in sequence; diacritics
    stay as stored (UTF-8 inside).
    """
    name = first(item, "00100010")
    alphabetic = (name or {}).get("Alphabetic", "") if isinstance(name, dict) else ""
    if not alphabetic:
        return None
    parts = (alphabetic.split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = (p.strip() for p in parts)
    given_words = (given + " " + middle).split()
    result: dict[str, Any] = {
        "use": "official",
        "text": " ".join(w for w in [family, *given_words] if w),
    }
    if family:
        result["family"] = family
    if given_words:
        result["given"] = given_words
    if prefix:
        result["prefix"] = [prefix]
    if suffix:
        result["suffix"] = [suffix]
    return result


def patient_identifiers(item: Json, settings: Settings) -> list[dict[str, Any]]:
    """PatientID with its issuer as system (type MR), then OtherPatientIDsSequence (the
    citizen ID under its configured system, type NI)."""
    found: list[dict[str, Any]] = []
    patient_id = text(item, "00100020")
    if patient_id:
        found.append(
            {
                "use": "usual",
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                "system": system_for_issuer(text(item, "00100021"), settings),
                "value": patient_id,
            }
        )
    for other in values(item, "00101002"):
        value = text(other, "00100020")
        if not value:
            continue
        issuer = text(other, "00100021")
        code = "NI" if issuer == settings.fhir_citizen_id_issuer else "RI"
        coding = [{"system": V2_0203, "code": code}]
        national_system, _, national_code = settings.fhir_citizen_id_type.partition("|")
        if code == "NI" and national_system and national_code:
            coding.append({"system": national_system, "code": national_code})
        found.append(
            {
                "use": "official" if code == "NI" else "secondary",
                "type": {"coding": coding},
                "system": system_for_issuer(issuer, settings),
                "value": value,
            }
        )
    return found


def patient_reference(item: Json) -> dict[str, Any]:
    resource_id = patient_resource_id(text(item, "00100020"), text(item, "00100021"))
    reference: dict[str, Any] = {"type": "Patient"}
    if resource_id:
        reference["reference"] = f"Patient/{resource_id}"
    name = human_name(item)
    if name:
        reference["display"] = name["text"]
    return reference


def patient(item: Json, settings: Settings) -> Patient:
    """A Patient from a patient-level match (IDs, name, birth date, sex)."""
    data: dict[str, Any] = {"active": True}
    if settings.fhir_profile_patient:
        data["meta"] = {"profile": [settings.fhir_profile_patient]}
    resource_id = patient_resource_id(text(item, "00100020"), text(item, "00100021"))
    if resource_id:
        data["id"] = resource_id
    identifiers = patient_identifiers(item, settings)
    if identifiers:
        data["identifier"] = identifiers
    name = human_name(item)
    if name:
        data["name"] = [name]
    birth = text(item, "00100030")
    if len(birth) == 8 and birth.isdigit():
        data["birthDate"] = f"{birth[:4]}-{birth[4:6]}-{birth[6:]}"
    data["gender"] = _GENDER.get(text(item, "00100040").upper(), "unknown")
    return Patient(**data)


def started(item: Json, settings: Settings) -> str | None:
    """StudyDate + StudyTime as a FHIR dateTime; a time needs an offset, so the archive's
    configured zone (``fhir_timezone``) is applied; a date alone stays a date."""
    day = text(item, "00080020")
    if len(day) != 8 or not day.isdigit():
        return None
    clock = text(item, "00080030").replace(":", "")
    digits = clock.split(".")[0]
    if len(digits) < 2 or not digits.isdigit():
        return f"{day[:4]}-{day[4:6]}-{day[6:]}"
    digits = (digits + "0000")[:6]
    try:
        moment = datetime.strptime(day + digits, "%Y%m%d%H%M%S").replace(
            tzinfo=ZoneInfo(settings.fhir_timezone)
        )
    except ValueError:
        return f"{day[:4]}-{day[4:6]}-{day[6:]}"
    return moment.isoformat()


def imaging_study(
    study: Json,
    series: list[Json],
    instances: dict[str, list[dict[str, Any]]],
    settings: Settings,
    endpoint_ref: str,
) -> dict[str, Any]:
    """An ImagingStudy (JSON) from a study match, its series matches and the instance
    elements of each series (:func:`instance_element`, by Series Instance UID).

    Everything but the instance elements is validated by fhir.resources; those are
    added to the validated resource's JSON afterwards: a page of 20 CT studies has 4,000
    of them, and validating and dumping them through the models took 0.85 s of the 1.3 s
    of such a search at 1,000,000 instances (bench.fhir); their shape is fixed here, and
    the tests validate whole answers with the models."""
    uid = text(study, "0020000D")
    identifiers: list[dict[str, Any]] = [
        {"use": "official", "system": DICOM_UID, "value": f"urn:oid:{uid}"}
    ]
    accession = text(study, "00080050")
    if accession:
        identifiers.append(
            {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": accession}
        )
    data: dict[str, Any] = {
        "id": uid,
        "status": "available",
        "identifier": identifiers,
        "subject": patient_reference(study),
        "endpoint": [{"reference": endpoint_ref, "type": "Endpoint"}],
        "modality": [{"system": DCM, "code": code} for code in values(study, "00080061")],
        "numberOfSeries": int(first(study, "00201206") or len(series)),
        "numberOfInstances": int(first(study, "00201208") or 0),
    }
    if settings.fhir_profile_imaging_study:
        data["meta"] = {"profile": [settings.fhir_profile_imaging_study]}
    when = started(study, settings)
    if when:
        data["started"] = when
    description = text(study, "00081030")
    if description:
        data["description"] = description
    referrer = first(study, "00080090")
    if isinstance(referrer, dict) and referrer.get("Alphabetic"):
        data["referrer"] = {"display": referrer["Alphabetic"].replace("^", " ").strip()}
    data["series"] = [_series(item, instances.get(text(item, "0020000E"), [])) for item in series]
    if not data["modality"]:
        del data["modality"]
    resource = ImagingStudy(**data).model_dump(mode="json", exclude_none=True)
    for element in resource.get("series", []):
        found = instances.get(element["uid"])
        if found:
            element["instance"] = found
    return resource


def instance_element(
    sop_instance_uid: str, sop_class_uid: str, number: int | None
) -> dict[str, Any]:
    """An ImagingStudy.series.instance element (uid, sopClass as a URN, number)."""
    element: dict[str, Any] = {
        "uid": sop_instance_uid,
        "sopClass": {"system": RFC3986, "code": f"urn:oid:{sop_class_uid}"},
    }
    if number is not None:
        element["number"] = number
    return element


def _series(item: Json, instances: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "uid": text(item, "0020000E"),
        "modality": {"system": DCM, "code": text(item, "00080060") or "OT"},
        "numberOfInstances": int(first(item, "00201209") or len(instances)),
    }
    number = first(item, "00200011")
    if number is not None:
        data["number"] = int(number)
    description = text(item, "0008103E")
    if description:
        data["description"] = description
    body_part = text(item, "00180015")
    if body_part:
        data["bodySite"] = {"display": body_part}  # a DICOM defined term, no code system
    return data


def endpoint(dicomweb_root: str) -> Endpoint:
    """The archive's DICOMweb service (WADO-RS; QIDO-RS and STOW-RS at the same root)."""
    return Endpoint.model_validate(
        {
            "id": ENDPOINT_ID,
            "status": "active",
            "name": "DICOMweb",
            "connectionType": {"system": CONNECTION_TYPE, "code": "dicom-wado-rs"},
            "payloadType": [
                {
                    "coding": [
                        {"system": "http://hl7.org/fhir/endpoint-payload-type", "code": "DICOM"}
                    ]
                }
            ],
            "payloadMimeType": ["application/dicom"],
            "address": dicomweb_root,
        }
    )
