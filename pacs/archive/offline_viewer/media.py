"""Collecting what the offline viewer shows while an export writes the media, then writing it."""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID

from pacs.archive.offline_viewer.documents import (
    DocumentEntry,
    is_pdf,
    is_sr,
    pdf_entry,
    person_name,
    sr_entry,
)
from pacs.archive.offline_viewer.frames import ImageEntry, write_image
from pacs.i18n import LANGUAGES, catalogue

STATIC = Path(__file__).resolve().parent / "static"
DOMAIN = "media."


@dataclass
class _Series:
    folder: str
    number: str
    modality: str
    description: str
    images: list[ImageEntry] = field(default_factory=list)
    next_frame: int = 1

    def as_json(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "number": self.number,
            "modality": self.modality,
            "description": self.description,
            "images": [image.as_json() for image in self.images],
        }


@dataclass
class _Study:
    patient: dict[str, str]
    date: str
    description: str
    accession: str
    series: dict[str, _Series] = field(default_factory=dict)
    reports: list[DocumentEntry] = field(default_factory=list)
    others: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "patient": self.patient,
            "date": self.date,
            "description": self.description,
            "accession": self.accession,
            "series": [s.as_json() for s in self.series.values()],
            "reports": [r.as_json() for r in self.reports],
            "others": sorted(set(self.others)),
        }


class OfflineViewer:
    """The viewer's files for one medium, built under ``root`` (the medium's root layout)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "VIEWER" / "DATA"
        self.data.mkdir(parents=True, exist_ok=True)
        self.studies: dict[str, _Study] = {}
        self.series_made = 0
        self.documents_made = 0

    def add(self, ds: Dataset) -> None:
        """One object as it goes onto the medium (read whole, pixel data included)."""
        study = self._study(ds)
        if is_pdf(ds):
            self.documents_made += 1
            name = f"DOCS/D{self.documents_made:07d}.PDF"
            study.reports.append(pdf_entry(ds, self.data, name))
        elif is_sr(ds):
            study.reports.append(sr_entry(ds))
        elif "PixelData" in ds:
            series = self._series(study, ds)
            image = write_image(ds, self.data, series.folder, series.next_frame)
            series.next_frame += max(image.frames, 1)
            series.images.append(image)
        else:
            sop_class = UID(str(ds.get("SOPClassUID", "")))
            study.others.append(sop_class.name or str(sop_class))

    def write(self) -> None:
        """INDEX.HTM, README.TXT, the viewer's code and its index of the medium."""
        labels = self._labels()
        index = {
            "labels": labels,
            "made": date.today().isoformat(),
            "studies": [study.as_json() for study in self.studies.values()],
        }
        text = json.dumps(index, ensure_ascii=True, separators=(",", ":"))
        (self.data / "INDEX.JS").write_text(f"window.PACS_MEDIA={text};\n", encoding="ascii")
        for name in ("VIEWER.JS", "VIEWER.CSS"):
            shutil.copyfile(STATIC / name, self.root / "VIEWER" / name)
        page = (STATIC / "INDEX.HTM").read_text(encoding="utf-8")
        for lang in LANGUAGES:
            for key in ("title", "noscript"):
                page = page.replace(f"@@{key}_{lang}@@", html.escape(labels[lang][key]))
        (self.root / "INDEX.HTM").write_text(page, encoding="utf-8")
        readme = "\n\n".join(labels[lang]["readme"] for lang in LANGUAGES)
        (self.root / "README.TXT").write_text(readme + "\n", encoding="utf-8", newline="\r\n")

    def files(self) -> Iterator[tuple[Path, str]]:
        """Every file written, with its path on the medium."""
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            yield path, path.relative_to(self.root).as_posix()

    def _study(self, ds: Dataset) -> _Study:
        uid = str(ds.get("StudyInstanceUID", ""))
        if uid not in self.studies:
            self.studies[uid] = _Study(
                patient={
                    "name": person_name(ds.get("PatientName")),
                    "id": str(ds.get("PatientID", "")),
                    "birth": str(ds.get("PatientBirthDate", "")),
                    "sex": str(ds.get("PatientSex", "")),
                },
                date=str(ds.get("StudyDate", "")),
                description=str(ds.get("StudyDescription", "")),
                accession=str(ds.get("AccessionNumber", "")),
            )
        return self.studies[uid]

    def _series(self, study: _Study, ds: Dataset) -> _Series:
        uid = str(ds.get("SeriesInstanceUID", ""))
        if uid not in study.series:
            self.series_made += 1
            study.series[uid] = _Series(
                folder=f"S{self.series_made:07d}",
                number=str(ds.get("SeriesNumber", "")),
                modality=str(ds.get("Modality", "")),
                description=str(ds.get("SeriesDescription", "")),
            )
        return study.series[uid]

    @staticmethod
    def _labels() -> dict[str, dict[str, str]]:
        texts = catalogue().texts
        return {
            lang: {k[len(DOMAIN) :]: v for k, v in texts[lang].items() if k.startswith(DOMAIN)}
            for lang in LANGUAGES
        }
