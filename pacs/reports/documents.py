"""The documents a signed report becomes: the PDF result slip, a DICOM Comprehensive SR and
an Encapsulated PDF (issue 17 item 7).

The slip is drawn with reportlab in a TrueType font that has Vietnamese (DejaVu Sans from
Debian's ``fonts-dejavu-core``, or the file ``PACS_REPORT_FONT`` names): the core PDF
fonts would drop the diacritics. Every word on it comes from the ``reports`` catalogue of
:mod:`pacs.i18n`, in the report's language.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

import highdicom as hd
import qrcode
from pydicom import Dataset, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from pacs.i18n import translate
from pacs.reports.errors import ReportError

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
REPORT_CODE = Code("18748-4", "LN", "Diagnostic Imaging Report")
FINDING = Code("121071", "DCM", "Finding")
CONCLUSION = Code("121077", "DCM", "Conclusion")
RECOMMENDATION = Code("121075", "DCM", "Recommendation")
KEY_IMAGE = Code("121080", "DCM", "Best illustration of finding")

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf"),
    Path("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"),
)
# Patient and study attributes the SR and the PDF object copy from the study's images.
PATIENT_STUDY = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription",
)  # fmt: skip


@dataclass
class Slip:
    """What the result slip shows (all text already in the report's language)."""

    language: str
    hospital: str
    hospital_address: str
    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    accession: str
    modality: str
    study_date: str
    procedure: str
    findings: str
    conclusion: str
    recommendations: str
    signer: str
    signer_code: str
    signed_at: datetime
    cert_subject: str
    report_id: int
    amends: str = ""  # when the original was signed (an addendum's slip says so)
    share_url: str = ""
    key_images: list[bytes] = field(default_factory=list)  # JPEG bytes


_FONT: tuple[str, str] | None = None


def fonts(configured: Path | None = None) -> tuple[str, str]:
    """(regular, bold) font names registered with reportlab; Vietnamese-capable TrueType."""
    global _FONT
    if _FONT is not None:
        return _FONT
    candidates = [configured] if configured else list(FONT_CANDIDATES)
    regular = next((path for path in candidates if path and path.is_file()), None)
    if regular is None:
        raise ReportError(
            "no TrueType font with Vietnamese found: install fonts-dejavu-core "
            "or set PACS_REPORT_FONT"
        )
    pdfmetrics.registerFont(TTFont("ReportSans", str(regular)))
    bold_path = regular.with_name(regular.stem.replace("-Regular", "") + "-Bold.ttf")
    if bold_path.is_file():
        pdfmetrics.registerFont(TTFont("ReportSans-Bold", str(bold_path)))
        _FONT = ("ReportSans", "ReportSans-Bold")
    else:
        _FONT = ("ReportSans", "ReportSans")
    return _FONT


def _text(value: str) -> str:
    """Plain text as reportlab paragraph markup (escaped, line breaks kept)."""
    return escape(value).replace("\n", "<br/>")


def _qr(url: str) -> Image:
    picture = qrcode.make(url, box_size=4, border=1)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    buffer.seek(0)
    return Image(buffer, width=28 * mm, height=28 * mm)


def render_pdf(slip: Slip, font: Path | None = None) -> bytes:
    """The printable result slip as PDF bytes (not yet signed)."""
    regular, bold = fonts(font)

    def t(key: str, **params: object) -> str:
        return translate(f"reports.{key}", slip.language, **params)

    body = ParagraphStyle("body", fontName=regular, fontSize=10, leading=14)
    head = ParagraphStyle("head", fontName=bold, fontSize=11, leading=15, spaceBefore=6)
    title = ParagraphStyle("title", fontName=bold, fontSize=15, leading=20, alignment=1)
    small = ParagraphStyle("small", fontName=regular, fontSize=8, leading=10)
    story: list[object] = []
    if slip.hospital:
        story.append(Paragraph(_text(slip.hospital), head))
    if slip.hospital_address:
        story.append(Paragraph(_text(slip.hospital_address), small))
    story += [Spacer(1, 4 * mm), Paragraph(_text(t("slip_title")), title)]
    if slip.amends:
        story.append(Paragraph(_text(t("addendum_of", signed_at=slip.amends)), body))
    story.append(Spacer(1, 3 * mm))
    rows = [
        (t("patient_name"), slip.patient_name, t("patient_id"), slip.patient_id),
        (t("birth_date"), slip.birth_date, t("sex"), slip.sex),
        (t("accession"), slip.accession, t("modality"), slip.modality),
        (t("study_date"), slip.study_date, t("procedure"), slip.procedure),
    ]
    table = Table(
        [[Paragraph(_text(cell), body) for cell in row] for row in rows],
        colWidths=[30 * mm, 55 * mm, 30 * mm, 55 * mm],
    )
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.grey)]))
    story.append(table)
    for key, text in (
        ("findings", slip.findings),
        ("conclusion", slip.conclusion),
        ("recommendations", slip.recommendations),
    ):
        if text:
            story += [Paragraph(_text(t(key)), head), Paragraph(_text(text), body)]
    if slip.key_images:
        story.append(Paragraph(_text(t("key_images")), head))
        pictures = [
            Image(io.BytesIO(jpeg), width=40 * mm, height=40 * mm) for jpeg in slip.key_images
        ]
        story.append(Table([pictures[i : i + 4] for i in range(0, len(pictures), 4)]))
    signed = slip.signed_at.strftime("%d/%m/%Y %H:%M")
    story += [
        Spacer(1, 5 * mm),
        Paragraph(_text(t("signed_by", name=slip.signer, code=slip.signer_code)), body),
        Paragraph(_text(t("signed_at", when=signed)), body),
        Paragraph(_text(t("certificate", subject=slip.cert_subject)), small),
    ]
    if slip.share_url:
        story += [
            Spacer(1, 3 * mm),
            Paragraph(_text(t("scan_to_view")), small),
            _qr(slip.share_url),
        ]
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=t("slip_title"),
        author=slip.signer,
        subject=f"report {slip.report_id}",
        invariant=True,
    )
    document.build(story)
    return buffer.getvalue()


