"""Where each value of a patient or an order is read from: the configurable field mapping.

Hospitals' HIS do not agree on where the accession number or the modality goes
(OBR-18, OBR-3, IPC-1; OBR-24 or a local Z field), so each value the door needs
is a *target* read from an ordered list of HL7 locations, the first non-empty
one winning. The defaults work for common HIS; a site overrides any target with
``PACS_HL7_FIELDS`` (JSON, e.g. ``{"accession_number": ["OBR-3", "ORC-3"]}``) or
``hl7_fields`` in the TOML file, checked when the settings load.

A location is ``SEG-N`` (first component of the first repetition of field N),
``SEG-N.C`` (component C) or ``SEG-N.C.S`` (subcomponent S): the notation of
HL7 interface specifications, so an integrator can copy it from one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import hl7

LOCATION = re.compile(
    r"^([A-Z][A-Z0-9]{2})-([1-9][0-9]{0,2})(?:\.([1-9][0-9]?))?(?:\.([1-9][0-9]?))?$"
)

# Target -> locations tried in order. Names (XCN) are read from the field's 2nd component on.
DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "accession_number": ("OBR-18", "IPC-1", "ORC-3", "OBR-3"),
    "placer_number": ("ORC-2", "OBR-2"),
    "filler_number": ("ORC-3", "OBR-3"),
    "requested_procedure_id": ("IPC-2",),
    "step_id": ("IPC-4",),
    "modality": ("IPC-5", "OBR-24"),
    "station_ae": ("IPC-9",),
    "scheduled_time": ("ORC-7.4", "OBR-27.4", "TQ1-7", "OBR-36"),
    "priority": ("ORC-7.6", "OBR-27.6", "TQ1-9"),
    "procedure_code": ("OBR-4.1",),
    "procedure_description": ("OBR-4.2",),
    "referring_physician": ("ORC-12", "OBR-16"),
}


class FieldMappingError(ValueError):
    """A configured mapping names an unknown target or a location that is not ``SEG-N[.C[.S]]``."""


def accessor(location: str) -> str:
    """``OBR-4.2`` -> python-hl7's ``OBR.F4.R1.C2``; :class:`FieldMappingError` when malformed."""
    found = LOCATION.match(location.strip().upper())
    if found is None:
        raise FieldMappingError(f"{location!r} is not an HL7 location like OBR-18 or ORC-7.4")
    segment, number, component, sub = found.groups()
    path = f"{segment}.F{number}.R1.C{component or 1}"
    return f"{path}.S{sub}" if sub else path


def field_of(location: str) -> str:
    """The field a location belongs to (``ORC-7.4`` -> ``ORC-7``), as ERR segments name it."""
    return location.split(".")[0].upper()


@dataclass(frozen=True)
class FieldMapping:
    """The locations of every target, defaults overridden by the site's configuration."""

    locations: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    citizen_id_type: str = "NI"  # the PID-3 identifier type (CX-5) that is the citizen ID
    patient_id_type: str = ""  # the CX-5 type of the hospital's PatientID; empty: the first other

    @classmethod
    def configured(
        cls,
        overrides: Mapping[str, list[str]] | None = None,
        *,
        citizen_id_type: str = "NI",
        patient_id_type: str = "",
    ) -> FieldMapping:
        """The defaults with ``overrides`` applied; raises :class:`FieldMappingError`."""
        locations = dict(DEFAULT_FIELDS)
        for target, values in (overrides or {}).items():
            if target not in DEFAULT_FIELDS:
                known = ", ".join(sorted(DEFAULT_FIELDS))
                raise FieldMappingError(f"unknown HL7 mapping target {target!r} (known: {known})")
            if not values:
                raise FieldMappingError(f"HL7 mapping target {target!r} names no location")
            for value in values:
                accessor(value)
            locations[target] = tuple(value.strip().upper() for value in values)
        return cls(locations, citizen_id_type.upper(), patient_id_type.upper())

    def first(self, message: hl7.Message, target: str) -> str:
        """The first non-empty value of ``target`` in ``message``, "" when none."""
        for location in self.locations[target]:
            value = read(message, accessor(location))
            if value:
                return value
        return ""

    def where(self, target: str) -> str:
        """The field named in an error about ``target`` (its first configured location)."""
        return field_of(self.locations[target][0])


def read(message: hl7.Message, path: str) -> str:
    """The value at a python-hl7 ``path``, "" when the segment or field is absent."""
    try:
        return str(message[path]).strip()
    except (KeyError, IndexError):
        return ""
