"""DCMTK findscu against our C-FIND SCP: both information models, every level, character sets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from tests.query_dimse.archive_factory import STUDIES, series_uid, study_uid

pytestmark = pytest.mark.usefixtures("dcmtk")


def findscu(
    port: int, model: str, keys: list[str], out: Path, calling: str = "FINDSCU"
) -> list[Dataset]:
    """Run findscu (-P patient root, -S study root); return the extracted response identifiers."""
    out.mkdir(parents=True, exist_ok=True)
    args = ["findscu", model, "-aet", calling, "-aec", "PACS", "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    result = subprocess.run(
        [*args, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    assert result.returncode == 0, result.stderr
    return [pydicom.dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]


def test_study_root_every_level(
    populated: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    port = dimse_server.port
    studies = findscu(
        port, "-S", ["QueryRetrieveLevel=STUDY", "StudyInstanceUID", "StudyDate=20250101-20251231"],
        tmp_path / "study",
    )  # fmt: skip
    expected = {study_uid(s) for s, spec in enumerate(STUDIES) if spec.date.startswith("2025")}
    assert {ds.StudyInstanceUID for ds in studies} == expected
    series = findscu(
        port, "-S",
        ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={study_uid(3)}", "SeriesInstanceUID",
         "Modality"],
        tmp_path / "series",
    )  # fmt: skip
    assert sorted((ds.SeriesInstanceUID, ds.Modality) for ds in series) == [
        (series_uid(3, 0), "CT"),
        (series_uid(3, 1), "MR"),
    ]
    images = findscu(
        port, "-S",
        ["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={study_uid(0)}",
         f"SeriesInstanceUID={series_uid(0, 1)}", "SOPInstanceUID", "InstanceNumber"],
        tmp_path / "image",
    )  # fmt: skip
    assert sorted(int(ds.InstanceNumber) for ds in images) == [1, 2]


def test_patient_root_every_level(
    populated: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    port = dimse_server.port
    patients = findscu(
        port, "-P", ["QueryRetrieveLevel=PATIENT", "PatientID=BN00*", "PatientName",
                     "PatientBirthDate"],
        tmp_path / "patient",
    )  # fmt: skip
    assert sorted(ds.PatientID for ds in patients) == [f"BN00{n}" for n in range(1, 6)]
    studies = findscu(
        port, "-P", ["QueryRetrieveLevel=STUDY", "PatientID=BN002", "StudyInstanceUID",
                     "AccessionNumber"],
        tmp_path / "study",
    )  # fmt: skip
    assert sorted(ds.AccessionNumber for ds in studies) == ["ACC2001", "ACC2002"]
    series = findscu(
        port, "-P", ["QueryRetrieveLevel=SERIES", "PatientID=BN002",
                     f"StudyInstanceUID={study_uid(3)}", "SeriesInstanceUID"],
        tmp_path / "series",
    )  # fmt: skip
    assert len(series) == 2
    images = findscu(
        port, "-P", ["QueryRetrieveLevel=IMAGE", "PatientID=BN001",
                     f"StudyInstanceUID={study_uid(0)}", f"SeriesInstanceUID={series_uid(0, 0)}",
                     "SOPInstanceUID"],
        tmp_path / "image",
    )  # fmt: skip
    assert len(images) == 3


def test_vietnamese_query_in_utf8(
    populated: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    found = findscu(
        dimse_server.port, "-S",
        ["SpecificCharacterSet=ISO_IR 192", "QueryRetrieveLevel=STUDY", "PatientName=Lê^Đức*",
         "StudyInstanceUID", "StudyDescription"],
        tmp_path / "utf8",
    )  # fmt: skip
    assert [(str(ds.PatientName), ds.StudyDescription) for ds in found] == [
        ("Lê^Đức Anh", "MR cột sống")
    ]
    assert found[0].SpecificCharacterSet == "ISO_IR 192"


def test_ascii_output_profile(
    populated: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    found = findscu(
        dimse_server.port, "-P",
        ["QueryRetrieveLevel=STUDY", "PatientID=BN003", "PatientName", "StudyDescription",
         "StudyInstanceUID"],
        tmp_path / "ascii", calling="OLDCONSOLE",
    )  # fmt: skip
    (ds,) = found
    assert "SpecificCharacterSet" not in ds  # the default repertoire
    assert str(ds.PatientName) == "Le^Duc Anh"  # case and ^ kept, marks and đ folded
    assert ds.StudyDescription == "MR cot song"