def study_reference(metadata_json: Sequence[str]) -> list[Dataset]:
    """Evidence datasets for the SR from stored DICOM JSON: identities and the patient and
    study modules only (no bulk data is needed to cite an image)."""
    evidence = []
    for text in metadata_json:
        stored = from_json(text)
        ds = Dataset()
        for keyword in (*PATIENT_STUDY, "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID"):
            if keyword in stored:
                setattr(ds, keyword, stored.data_element(keyword).value)  # type: ignore[union-attr]
        evidence.append(ds)
    return evidence


def from_json(text: str) -> Dataset:
    """A dataset from stored DICOM JSON, bulk data left out (no reader needs the pixels)."""
    document = {
        tag: value
        for tag, value in json.loads(text).items()
        if "BulkDataURI" not in value and "InlineBinary" not in value
    }
    return Dataset.from_json(document)


def series_uid(study_uid: str, what: str) -> str:
    """One SR series and one PDF series per study: the same UID at every signing."""
    return str(generate_uid(entropy_srcs=[study_uid, "pacs-report", what]))


@dataclass(frozen=True)
class SrContent:
    findings: str
    conclusion: str
    recommendations: str
    key_images: list[tuple[str, str]]  # (SOP Class UID, SOP Instance UID)
    author: str
    verifier: str  # verifying observer names (PN), the signer first
    organization: str
    instance_number: int


def _person(name: str) -> str:
    """A user name as a DICOM PN: one component, said so by the trailing caret."""
    return name.replace("^", " ")[:63] + "^"


def build_sr(
    evidence: list[Dataset],
    content: SrContent,
    *,
    sop_instance_uid: str,
    previous: list[Dataset] | None = None,
) -> Dataset:
    """A Comprehensive SR (TID 2000-like): findings, conclusion, recommendation as text,
    key images as image references, the author as observer, verified by the signer."""
    observer = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121006", "DCM", "Person"),
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=_person(content.author)
        ),
    )
    root = hd.sr.ContainerContentItem(name=REPORT_CODE, template_id="2000")
    items: list[hd.sr.ContentItem] = list(observer)  # type: ignore[arg-type]
    for code, text in (
        (FINDING, content.findings),
        (CONCLUSION, content.conclusion),
        (RECOMMENDATION, content.recommendations),
    ):
        if text:
            items.append(hd.sr.TextContentItem(name=code, value=text, relationship_type="CONTAINS"))
    for sop_class, sop_instance in content.key_images:
        items.append(
            hd.sr.ImageContentItem(
                name=KEY_IMAGE,
                referenced_sop_class_uid=sop_class,
                referenced_sop_instance_uid=sop_instance,
                relationship_type="CONTAINS",
            )
        )
    root.ContentSequence = hd.sr.ContentSequence(items, is_root=False)
    study_uid = evidence[0].StudyInstanceUID
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=root,
        series_instance_uid=series_uid(study_uid, "sr"),
        series_number=9001,
        sop_instance_uid=sop_instance_uid,
        instance_number=content.instance_number,
        manufacturer="PACS",
        is_complete=True,
        is_final=True,
        is_verified=True,
        institution_name=content.organization or None,
        verifying_observer_name=_person(content.verifier),
        verifying_organization=content.organization or "-",
        previous_versions=previous or None,
        record_evidence=False,
    )
    sr.SpecificCharacterSet = "ISO_IR 192"
    return sr


def encapsulated_pdf(
    reference: Dataset, pdf: bytes, *, sop_instance_uid: str, title: str, instance_number: int
) -> Dataset:
    """An Encapsulated PDF instance of the study (the signed PDF's bytes, untouched)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in PATIENT_STUDY:
        if keyword in reference:
            setattr(ds, keyword, reference.data_element(keyword).value)  # type: ignore[union-attr]
    now = datetime.now()
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.SOPInstanceUID = sop_instance_uid
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = series_uid(reference.StudyInstanceUID, "pdf")
    ds.SeriesNumber = 9002
    ds.InstanceNumber = instance_number
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.Manufacturer = "PACS"
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = title[:64]
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator = (
        REPORT_CODE.value,
        REPORT_CODE.scheme_designator,
    )
    concept.CodeMeaning = REPORT_CODE.meaning
    ds.ConceptNameCodeSequence = [concept]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    return ds


def part10(ds: Dataset) -> bytes:
    """``ds`` as a Part 10 file in Explicit VR Little Endian (what the ingest path reads)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
