"""A final report to the HIS as HL7 v2.5 ORU^R01 over MLLP, as a job with retries.

Sent when a report becomes final (signed, and approved where a second reader is
required); an addendum goes the same way with OBR-25 ``C`` (corrected). OBX segments
carry the findings, the conclusion and the recommendations as TX (one repetition per
line) and the signed PDF as ED (base64), which most HIS file with the order. The HIS
must answer AA; anything else fails the job, which retries with backoff and ends in the
dead letters. Off unless ``PACS_HL7_HIS_HOST`` and ``PACS_HL7_HIS_PORT`` name the HIS,
like the order status messages of :mod:`pacs.workflow.his_out`.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import hl7
from hl7.client import MLLPClient
from pydicom import Dataset
from sqlalchemy.orm import Session

from pacs.index.reports_models import Report
from pacs.reports.documents import from_json
from pacs.workflow.his_out import _escape, _name

if TYPE_CHECKING:
    from pacs.archive.facade import Archive

JOB = "hl7-report-result"


class ReportOut:
    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        settings = archive.settings
        self.host, self.port = settings.hl7_his_host, settings.hl7_his_port
        self.application, self.facility = settings.hl7_application, settings.ae_title
        archive.jobs.handle(JOB, self._job, backoff_s=30.0)

    @property
    def enabled(self) -> bool:
        return bool(self.host and self.port)

    def queue(self, session: Session, report_pk: int) -> None:
        """Queue the result message in ``session`` (sent once the caller commits)."""
        if self.enabled:
            self.archive.jobs.queue.enqueue(
                JOB, {"report": report_pk}, dedup_key=f"report-result:{report_pk}",
                max_attempts=10, session=session,
            )  # fmt: skip

    def message(self, report_pk: int) -> str:
        """The ORU^R01 of final report ``report_pk``."""
        with self.archive.sessions() as session:
            row = session.get(Report, report_pk)
            if row is None or row.signed_at is None:
                raise LookupError(f"no signed report {report_pk}")
            session.expunge(row)
        metadata = self.archive.metadata(row.study_uid)
        reference = from_json(metadata[0][1]) if metadata else Dataset()
        order = self.archive.workflow.order_of_study(row.study_uid)
        esc = _escape
        now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        signed = row.signed_at.replace(tzinfo=row.signed_at.tzinfo or UTC).strftime("%Y%m%d%H%M%S")
        accession = order.accession_number if order else str(reference.get("AccessionNumber", ""))
        placer = esc(order.placer_number) if order else ""
        filler = esc(order.filler_number) if order else ""
        service = f"{esc(order.procedure_code)}^{esc(order.procedure_description)}" if order else ""

        def attr(keyword: str) -> str:
            return esc(str(reference.get(keyword, "")))

        segments = [
            f"MSH|^~\\&|{self.application}|{self.facility}|HIS||{now}||ORU^R01^ORU_R01|"
            f"{now}{secrets.token_hex(3)}|P|2.5|||||VN|UNICODE UTF-8",
            f"PID|1||{esc(row.patient_id)}^^^{attr('IssuerOfPatientID')}^MR||"
            f"{_name(str(reference.get('PatientName', '')))}||"
            f"{attr('PatientBirthDate')}|{attr('PatientSex')}",
            f"ORC|RE|{placer}|{filler}||CM",
        ]
        status = "C" if row.amends_pk else "F"  # OBR-25: an addendum corrects the result
        interpreter = f"{esc(row.signer_code)}&{esc(row.signer)}"  # OBR-32
        obr = ["OBR", "1", placer, filler, service, *[""] * 13, esc(accession),
               *[""] * 3, signed, "", "", status, *[""] * 6, interpreter]  # fmt: skip
        segments.append("|".join(obr))
        n = 0
        for code, meaning, text in (
            ("121071", "Finding", row.findings),
            ("121077", "Conclusion", row.conclusion),
            ("121075", "Recommendation", row.recommendations),
        ):
            if text:
                n += 1
                value = "~".join(esc(line) for line in text.splitlines())
                segments.append(f"OBX|{n}|TX|{code}^{meaning}^DCM||{value}||||||F|||{signed}")
        if row.pdf:
            n += 1
            encoded = base64.b64encode(bytes(row.pdf)).decode()
            segments.append(
                f"OBX|{n}|ED|18748-4^Diagnostic Imaging Report^LN||"
                f"PACS^application^pdf^Base64^{encoded}||||||F|||{signed}"
            )
        return "\r".join(segments)

    def _job(self, payload: dict[str, Any]) -> None:
        text = self.message(int(payload["report"]))
        with MLLPClient(self.host, self.port) as client:
            reply = client.send_message(text)
        ack = hl7.parse(reply.strip(b"\x0b\x1c\r").decode("utf-8", errors="replace"))
        code = str(ack["MSA.F1"]).strip()
        if code not in ("AA", "CA"):
            raise ConnectionError(f"the HIS answered {code or 'nothing'} to the report")
