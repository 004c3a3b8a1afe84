"""The CapabilityStatement (R4 2.37) at ``/fhir/metadata``: what an EMR may ask of this door."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from pacs import __version__

FHIR_VERSION = "4.0.1"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def _param(name: str, kind: str, documentation: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "documentation": documentation}


def _resource(kind: str, params: list[dict[str, Any]], documentation: str) -> dict[str, Any]:
    return {
        "type": kind,
        "documentation": documentation,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": params,
    }


def capability_statement(
    base: str, published: str, profiles: dict[str, str] | None = None
) -> CapabilityStatement:
    """This server's statement; ``base`` is the FHIR base URL, ``published`` an ISO date,
    ``profiles`` the profile each resource type follows (supportedProfile; "" for none)."""
    count = _param("_count", "number", "page size (at most 200); Bundle.link next/previous page")
    resources = [
        _resource(
            "ImagingStudy",
            [
                _param("_id", "token", "Study Instance UID (the resource id)"),
                _param("patient", "reference", "Patient/{id}"),
                _param(
                    "patient.identifier",
                    "token",
                    "system|value: PatientID (system from its issuer) or another identifier "
                    "of the patient, the citizen ID among them",
                ),
                _param("identifier", "token", "accession number, or urn:dicom:uid|urn:oid:UID"),
                _param("started", "date", "study date, prefixes eq ge gt le lt sa eb"),
                _param("modality", "token", "DICOM modality (DCM system), comma for OR"),
                count,
            ],
            "Series and instances included; endpoint: the DICOMweb (WADO-RS) base URL.",
        ),
        _resource(
            "Patient",
            [
                _param("_id", "token", "the logical id"),
                _param("identifier", "token", "system|value, the citizen ID among them"),
                _param("name", "string", "any words of the name, accents optional"),
                _param("birthdate", "date", "prefixes eq ge gt le lt sa eb"),
                _param("gender", "token", "male, female, other"),
                count,
            ],
            "Names keep their Vietnamese diacritics (HumanName family, given and text).",
        ),
        _resource("Endpoint", [count], "The DICOMweb service (dicom-wado-rs)."),
        _resource(
            "DiagnosticReport",
            [
                _param("_id", "token", "the report's id"),
                _param("patient", "reference", "Patient/{id}"),
                _param("subject", "reference", "Patient/{id}"),
                _param("study", "token", "Study Instance UID (this server's own parameter)"),
                count,
            ],
            "Signed radiology reports (final, preliminary while a second reader's approval is "
            "pending, appended once an addendum is signed); presentedForm is the signed PDF.",
        ),
    ]
    for resource in resources:
        profile = (profiles or {}).get(resource["type"])
        if profile:
            resource["supportedProfile"] = [profile]
    return CapabilityStatement.model_validate(
        {
            "status": "active",
            "date": published,
            "kind": "instance",
            "publisher": "PACS",
            "software": {"name": "PACS", "version": __version__},
            "implementation": {"description": "PACS FHIR door", "url": base},
            "fhirVersion": FHIR_VERSION,
            "format": ["json"],
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "cors": True,
                        "service": [
                            {
                                "coding": [
                                    {
                                        "system": SECURITY_SERVICE,
                                        "code": "SMART-on-FHIR",
                                    }
                                ]
                            }
                        ],
                        "extension": [
                            {
                                "url": OAUTH_URIS,
                                "extension": [{"url": "token", "valueUri": f"{base}/auth/token"}],
                            }
                        ],
                        "description": "The same authentication as DICOMweb: bearer tokens, HTTP "
                        "Basic or a session; a client app gets a token by the client credentials "
                        "grant (see .well-known/smart-configuration) whose SMART scopes "
                        "(system/ or user/ Type.rs) say what it may read; every search and read "
                        "is audited.",
                    },
                    "resource": resources,
                }
            ],
        }
    )
