"""How a DICOM patient (PatientID + IssuerOfPatientID) and its other identifiers look in FHIR.

A FHIR logical id is at most 64 of ``[A-Za-z0-9.-]``; a PatientID is any text of up
to 64 characters. The id is therefore the lower-case base32 of
``issuer \\ PatientID`` (a backslash cannot occur in either value): reversible
without a lookup table, so ``Patient/{id}`` and ``patient=`` become an ordinary
PatientID match in the archive's engine. Patients whose issuer and ID together
exceed 40 bytes get no id (their resources still carry identifiers).
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import quote, unquote

from pacs.settings import Settings

_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_ID = re.compile(r"^[a-z2-7]{1,64}$")
ISSUER_PREFIX = "urn:pacs:issuer:"
MAX_ID = 64


def patient_resource_id(patient_id: str, issuer: str) -> str | None:
    """The Patient's logical id, or None when the pair is too long for one."""
    raw = f"{issuer}\\{patient_id}".encode()
    encoded = base64.b32encode(raw).decode().rstrip("=").lower()
    return encoded if len(encoded) <= MAX_ID else None


def parse_patient_resource_id(resource_id: str) -> tuple[str, str] | None:
    """(PatientID, issuer) of a logical id made by :func:`patient_resource_id`; None if not one."""
    if not _ID.match(resource_id):
        return None
    padded = resource_id.upper() + "=" * (-len(resource_id) % 8)
    try:
        text = base64.b32decode(padded).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    issuer, sep, patient_id = text.partition("\\")
    if not sep or not patient_id or "\\" in patient_id:
        return None
    return patient_id, issuer


def system_for_issuer(issuer: str, settings: Settings) -> str:
    """The identifier system of an IssuerOfPatientID: the citizen ID's configured URI, an OID
    as ``urn:oid:``, a URI as it is, otherwise a URN naming the issuer."""
    if not issuer:
        return settings.fhir_patient_id_system
    if issuer == settings.fhir_citizen_id_issuer:
        return settings.fhir_citizen_id_system
    if _OID.match(issuer):
        return f"urn:oid:{issuer}"
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", issuer):
        return issuer
    return ISSUER_PREFIX + quote(issuer, safe="")


def issuer_for_system(system: str, settings: Settings) -> str | None:
    """The IssuerOfPatientID a system stands for; None means any issuer (PatientID's default)."""
    if system == settings.fhir_patient_id_system:
        return None
    if system == settings.fhir_citizen_id_system:
        return settings.fhir_citizen_id_issuer
    if system.startswith("urn:oid:"):
        return system[len("urn:oid:") :]
    if system.startswith(ISSUER_PREFIX):
        return unquote(system[len(ISSUER_PREFIX) :])
    return system
