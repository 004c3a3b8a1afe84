"""Order status back to the HIS (issue 16 item 7): ORC-1 ``SC`` over MLLP, as jobs.

The site chooses the message (``PACS_HL7_STATUS_MESSAGE``): ``ORM`` sends ORM^O01, what
most HIS of the v2.3 generation expect; ``OMI`` sends OMI^O23 with its IPC segment
(accession, requested procedure, step, modality), what an imaging-aware HIS built on
v2.5's OMI/ORI pair expects.

When a modality's MPPS moves an order (in progress, completed, discontinued) a
job is queued in the same transaction; it sends the HIS an ORM^O01 status
change (ORC-5 from HL7 table 0038: IP, CM, DC) with python-hl7's MLLP client and
expects an AA. Anything else fails the job: it retries with backoff and ends in
the dead letters (``GET /api/jobs?state=dead``) where an administrator can retry
it. Off unless ``PACS_HL7_HIS_HOST`` and ``PACS_HL7_HIS_PORT`` name the HIS.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any

import hl7
from hl7.client import MLLPClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.workflow_models import ImagingOrder, StudyOrder
from pacs.jobs import Jobs

log = logging.getLogger(__name__)

JOB = "hl7-order-status"
ORDER_STATUS_CODE = {
    "scheduled": "SC",
    "in progress": "IP",
    "completed": "CM",
    "discontinued": "DC",
}


class OrderStatusOut:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        jobs: Jobs,
        *,
        host: str = "",
        port: int = 0,
        application: str = "PACS",
        facility: str = "",
        message_type: str = "ORM",
    ) -> None:
        self.sessions = sessions
        self.jobs = jobs
        self.host = host
        self.port = port
        self.application = application
        self.facility = facility
        if message_type not in ("ORM", "OMI"):
            raise ValueError(f"order status message {message_type!r} is neither ORM nor OMI")
        self.message_type = message_type
        jobs.handle(JOB, self._job, backoff_s=30.0)

    @property
    def enabled(self) -> bool:
        return bool(self.host and self.port)

    def queue(self, session: Session, accession: str, status: str) -> None:
        """Queue the status message in ``session`` (sent once the caller commits)."""
        if not self.enabled or status not in ORDER_STATUS_CODE:
            return
        self.jobs.queue.enqueue(
            JOB,
            {"accession": accession, "status": status},
            dedup_key=f"order-status:{accession}:{status}",
            max_attempts=10,
            session=session,
        )

    def message(self, accession: str, status: str) -> str:
        """The ORM^O01 or OMI^O23 status change for the order (values escaped as HL7 requires)."""
        now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        control = now + secrets.token_hex(3)
        kind = "OMI^O23^OMI_O23" if self.message_type == "OMI" else "ORM^O01^ORM_O01"
        header = (
            f"MSH|^~\\&|{self.application}|{self.facility}|HIS||{now}||{kind}|"
            f"{control}|P|2.5|||||VN|UNICODE UTF-8"
        )
        esc = _escape
        with self.sessions() as session:
            order = session.scalar(
                select(ImagingOrder).where(ImagingOrder.accession_number == accession)
            )
            if order is None:
                raise LookupError(f"no order {accession}")
            patient = order.patient
            pid = (
                f"PID|1||{esc(patient.patient_id)}^^^{esc(patient.issuer)}^MR||"
                f"{_name(patient.name)}||{patient.birth_date}|{patient.sex}"
            )
            orc = (
                f"ORC|SC|{esc(order.placer_number)}|{esc(order.filler_number)}||"
                f"{ORDER_STATUS_CODE[status]}"
            )
            obr = [
                "OBR", "1", esc(order.placer_number), esc(order.filler_number),
                f"{esc(order.procedure_code)}^{esc(order.procedure_description)}",
                *[""] * 13, esc(order.accession_number), *[""] * 5, esc(order.modality),
            ]  # fmt: skip
            segments = [header, pid, orc, "|".join(obr)]
            if self.message_type == "OMI":
                study_uid = session.scalar(
                    select(StudyOrder.study_uid).where(StudyOrder.order_pk == order.pk).limit(1)
                )
                segments.append(_ipc(order, study_uid or ""))
        return "\r".join(segments)

    def _job(self, payload: dict[str, Any]) -> None:
        text = self.message(str(payload["accession"]), str(payload["status"]))
        with MLLPClient(self.host, self.port) as client:
            reply = client.send_message(text)
        ack = hl7.parse(reply.strip(b"\x0b\x1c\r").decode("utf-8", errors="replace"))
        code = str(ack["MSA.F1"]).strip()
        if code not in ("AA", "CA"):
            raise ConnectionError(f"the HIS answered {code or 'nothing'} to the status message")


def _ipc(order: ImagingOrder, study_uid: str) -> str:
    """IPC: accession, requested procedure, study UID, step ID and modality (IPC-1..5)."""
    step = order.steps[0] if order.steps else None
    step_id = _escape(step.step_id) if step is not None else ""
    return (
        f"IPC|{_escape(order.accession_number)}|{_escape(order.requested_procedure_id)}|"
        f"{_escape(study_uid)}|{step_id}|{_escape(order.modality)}"
    )


_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}


def _escape(value: str) -> str:
    """HL7 escape of the delimiters only (python-hl7's escape also turns every non-ASCII
    character into a hex sequence, which would mangle Vietnamese names for the HIS)."""
    return "".join(_ESCAPES.get(char, char) for char in value)


def _name(pn: str) -> str:
    """DICOM PN family^given^middle^prefix^suffix to HL7 XPN family^given^middle^suffix^prefix."""
    family, given, middle, prefix, suffix = ([*pn.split("=")[0].split("^"), "", "", "", ""])[:5]
    return "^".join(_escape(part) for part in (family, given, middle, suffix, prefix)).rstrip("^")
