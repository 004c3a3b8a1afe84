"""HL7 v2 messages to workflow commands, through the site's field mapping (hl7v2.fields).

The defaults below work for common HIS; every order value and the PID-3 identifier
types are configurable (``PACS_HL7_FIELDS``, ``PACS_HL7_CITIZEN_ID_TYPE``,
``PACS_HL7_PATIENT_ID_TYPE``).

* PID-3 repetitions: the identifier of type NI (configurable) is the citizen ID;
  the first other one is the hospital's PatientID, its assigning authority
  (CX-4) the issuer. PID-5 ``family^given^middle^suffix^prefix`` becomes the
  DICOM name ``family^given^middle^prefix^suffix``; PID-7 birth date; PID-8 sex.
* ADT^A01/A04/A08/A31 update the patient; ADT^A40 merges MRG-1 into PID-3.
* ORM^O01 and OMI^O23: ORC-1 (NW, XO, CA, DC) is what to do; the accession
  number is OBR-18, else IPC-1, else the filler order number (ORC-3/OBR-3);
  modality OBR-24 (IPC-5 wins); scheduled time ORC-7.4, else OBR-27.4, TQ1-7,
  OBR-36; the procedure OBR-4; the referring physician ORC-12, else OBR-16.

Every refusal names its field (an :class:`~hl7v2.codec.Hl7Error`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import hl7

from hl7v2.codec import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_EVENT,
    UNSUPPORTED_MESSAGE_TYPE,
    Hl7Error,
)
from hl7v2.fields import FieldMapping, field_of, read
from pacs.workflow import (
    MergePatients,
    OrderCommand,
    OrderControl,
    PatientData,
    UpdatePatient,
)
from pacs.workflow.commands import Command, StepData

PATIENT_EVENTS = {"A01", "A04", "A08", "A31"}
ORDER_TYPES = {("ORM", "O01"), ("OMI", "O23")}
SEX = {"M": "M", "F": "F", "O": "O", "U": "", "A": "O", "N": "", "": ""}
PRIORITY = {"S": "STAT", "A": "HIGH", "R": "ROUTINE", "P": "ROUTINE", "T": "HIGH"}
LIMITS = {"PatientID": 64, "AccessionNumber": 16, "Modality": 16, "StationAE": 16}


def get(message: hl7.Message, path: str) -> str:
    """The value at ``path`` (python-hl7 accessor, e.g. ``PID.F5.R1.C1``), "" when absent."""
    return read(message, path)


def has(message: hl7.Message, segment: str) -> bool:
    try:
        message.segment(segment)
    except KeyError:
        return False
    return True


def message_type(message: hl7.Message) -> tuple[str, str]:
    return get(message, "MSH.F9.R1.C1").upper(), get(message, "MSH.F9.R1.C2").upper()


def command(message: hl7.Message, fields: FieldMapping | None = None) -> Command:
    """The workflow command for ``message``; :class:`Hl7Error` when it cannot be one."""
    fields = fields or FieldMapping()
    kind, event = message_type(message)
    if not kind:
        raise Hl7Error("MSH-9 names no message type", "MSH-9", REQUIRED_FIELD_MISSING, "AR")
    if kind == "ADT":
        if event in PATIENT_EVENTS:
            return UpdatePatient(patient(message, fields))
        if event == "A40":
            return merge(message, fields)
        raise Hl7Error(f"ADT event {event!r} is not handled", "MSH-9", UNSUPPORTED_EVENT, "AR")
    if (kind, event) in ORDER_TYPES:
        return order(message, fields)
    raise Hl7Error(
        f"message type {kind}^{event} is not handled", "MSH-9", UNSUPPORTED_MESSAGE_TYPE, "AR"
    )


def _require(message: hl7.Message, segment: str) -> None:
    if not has(message, segment):
        raise Hl7Error(f"the {segment} segment is missing", segment, SEGMENT_SEQUENCE_ERROR)


def _limit(value: str, keyword: str, field: str) -> str:
    if len(value) > LIMITS[keyword]:
        raise Hl7Error(
            f"{field} is longer than {LIMITS[keyword]} characters ({keyword})",
            field,
            DATA_TYPE_ERROR,
        )
    return value


def patient(message: hl7.Message, fields: FieldMapping | None = None) -> PatientData:
    """The patient of PID: the identifier of type ``citizen_id_type`` is the citizen ID; the
    hospital's PatientID is the one of type ``patient_id_type``, else the first other one."""
    fields = fields or FieldMapping()
    _require(message, "PID")
    pid = message.segment("PID")
    citizen = ""
    candidates: list[tuple[str, str, str]] = []  # (value, issuer, type) in PID-3 order
    repetitions = len(pid(3)) if len(pid) > 3 else 0
    for n in range(1, min(repetitions, 20) + 1):
        value = get(message, f"PID.F3.R{n}.C1")
        authority = get(message, f"PID.F3.R{n}.C4.S1")
        id_type = get(message, f"PID.F3.R{n}.C5").upper()
        if not value:
            continue
        if id_type == fields.citizen_id_type:
            citizen = citizen or value
        else:
            candidates.append((value, authority, id_type))
    typed = [c for c in candidates if fields.patient_id_type and c[2] == fields.patient_id_type]
    patient_id, issuer, _ = (typed or candidates or [("", "", "")])[0]
    if not patient_id:
        raise Hl7Error("PID-3 holds no patient identifier", "PID-3", REQUIRED_FIELD_MISSING)
    _limit(patient_id, "PatientID", "PID-3")
    sex = get(message, "PID.F8").upper()
    if sex not in SEX:
        raise Hl7Error(f"PID-8 sex {sex!r} is not in table 0001", "PID-8", TABLE_VALUE_NOT_FOUND)
    birth = get(message, "PID.F7.R1.C1")[:8]
    if birth and not (birth.isdigit() and len(birth) == 8):
        raise Hl7Error(f"PID-7 birth date {birth!r} is not YYYYMMDD", "PID-7", DATA_TYPE_ERROR)
    return PatientData(
        patient_id=patient_id,
        issuer=issuer[:64],
        citizen_id=citizen[:64],
        name=person_name(message, "PID.F5.R1"),
        birth_date=birth,
        sex=SEX[sex],
    )


