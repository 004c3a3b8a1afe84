"""The report lifecycle (issue 17 items 5-9): draft, sign, second reader, addenda, outputs.

A draft is written and saved again and again (the editor's autosave is a PUT); signing
draws the result slip, signs it as PAdES with the reader's certificate and, unless the
site requires a second reader (``PACS_REPORT_SECOND_READER``), finalises it: a DICOM SR
and an Encapsulated PDF go into the study through the archive's one ingest path, and the
result is queued for the HIS (HL7 ORU^R01, a job). A signed report never changes: an
addendum is a new report that names it. Every step is audited with the patient.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydicom import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pacs.archive.ingest import Origin
from pacs.auth import grants
from pacs.auth.keys import signing_key
from pacs.auth.models import Account
from pacs.auth.policy import permits
from pacs.auth.principal import Principal
from pacs.index.models import Study
from pacs.index.reports_models import (
    ReadingTimes,
    Report,
    ReportPhrase,
    ReportTemplate,
    SigningCertificate,
)
from pacs.rendering import RenderError, RenderOptions, render_frame
from pacs.reports import documents
from pacs.reports.errors import (
    InvalidReport,
    ReportConflict,
    ReportNotFound,
    SigningError,
)
from pacs.reports.hl7_out import ReportOut
from pacs.reports.signing import Pkcs11Signer, Pkcs12Signer, ReportSigner, read_pkcs12

if TYPE_CHECKING:
    from pacs.archive.facade import Archive

DRAFT, AWAITING, FINAL = "draft", "awaiting-approval", "final"
MAX_TEXT = 20_000  # characters per section: a report, not a book
MAX_KEY_IMAGES = 16
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class ReportText:
    """What a reader writes; ``None`` leaves a section as it is (an update)."""

    findings: str | None = None
    conclusion: str | None = None
    recommendations: str | None = None
    key_images: list[str] | None = None
    template: int | None = None
    language: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands naive datetimes back
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def report_json(row: Report, addenda: list[int]) -> dict[str, Any]:
    """The API's view of one report version (no PDF bytes)."""
    signature = None
    if row.signed_at is not None:
        signature = {
            "signer": row.signer,
            "professional_code": row.signer_code,
            "signed_at": _iso(row.signed_at),
            "certificate": {
                "subject": row.cert_subject,
                "serial": row.cert_serial,
                "sha256": row.cert_sha256,
            },
        }
    return {
        "id": row.pk,
        "study_uid": row.study_uid,
        "patient_id": row.patient_id,
        "status": row.status,
        "amends": row.amends_pk,
        "addenda": addenda,
        "template": row.template_pk,
        "language": row.language,
        "findings": row.findings,
        "conclusion": row.conclusion,
        "recommendations": row.recommendations,
        "key_images": json.loads(row.key_images),
        "author": row.author,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "signature": signature,
        "approval": (
            {"approver": row.approver, "approved_at": _iso(row.approved_at)}
            if row.approved_at
            else None
        ),
        "sr_uid": row.sr_uid or None,
        "pdf_uid": row.pdf_uid or None,
    }


def template_json(row: ReportTemplate) -> dict[str, Any]:
    return {
        "id": row.pk,
        "name": row.name,
        "modality": row.modality,
        "body_part": row.body_part,
        "language": row.language,
        "findings": row.findings,
        "conclusion": row.conclusion,
        "recommendations": row.recommendations,
        "updated_by": row.updated_by,
        "updated_at": _iso(row.updated_at),
    }


def _text(value: str | None, name: str) -> str | None:
    if value is not None and len(value) > MAX_TEXT:
        raise InvalidReport(f"{name} is longer than {MAX_TEXT} characters")
    return value


