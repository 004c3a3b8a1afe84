"""What a HIS can ask of the workflow, independent of the protocol it used (HL7 v2 today).

The HL7 door maps a message to one of these; the workflow applies it. Values are
DICOM-ready text (a person name as ``Family^Given``, dates ``YYYYMMDD``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class OrderControl(enum.StrEnum):
    """ORC-1 order control codes we act on (HL7 table 0119)."""

    NEW = "NW"
    CHANGE = "XO"
    CANCEL = "CA"
    DISCONTINUE = "DC"


@dataclass(frozen=True)
class PatientData:
    patient_id: str
    issuer: str = ""
    citizen_id: str = ""
    name: str = ""
    birth_date: str = ""
    sex: str = ""


@dataclass(frozen=True)
class UpdatePatient:
    """ADT^A01/A04/A08/A31: create the patient or replace their demographics."""

    patient: PatientData


@dataclass(frozen=True)
class MergePatients:
    """ADT^A40: ``prior_id`` (with ``prior_issuer``) is now ``patient``."""

    patient: PatientData
    prior_id: str
    prior_issuer: str = ""


@dataclass(frozen=True)
class StepData:
    step_id: str = ""
    modality: str = ""
    station_ae: str = ""
    start_date: str = ""
    start_time: str = ""
    description: str = ""
    code: str = ""


@dataclass(frozen=True)
class OrderCommand:
    """ORM^O01 / OMI^O23: a new, changed, cancelled or discontinued order."""

    control: OrderControl
    patient: PatientData
    accession_number: str
    placer_number: str = ""
    filler_number: str = ""
    requested_procedure_id: str = ""
    procedure_description: str = ""
    procedure_code: str = ""
    referring_physician: str = ""
    priority: str = ""
    steps: tuple[StepData, ...] = ()


Command = UpdatePatient | MergePatients | OrderCommand


@dataclass
class MessageRecord:
    """A received message as it will be kept: raw text, summary, and the answer sent."""

    peer: str
    sending_app: str
    sending_facility: str
    control_id: str | None
    message_type: str
    raw: str
    summary: dict[str, Any] = field(default_factory=dict)
    ack_code: str = "AA"
    error: str = ""
    ack: str = ""