def person_name(message: hl7.Message, path: str, first: int = 1) -> str:
    """XPN (or XCN from component ``first``) to a DICOM PN: family^given^middle^prefix^suffix."""
    parts = [get(message, f"{path}.C{first + n}") for n in range(5)]
    family, given, middle, suffix, prefix = parts
    return "^".join([family, given, middle, prefix, suffix]).rstrip("^")


def merge(message: hl7.Message, fields: FieldMapping) -> MergePatients:
    survivor = patient(message, fields)
    _require(message, "MRG")
    prior = get(message, "MRG.F1.R1.C1")
    if not prior:
        raise Hl7Error("MRG-1 names no prior patient identifier", "MRG-1", REQUIRED_FIELD_MISSING)
    _limit(prior, "PatientID", "MRG-1")
    return MergePatients(survivor, prior, get(message, "MRG.F1.R1.C4.S1")[:64])


def order(message: hl7.Message, fields: FieldMapping) -> OrderCommand:
    """The order of ORC/OBR (and IPC), each value read where the site's mapping says."""
    the_patient = patient(message, fields)
    _require(message, "ORC")
    control = get(message, "ORC.F1").upper()
    try:
        action = OrderControl(control)
    except ValueError:
        raise Hl7Error(
            f"order control {control!r} is not handled (NW, XO, CA, DC)",
            "ORC-1",
            TABLE_VALUE_NOT_FOUND,
        ) from None
    _require(message, "OBR")
    value = partial(fields.first, message)
    accession = value("accession_number")
    if not accession:
        where = ", ".join(fields.locations["accession_number"])
        raise Hl7Error(
            f"no accession number (looked in {where})",
            fields.where("accession_number"),
            REQUIRED_FIELD_MISSING,
        )
    _limit(accession, "AccessionNumber", fields.where("accession_number"))
    modality = value("modality").upper()
    _limit(modality, "Modality", fields.where("modality"))
    when = value("scheduled_time")
    digits = when.split("+")[0].split("-")[0]
    if digits and (not digits[:8].isdigit() or len(digits) < 8):
        where = fields.where("scheduled_time")
        raise Hl7Error(f"scheduled time {when!r} is not a date", where, DATA_TYPE_ERROR)
    priority = value("priority")
    step = StepData(
        step_id=value("step_id")[:16],
        modality=modality,
        station_ae=_limit(value("station_ae"), "StationAE", fields.where("station_ae")),
        start_date=digits[:8],
        start_time=digits[8:14],
        description=value("procedure_description")[:64],
        code=value("procedure_code")[:64],
    )
    return OrderCommand(
        control=action,
        patient=the_patient,
        accession_number=accession,
        placer_number=value("placer_number")[:64],
        filler_number=value("filler_number")[:64],
        requested_procedure_id=(value("requested_procedure_id") or accession)[:16],
        procedure_description=step.description,
        procedure_code=step.code,
        referring_physician=_referring(message, fields),
        priority=PRIORITY.get(priority.upper()[:1], "") if priority else "",
        steps=(step,),
    )


def _referring(message: hl7.Message, fields: FieldMapping) -> str:
    """The first referring physician (XCN: the name from the 2nd component on) found."""
    for location in fields.locations["referring_physician"]:
        segment, number = field_of(location).split("-")
        name = person_name(message, f"{segment}.F{number}.R1", first=2)
        if name:
            return name
    return ""


def summary(cmd: Command) -> dict[str, Any]:
    """What we understood, for the message list (an administrator's view)."""
    if isinstance(cmd, UpdatePatient):
        return {"action": "update-patient", "patient": vars(cmd.patient)}
    if isinstance(cmd, MergePatients):
        return {
            "action": "merge-patients",
            "patient": vars(cmd.patient),
            "prior_id": cmd.prior_id,
            "prior_issuer": cmd.prior_issuer,
        }
    return {
        "action": f"order-{cmd.control.name.lower()}",
        "accession_number": cmd.accession_number,
        "patient": vars(cmd.patient),
        "modality": cmd.steps[0].modality if cmd.steps else "",
        "scheduled": cmd.steps[0].start_date + cmd.steps[0].start_time if cmd.steps else "",
    }