class Reports:
    """Reports of stored studies; reached as ``archive.reports``."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.sessions = archive.sessions
        self.settings = archive.settings
        self.audit = archive.audit
        self.out = ReportOut(archive)

    # -- drafts --------------------------------------------------------------------------

    def create(self, principal: Principal, study_uid: str, text: ReportText) -> dict[str, Any]:
        """A new draft for a stored study; from ``text.template`` when its sections are empty."""
        patient_id = self._patient_of(study_uid)
        now = _now()
        with self.sessions.begin() as session:
            row = Report(
                study_uid=study_uid,
                patient_id=patient_id,
                status=DRAFT,
                language=text.language or "vi",
                findings="",
                conclusion="",
                recommendations="",
                key_images="[]",
                author=principal.name[:64],
                created_at=now,
                updated_at=now,
                **_unsigned(),
            )
            self._apply(row, text, study_uid)
            if text.template is not None:  # fills the sections the text left empty
                self._apply_template(session, row, text.template)
            session.add(row)
            self._times(session, study_uid, draft=now)
            session.flush()
            view = report_json(row, [])
        self.audit.record(
            principal, "report-draft", patient_id=patient_id, study_uid=study_uid,
            detail=f"report {view['id']}",
        )  # fmt: skip
        return view

    def update(self, principal: Principal, report_id: int, text: ReportText) -> dict[str, Any]:
        """Save a draft again (the editor's autosave); a signed report is a conflict."""
        with self.sessions.begin() as session:
            row = self._row(session, report_id)
            if row.status != DRAFT:
                raise ReportConflict("a signed report never changes: write an addendum")
            self._apply(row, text, row.study_uid)
            if text.template is not None:
                self._apply_template(session, row, text.template)
            row.updated_at = _now()
            view = report_json(row, [])
        self.audit.record(
            principal, "report-update", patient_id=view["patient_id"],
            study_uid=view["study_uid"], detail=f"report {report_id}",
        )  # fmt: skip
        return view

    def addendum(self, principal: Principal, report_id: int, text: ReportText) -> dict[str, Any]:
        """A new draft that amends signed report ``report_id`` (which stays as signed)."""
        with self.sessions.begin() as session:
            original = self._row(session, report_id)
            if original.status != FINAL:
                raise ReportConflict("only a final signed report takes an addendum")
            now = _now()
            row = Report(
                study_uid=original.study_uid,
                patient_id=original.patient_id,
                status=DRAFT,
                amends_pk=original.pk,
                language=text.language or original.language,
                findings="",
                conclusion="",
                recommendations="",
                key_images="[]",
                author=principal.name[:64],
                created_at=now,
                updated_at=now,
                **_unsigned(),
            )
            self._apply(row, text, original.study_uid)
            session.add(row)
            session.flush()
            view = report_json(row, [])
        self.audit.record(
            principal, "report-addendum", patient_id=view["patient_id"],
            study_uid=view["study_uid"], detail=f"report {view['id']} amends {report_id}",
        )  # fmt: skip
        return view

    def _apply(self, row: Report, text: ReportText, study_uid: str) -> None:
        for name in ("findings", "conclusion", "recommendations"):
            value = _text(getattr(text, name), name)
            if value is not None:
                setattr(row, name, value)
        if text.language is not None:
            if text.language not in ("vi", "en"):
                raise InvalidReport("language is vi or en")
            row.language = text.language
        if text.key_images is not None:
            row.key_images = json.dumps(self._check_key_images(study_uid, text.key_images))

    def _check_key_images(self, study_uid: str, uids: list[str]) -> list[str]:
        if len(uids) > MAX_KEY_IMAGES:
            raise InvalidReport(f"at most {MAX_KEY_IMAGES} key images")
        for uid in uids:
            if not (isinstance(uid, str) and len(uid) <= 64 and _UID.match(uid)):
                raise InvalidReport("a key image is a SOP Instance UID")
        stored = {
            item.sop_instance_uid
            for item in self.archive.locate_many(study_uids=[study_uid], sop_instance_uids=uids)
        } if uids else set()  # fmt: skip
        missing = [uid for uid in uids if uid not in stored]
        if missing:
            raise InvalidReport(f"key image {missing[0]} is not an instance of the study")
        return list(dict.fromkeys(uids))

    def _apply_template(self, session: Session, row: Report, template_id: int) -> None:
        template = session.get(ReportTemplate, template_id)
        if template is None:
            raise InvalidReport(f"no template {template_id}")
        row.template_pk = template.pk
        row.language = template.language
        for name in ("findings", "conclusion", "recommendations"):
            if not getattr(row, name):
                setattr(row, name, getattr(template, name))

    # -- reading -------------------------------------------------------------------------

    def get(self, principal: Principal, report_id: int) -> dict[str, Any]:
        """One report version; a draft only for those who write reports (a clinician reads
        what was signed, never a reader's unfinished text)."""
        with self.sessions() as session:
            row = self._row(session, report_id)
            if row.status == DRAFT and not permits(principal, "report"):
                raise ReportNotFound(f"no report {report_id}")
            view = report_json(row, self._addenda(session, row.pk))
        self.audit.record(
            principal, "report-read", patient_id=view["patient_id"],
            study_uid=view["study_uid"], detail=f"report {report_id}",
        )  # fmt: skip
        return view

    def of_study(
        self, principal: Principal, study_uid: str, *, opening: bool
    ) -> list[dict[str, Any]]:
        """A study's reports, oldest first; ``opening``: a reader opened the study (the first
        time is its turnaround's "first opened"). Drafts only for those who write reports."""
        query = select(Report).where(Report.study_uid == study_uid).order_by(Report.pk)
        if not permits(principal, "report"):
            query = query.where(Report.status != DRAFT)
        with self.sessions.begin() as session:
            rows = list(session.scalars(query))
            views = [report_json(row, self._addenda(session, row.pk)) for row in rows]
            if opening:
                self._times(session, study_uid, opened=(_now(), principal.name))
        patient = views[0]["patient_id"] if views else self._patient_of(study_uid, missing_ok=True)
        self.audit.record(
            principal, "report-list", patient_id=patient, study_uid=study_uid,
            detail=f"{len(views)} reports",
        )  # fmt: skip
        return views

    def signed(
        self,
        principal: Principal,
        *,
        report_id: int | None = None,
        study_uid: str | None = None,
        patient_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Signed reports (final or awaiting approval), newest first, for the FHIR door: one
        page and whether more follow. Drafts are the reader's own and never leave."""
        query = select(Report).where(Report.status.in_((AWAITING, FINAL)))
        if report_id is not None:
            query = query.where(Report.pk == report_id)
        if study_uid is not None:
            query = query.where(Report.study_uid == study_uid)
        if patient_id is not None:
            query = query.where(Report.patient_id == patient_id)
        query = query.order_by(Report.pk.desc()).limit(limit + 1).offset(offset)
        with self.sessions() as session:
            rows = list(session.scalars(query))
            views = [report_json(row, self._addenda(session, row.pk)) for row in rows[:limit]]
        patients = {view["patient_id"] for view in views}
        self.audit.record(
            principal, "report-read", patients=patients,
            detail=f"{len(views)} signed reports (FHIR)",
        )  # fmt: skip
        return views, len(rows) > limit

    def pdf(self, principal: Principal, report_id: int) -> bytes:
        """The signed PDF, byte for byte as signed."""
        with self.sessions() as session:
            row = self._row(session, report_id)
            if row.pdf is None:
                raise ReportConflict("the report is not signed yet")
            data, patient, study = bytes(row.pdf), row.patient_id, row.study_uid
        self.audit.record(
            principal, "report-pdf", patient_id=patient, study_uid=study,
            detail=f"report {report_id}",
        )  # fmt: skip
        return data

    def pdf_bytes(self, report_id: int) -> bytes | None:
        """The signed PDF of a report already read and audited by the caller (its size and hash
        go into a FHIR Attachment)."""
        with self.sessions() as session:
            data = session.scalar(select(Report.pdf).where(Report.pk == report_id))
            return bytes(data) if data is not None else None

    def times(self, study_uid: str) -> dict[str, Any] | None:
        """The study's reading turnaround (for the statistics issue)."""
        with self.sessions() as session:
            row = session.get(ReadingTimes, study_uid)
            if row is None:
                return None
            return {
                "study_uid": study_uid,
                "acquired_at": _iso(row.acquired_at),
                "first_opened_at": _iso(row.first_opened_at),
                "first_opened_by": row.first_opened_by,
                "draft_at": _iso(row.draft_at),
                "signed_at": _iso(row.signed_at),
            }

    def _row(self, session: Session, report_id: int) -> Report:
        row = session.get(Report, report_id) if 0 < report_id < 2**62 else None
        if row is None:
            raise ReportNotFound(f"no report {report_id}")
        return row

    @staticmethod
    def _addenda(session: Session, pk: int) -> list[int]:
        return list(session.scalars(select(Report.pk).where(Report.amends_pk == pk)))

    def _patient_of(self, study_uid: str, *, missing_ok: bool = False) -> str:
        stored = self.archive.locate(study_uid) if len(study_uid) <= 64 else []
        if not stored:
            if missing_ok:
                return ""
            raise ReportNotFound(f"no study {study_uid[:64]}")
        return stored[0].patient_id

    def _times(
        self,
        session: Session,
        study_uid: str,
        *,
        draft: datetime | None = None,
        signed: datetime | None = None,
        opened: tuple[datetime, str] | None = None,
    ) -> None:
        """Set the turnaround timestamps that are not set yet (the first of each counts)."""
        row = session.get(ReadingTimes, study_uid)
        if row is None:
            acquired = session.scalar(select(Study.created_at).where(Study.study_uid == study_uid))
            row = ReadingTimes(study_uid=study_uid, acquired_at=acquired, first_opened_by="")
            session.add(row)
        if opened is not None and row.first_opened_at is None:
            row.first_opened_at, row.first_opened_by = opened[0], opened[1][:64]
        if draft is not None and row.draft_at is None:
            row.draft_at = draft
        if signed is not None and row.signed_at is None:
            row.signed_at = signed

    # -- signing -------------------------------------------------------------------------

    def sign(self, principal: Principal, report_id: int, passphrase: str) -> dict[str, Any]:
        """Sign draft ``report_id`` with the principal's certificate; finalise it unless a
        second reader must approve it first."""
        with self.sessions() as session:
            row = self._row(session, report_id)
            if row.status != DRAFT:
                raise ReportConflict("the report is already signed")
            if not (row.findings.strip() or row.conclusion.strip()):
                raise InvalidReport("an empty report cannot be signed")
            session.expunge(row)
        try:
            signer, code = self._signer(principal.name, passphrase)
        except SigningError as exc:
            self.audit.record(
                principal, "report-sign", f"failure: {exc}"[:256], patient_id=row.patient_id,
                study_uid=row.study_uid, detail=f"report {report_id}",
            )  # fmt: skip
            raise
        signed_at = _now()
        cert = signer.certificate
        row.signer, row.signer_code, row.signed_at = principal.name[:64], code, signed_at
        row.cert_subject, row.cert_serial, row.cert_sha256 = cert.subject, cert.serial, cert.sha256
        try:
            pdf = signer.sign(self._slip_pdf(row), "Signature1", "report")
        finally:
            signer.close()  # a token's session is not left open when drawing the slip fails
        if self.settings.report_second_reader:
            self._store_signed(row, pdf, AWAITING)
        else:
            self._finalise(row, pdf)
        self.audit.record(
            principal, "report-sign", patient_id=row.patient_id, study_uid=row.study_uid,
            detail=f"report {report_id} certificate {cert.subject} serial {cert.serial}",
        )  # fmt: skip
        return self.get(principal, report_id)

    def approve(self, principal: Principal, report_id: int, passphrase: str) -> dict[str, Any]:
        """The second reader's approval: a second PAdES signature, then the report is final."""
        with self.sessions() as session:
            row = self._row(session, report_id)
            if row.status != AWAITING or row.pdf is None:
                raise ReportConflict("the report is not awaiting a second reader")
            if row.signer == principal.name:
                raise ReportConflict("the second reader is another radiologist")
            session.expunge(row)
        signer, _code = self._signer(principal.name, passphrase)
        try:
            pdf = signer.sign(bytes(row.pdf), "Signature2", "approval")
        finally:
            signer.close()
        row.approver, row.approved_at = principal.name[:64], _now()
        self._finalise(row, pdf)
        self.audit.record(
            principal, "report-approve", patient_id=row.patient_id, study_uid=row.study_uid,
            detail=f"report {report_id} certificate {signer.certificate.subject}",
        )  # fmt: skip
        return self.get(principal, report_id)

    def _signer(self, username: str, passphrase: str) -> tuple[ReportSigner, str]:
        with self.sessions() as session:
            cert = session.get(SigningCertificate, username)
            if cert is None:
                raise SigningError(f"{username} has no signing certificate (pacs user cert)")
            if cert.kind == "pkcs11":
                signer: ReportSigner = Pkcs11Signer(
                    self.settings.pkcs11_library, cert.token_label, cert.key_label, passphrase
                )
            else:
                signer = Pkcs12Signer(bytes(cert.pkcs12 or b""), passphrase)
            return signer, cert.professional_code

    def _store_signed(self, row: Report, pdf: bytes, status: str) -> None:
        with self.sessions.begin() as session:
            done = session.execute(
                update(Report)
                .where(Report.pk == row.pk, Report.status == DRAFT)
                .values(
                    status=status, pdf=pdf, signer=row.signer, signer_code=row.signer_code,
                    signed_at=row.signed_at, cert_subject=row.cert_subject,
                    cert_serial=row.cert_serial, cert_sha256=row.cert_sha256,
                )
            )  # fmt: skip
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise ReportConflict("the report was signed meanwhile")

    def _finalise(self, row: Report, pdf: bytes) -> None:
        """Store the SR and the PDF in the study, mark the report final, queue the HIS."""
        metadata = self.archive.metadata(row.study_uid)
        if not metadata:
            raise ReportNotFound(f"no study {row.study_uid}")
        by_uid = dict(metadata)
        key_images = [uid for uid in json.loads(row.key_images) if uid in by_uid]
        evidence = documents.study_reference([metadata[0][1], *(by_uid[u] for u in key_images)])
        previous = None
        if row.amends_pk is not None:
            previous = self._previous_sr(row.amends_pk, by_uid)
        verifier = row.signer if not row.approver else f"{row.signer}, {row.approver}"
        content = documents.SrContent(
            findings=row.findings,
            conclusion=row.conclusion,
            recommendations=row.recommendations,
            key_images=[(ev.SOPClassUID, ev.SOPInstanceUID) for ev in evidence[1:]],
            author=row.author,
            verifier=verifier,
            organization=self.settings.report_hospital_name,
            instance_number=row.pk,
        )
        sr_uid, pdf_uid = str(generate_uid()), str(generate_uid())
        sr = documents.build_sr(evidence, content, sop_instance_uid=sr_uid, previous=previous)
        title = self._t(row.language, "document_title")
        pdf_ds = documents.encapsulated_pdf(
            evidence[0], pdf, sop_instance_uid=pdf_uid, title=title, instance_number=row.pk
        )
        origin = Origin(door="report", user=row.signer)
        for ds in (sr, pdf_ds):
            self.archive.ingest(
                io.BytesIO(documents.part10(ds)), origin, expect_study_uid=row.study_uid
            )
        with self.sessions.begin() as session:
            done = session.execute(
                update(Report)
                .where(Report.pk == row.pk, Report.status.in_((DRAFT, AWAITING)))
                .values(
                    status=FINAL, pdf=pdf, sr_uid=sr_uid, pdf_uid=pdf_uid, signer=row.signer,
                    signer_code=row.signer_code, signed_at=row.signed_at,
                    cert_subject=row.cert_subject, cert_serial=row.cert_serial,
                    cert_sha256=row.cert_sha256, approver=row.approver,
                    approved_at=row.approved_at,
                )
            )  # fmt: skip
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise ReportConflict("the report was signed meanwhile")
            self._times(session, row.study_uid, signed=row.signed_at)
            self.out.queue(session, row.pk)

    def _previous_sr(self, amends: int, by_uid: dict[str, str]) -> list[Dataset] | None:
        with self.sessions() as session:
            sr_uid = session.scalar(select(Report.sr_uid).where(Report.pk == amends))
        if not sr_uid or sr_uid not in by_uid:
            return None
        return documents.study_reference([by_uid[sr_uid]])

    def _t(self, language: str, key: str, **params: object) -> str:
        from pacs.i18n import translate

        return translate(f"reports.{key}", language, **params)

    def _slip_pdf(self, row: Report) -> bytes:
        """Draw the result slip of ``row`` (signer fields already set)."""
        metadata = self.archive.metadata(row.study_uid)
        if not metadata:
            raise ReportNotFound(f"no study {row.study_uid}")
        reference = documents.from_json(metadata[0][1])
        order = self.archive.workflow.order_of_study(row.study_uid)
        amends = ""
        if row.amends_pk is not None:
            with self.sessions() as session:
                original = session.get(Report, row.amends_pk)
                if original is not None and original.signed_at is not None:
                    amends = self._local(original.signed_at).strftime("%d/%m/%Y %H:%M")
        modalities = sorted(
            {
                str(documents.from_json(text).get("Modality", ""))
                for _uid, text in metadata[:200]
            } - {"", "SR", "DOC"}
        )  # fmt: skip
        slip = documents.Slip(
            language=row.language,
            hospital=self.settings.report_hospital_name,
            hospital_address=self.settings.report_hospital_address,
            patient_name=str(reference.get("PatientName", "")).replace("^", " ").strip(),
            patient_id=str(reference.get("PatientID", "")),
            birth_date=_dmy(str(reference.get("PatientBirthDate", ""))),
            sex=str(reference.get("PatientSex", "")),
            accession=str(reference.get("AccessionNumber", "")),
            modality=", ".join(modalities),
            study_date=_dmy(str(reference.get("StudyDate", ""))),
            procedure=(order.procedure_description if order else "")
            or str(reference.get("StudyDescription", "")),
            findings=row.findings,
            conclusion=row.conclusion,
            recommendations=row.recommendations,
            signer=row.signer,
            signer_code=row.signer_code,
            signed_at=self._local(row.signed_at or _now()),
            cert_subject=row.cert_subject,
            report_id=row.pk,
            amends=amends,
            share_url=self._share_url(row),
            key_images=self._key_image_pictures(row),
        )
        return documents.render_pdf(slip, self.settings.report_font)

    def _local(self, when: datetime) -> datetime:
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.astimezone(ZoneInfo(self.settings.fhir_timezone))

    def _share_url(self, row: Report) -> str:
        """A share link to the study for the slip's QR code (none without a public URL)."""
        base = self.settings.public_base_url
        if not base:
            return ""
        grant = self.archive.auth.create_grant(
            row.study_uid, row.signer, self.settings.report_share_days
        )
        token = grants.link_token(signing_key(self.settings), grant.grant_id)
        return f"{base.rstrip('/')}/s/{token}"

    def _key_image_pictures(self, row: Report) -> list[bytes]:
        uids = json.loads(row.key_images)
        if not uids:
            return []
        pictures = []
        options = RenderOptions(viewport=(256, 256), quality=85)
        for item in self.archive.locate_many(study_uids=[row.study_uid], sop_instance_uids=uids):
            try:
                with self.archive.open_seekable(item.blob_key) as source:
                    pictures.append(render_frame(source, 0, options))
            except RenderError:
                continue  # a key image without pixels (an SR) has no picture on the slip
        return pictures

    # -- exports -------------------------------------------------------------------------

    def xml4(self, principal: Principal, report_id: int) -> str:
        """QĐ 130 table 4 (XML4) fields of a signed report, one CHI_TIET_CLS element."""
        from pacs.reports.xml4 import xml4

        with self.sessions() as session:
            row = self._row(session, report_id)
            if row.signed_at is None:
                raise ReportConflict("the report is not signed yet")
            session.expunge(row)
        order = self.archive.workflow.order_of_study(row.study_uid)
        text = xml4(row, order, self._local(row.signed_at))
        self.audit.record(
            principal, "report-xml4", patient_id=row.patient_id, study_uid=row.study_uid,
            detail=f"report {report_id}",
        )  # fmt: skip
        return text

    # -- certificates --------------------------------------------------------------------

    def store_pkcs12(
        self, username: str, pkcs12: bytes, passphrase: str, professional_code: str
    ) -> dict[str, Any]:
        """Keep ``username``'s PKCS#12 file (checked with ``passphrase``, which is not kept)."""
        info = read_pkcs12(pkcs12, passphrase)
        self._store_cert(
            username, kind="pkcs12", pkcs12=pkcs12, token_label="", key_label="",
            code=professional_code, info=info,
        )  # fmt: skip
        return {"username": username, "subject": info.subject, "serial": info.serial}

    def store_pkcs11(
        self, username: str, token_label: str, key_label: str, pin: str, professional_code: str
    ) -> dict[str, Any]:
        """Point ``username`` at a key on a PKCS#11 token (the PIN opens it once to check)."""
        signer = Pkcs11Signer(self.settings.pkcs11_library, token_label, key_label, pin)
        info = signer.certificate
        signer.close()
        self._store_cert(
            username, kind="pkcs11", pkcs12=None, token_label=token_label, key_label=key_label,
            code=professional_code, info=info,
        )  # fmt: skip
        return {"username": username, "subject": info.subject, "serial": info.serial}

    def _store_cert(self, username: str, *, kind: str, pkcs12: bytes | None, token_label: str,
                    key_label: str, code: str, info: Any) -> None:  # fmt: skip
        with self.sessions.begin() as session:
            if session.scalar(select(Account.pk).where(Account.username == username)) is None:
                raise SigningError(f"no account {username}")
            row = session.get(SigningCertificate, username) or SigningCertificate(username=username)
            row.kind, row.pkcs12, row.token_label, row.key_label = (
                kind,
                pkcs12,
                token_label,
                key_label,
            )
            row.professional_code = code[:64]
            row.subject, row.serial, row.sha256 = info.subject, info.serial, info.sha256
            row.not_after, row.updated_at = info.not_after, _now()
            session.add(row)

    # -- templates and phrases -----------------------------------------------------------

    def templates(
        self, modality: str | None = None, body_part: str | None = None
    ) -> list[dict[str, Any]]:
        query = select(ReportTemplate).order_by(ReportTemplate.modality, ReportTemplate.name)
        if modality:
            query = query.where(ReportTemplate.modality == modality.upper())
        if body_part:
            query = query.where(ReportTemplate.body_part.in_((body_part.upper(), "")))
        with self.sessions() as session:
            return [template_json(row) for row in session.scalars(query)]

    def save_template(
        self, principal: Principal, values: dict[str, str], template_id: int | None = None
    ) -> dict[str, Any]:
        for name in ("findings", "conclusion", "recommendations"):
            _text(values.get(name), name)
        with self.sessions.begin() as session:
            if template_id is None:
                row = ReportTemplate(findings="", conclusion="", recommendations="", body_part="",
                                     language="vi", name="", modality="")  # fmt: skip
                session.add(row)
            else:
                found = (
                    session.get(ReportTemplate, template_id) if 0 < template_id < 2**62 else None
                )
                if found is None:
                    raise ReportNotFound(f"no template {template_id}")
                row = found
            for name, value in values.items():
                if value is not None:
                    setattr(
                        row, name, value.upper() if name in ("modality", "body_part") else value
                    )
            if row.language not in ("vi", "en"):
                raise InvalidReport("language is vi or en")
            row.updated_by, row.updated_at = principal.name[:64], _now()
            session.flush()
            view = template_json(row)
        self.audit.record(principal, "report-template", detail=f"template {view['id']} saved")
        return view

    def delete_template(self, principal: Principal, template_id: int) -> None:
        with self.sessions.begin() as session:
            row = session.get(ReportTemplate, template_id) if 0 < template_id < 2**62 else None
            if row is None:
                raise ReportNotFound(f"no template {template_id}")
            session.delete(row)
        self.audit.record(principal, "report-template", detail=f"template {template_id} deleted")

    def phrases(self, username: str) -> list[dict[str, Any]]:
        with self.sessions() as session:
            rows = session.scalars(
                select(ReportPhrase)
                .where(ReportPhrase.username == username)
                .order_by(ReportPhrase.name)
            )
            return [{"name": row.name, "text": row.text} for row in rows]

    def save_phrase(self, username: str, name: str, text: str) -> None:
        _text(text, "text")
        with self.sessions.begin() as session:
            row = session.scalar(
                select(ReportPhrase).where(
                    ReportPhrase.username == username, ReportPhrase.name == name
                )
            )
            if row is None:
                session.add(ReportPhrase(username=username, name=name, text=text))
            else:
                row.text = text

    def delete_phrase(self, username: str, name: str) -> bool:
        with self.sessions.begin() as session:
            row = session.scalar(
                select(ReportPhrase).where(
                    ReportPhrase.username == username, ReportPhrase.name == name
                )
            )
            if row is None:
                return False
            session.delete(row)
            return True


def _unsigned() -> dict[str, Any]:
    return {
        "signer": "", "signer_code": "", "cert_subject": "", "cert_serial": "",
        "cert_sha256": "", "approver": "", "sr_uid": "", "pdf_uid": "",
    }  # fmt: skip


def _dmy(date: str) -> str:
    """DICOM YYYYMMDD as the dd/mm/yyyy Vietnamese readers expect."""
    return f"{date[6:8]}/{date[4:6]}/{date[:4]}" if len(date) == 8 and date.isdigit() else date
