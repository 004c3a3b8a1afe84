"""The study's reports on the media as the offline viewer lists them.

A signed report lives in the study as a DICOM SR and an Encapsulated PDF
(:mod:`pacs.reports.documents`), so a study exported onto media already carries
both; the viewer must let the other facility read them without DICOM software:

* Encapsulated PDF: the document's bytes are written beside the viewer as a
  ``.PDF`` file, which the browser opens from a plain link (its own PDF viewer);
* SR: the content tree is flattened here into indented lines (concept name,
  value) that the viewer shows as text: no SR template knowledge is needed to
  read findings and a conclusion, and no SR parser has to ship in JavaScript.

The text stays as it is in the objects (code meanings are the coding scheme's);
what frames it (titles, "verified by") comes from the media catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pacs.reading.sr_text import value_text

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
MAX_LINES = 5000  # a report, not a dump: deeper or longer trees are cut
MAX_DEPTH = 20


@dataclass
class DocumentEntry:
    """A report the viewer lists: a PDF file to open, or an SR's lines to show."""

    kind: str  # pdf | sr
    title: str
    date: str = ""
    verifier: str = ""
    file: str = ""  # the PDF, relative to the viewer's DATA folder
    lines: list[tuple[int, str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "date": self.date,
            "verifier": self.verifier,
            "file": self.file,
            "lines": [list(line) for line in self.lines],
        }


def is_pdf(ds: Dataset) -> bool:
    return str(ds.get("SOPClassUID", "")) == ENCAPSULATED_PDF and "EncapsulatedDocument" in ds


def is_sr(ds: Dataset) -> bool:
    return ds.get("ValueType") == "CONTAINER" and "ContentSequence" in ds


def pdf_entry(ds: Dataset, data: Path, name: str) -> DocumentEntry:
    """Write the PDF's bytes as ``data/name`` (its declared length, without the pad byte)."""
    document = bytes(ds.EncapsulatedDocument)
    length = ds.get("EncapsulatedDocumentLength")
    if isinstance(length, int) and 0 < length <= len(document):
        document = document[:length]
    target = data / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(document)
    title = str(ds.get("DocumentTitle") or "") or _meaning(ds.get("ConceptNameCodeSequence"))
    return DocumentEntry("pdf", title or "PDF", _date(ds), _verifier(ds), file=name)


def sr_entry(ds: Dataset) -> DocumentEntry:
    """The SR's title, date, verifier and its content tree as indented lines."""
    lines: list[tuple[int, str, str]] = []
    _walk(ds.ContentSequence, 0, lines)
    title = _meaning(ds.get("ConceptNameCodeSequence")) or "SR"
    return DocumentEntry("sr", title, _date(ds), _verifier(ds), lines=lines)


def _walk(items: Sequence, depth: int, lines: list[tuple[int, str, str]]) -> None:
    for item in items:
        if len(lines) >= MAX_LINES:
            return
        name, value = _meaning(item.get("ConceptNameCodeSequence")), _value(item)
        if name or value:
            lines.append((depth, name, value))
        if "ContentSequence" in item and depth < MAX_DEPTH:
            _walk(item.ContentSequence, depth + 1, lines)


def _value(item: Dataset) -> str:
    """The item's value as the reader's SR view writes it; references and coordinates left
    out (a UID or a polygon's points mean nothing to a reader of the disc)."""
    if item.get("ValueType") in ("IMAGE", "COMPOSITE", "WAVEFORM", "SCOORD", "SCOORD3D"):
        return ""
    return value_text(item)


def _meaning(codes: object) -> str:
    if isinstance(codes, Sequence) and len(codes):
        return str(codes[0].get("CodeMeaning", ""))
    return ""


def _verifier(ds: Dataset) -> str:
    observers = ds.get("VerifyingObserverSequence") or []
    return person_name(observers[0].get("VerifyingObserverName")) if observers else ""


def person_name(value: object) -> str:
    """A PN as people read it: components joined by spaces (the web app shows it so too)."""
    text = str(value or "").split("=")[0]
    return " ".join(text.replace("^", " ").split())


def _date(ds: Dataset) -> str:
    return str(ds.get("ContentDate") or ds.get("StudyDate") or "")
