"""Audit records as DICOM audit messages (PS3.15 A.5, the RFC 3881-derived schema).

Hospital security information systems and audit record repositories (ATNA)
read these; the mapping from our action names to DICOM event IDs lives here.
"""

from __future__ import annotations

from datetime import UTC
from typing import NamedTuple
from xml.etree import ElementTree as ET

from pacs.audit.models import AuditEvent


class EventCode(NamedTuple):
    code: str
    meaning: str
    action: str  # C create, R read, U update, D delete, E execute


EVENTS: dict[str, EventCode] = {
    "c-store": EventCode("110104", "DICOM Instances Transferred", "C"),
    "stow": EventCode("110104", "DICOM Instances Transferred", "C"),
    "import": EventCode("110107", "Import", "C"),
    "wado": EventCode("110104", "DICOM Instances Transferred", "R"),
    "c-move": EventCode("110104", "DICOM Instances Transferred", "R"),
    "c-get": EventCode("110104", "DICOM Instances Transferred", "R"),
    "qido": EventCode("110112", "Query", "E"),
    "c-find": EventCode("110112", "Query", "E"),
    "export": EventCode("110106", "Export", "R"),
    "delete": EventCode("110105", "DICOM Study Deleted", "D"),
    "login": EventCode("110114", "User Authentication", "E"),
    "audit-read": EventCode("110101", "Audit Log Used", "R"),
}
DEFAULT_EVENT = EventCode("110113", "Security Alert", "E")  # account and share changes


def _event_code(action: str) -> EventCode:
    if action.startswith("share-open"):
        return EventCode("110103", "DICOM Instances Accessed", "R")
    return EVENTS.get(action, DEFAULT_EVENT)


def _coded(parent: ET.Element, tag: str, code: str, meaning: str, system: str = "DCM") -> None:
    ET.SubElement(
        parent, tag, {"csd-code": code, "codeSystemName": system, "originalText": meaning}
    )


def audit_message(event: AuditEvent, source_id: str) -> ET.Element:
    code = _event_code(event.action)
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
    outcome = "0" if event.outcome == "success" else "4"  # 0 success, 4 minor failure
    message = ET.Element("AuditMessage")
    identification = ET.SubElement(
        message,
        "EventIdentification",
        {
            "EventActionCode": code.action,
            "EventDateTime": at.astimezone(UTC).isoformat(),
            "EventOutcomeIndicator": outcome,
        },
    )
    _coded(identification, "EventID", code.code, code.meaning)
    if outcome != "0":
        ET.SubElement(identification, "EventOutcomeDescription").text = event.outcome
    host, _, _ = event.address.partition(":")
    participant = ET.SubElement(
        message,
        "ActiveParticipant",
        {
            "UserID": event.actor,
            "UserIsRequestor": "true",
            **({"NetworkAccessPointID": host, "NetworkAccessPointTypeCode": "2"} if host else {}),
        },
    )
    if event.actor_kind == "ae":
        _coded(participant, "RoleIDCode", "110153", "Source Role ID")
    ET.SubElement(message, "AuditSourceIdentification", {"AuditSourceID": source_id})
    if event.patient_id:
        patient = ET.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": event.patient_id,
                "ParticipantObjectTypeCode": "1",
                "ParticipantObjectTypeCodeRole": "1",
            },
        )
        _coded(patient, "ParticipantObjectIDTypeCode", "2", "Patient Number", "RFC-3881")
    if event.study_uid:
        study = ET.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": event.study_uid,
                "ParticipantObjectTypeCode": "2",
                "ParticipantObjectTypeCodeRole": "3",
            },
        )
        _coded(study, "ParticipantObjectIDTypeCode", "110180", "Study Instance UID")
    return message


def to_xml(event: AuditEvent, source_id: str) -> str:
    return ET.tostring(audit_message(event, source_id), encoding="unicode")
