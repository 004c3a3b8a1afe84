"""Modality Worklist C-FIND SCP: DCMTK findscu -W and pynetdicom against orders received by HL7.

The orders arrive over a real MLLP socket; the worklist answers in each calling
AE's character-set profile (utf8, latin1, ascii folded)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pydicom
import pytest
from hl7.client import MLLPClient
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.config.values import RemoteAE
from pacs.dimse.server import DimseServer
from tests.hl7.messages import listening, orm


@pytest.fixture
def orders(archive: Archive) -> Archive:
    with listening(archive) as listener, MLLPClient("127.0.0.1", listener.port) as client:
        for message in (
            orm("W1", accession="ACC1", modality="CT", when="202612041000"),
            orm("W2", accession="ACC2", modality="MR", when="202612041100"),
            orm(
                "W3",
                accession="ACC3",
                modality="CT",
                when="202612051000",
                patient_id="BN2",
                name="Phạm^Minh Đức",
            ),
            orm(
                "W4",
                accession="ACC4",
                modality="CT",
                when="202612041200",
                patient_id="BN3",
                name="Lê^Văn Tám",
            ),
            orm("W5", "CA", accession="ACC4", modality="CT", patient_id="BN3", name="Lê^Văn Tám"),
        ):
            assert b"MSA|AA|" in client.send_message(message)
    for title, profile in (
        ("CT01", "utf8"),
        ("NEWCT", "utf8"),
        ("OLDCT", "ascii"),
        ("LATIN", "latin1"),
    ):
        archive.remote_aes.add(
            RemoteAE(ae_title=title, host="127.0.0.1", port=104, charset_profile=profile)
        )
    return archive


def findscu_w(port: int, keys: list[str], out: Path, calling: str = "CT01") -> list[Dataset]:
    out.mkdir(parents=True, exist_ok=True)
    args = ["findscu", "-W", "-aet", calling, "-aec", "PACS", "-X", "-od", str(out)]
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


SPS_KEYS = [
    "ScheduledProcedureStepSequence[0].Modality=CT",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261204",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
]


@pytest.mark.usefixtures("dcmtk")
def test_findscu_worklist_by_modality_and_date(
    orders: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    found = findscu_w(
        dimse_server.port,
        ["PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID", *SPS_KEYS],
        tmp_path / "w",
    )
    # ACC2 is MR, ACC3 the next day, ACC4 cancelled.
    assert [ds.AccessionNumber for ds in found] == ["ACC1"]
    (item,) = found
    assert str(item.PatientName) == "Nguyễn^Thị Bích"
    assert item.SpecificCharacterSet == "ISO_IR 192"
    assert item.PatientID == "BN123"
    step = item.ScheduledProcedureStepSequence[0]
    assert (step.Modality, step.ScheduledProcedureStepStartTime) == ("CT", "1000")
    assert item.StudyInstanceUID.startswith("2.25.")
    by_name = findscu_w(
        dimse_server.port,
        ["PatientName=pham*", "AccessionNumber", "ScheduledProcedureStepSequence"],
        tmp_path / "n",
    )
    assert [ds.AccessionNumber for ds in by_name] == ["ACC3"]
    assert by_name[0].ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate == (
        "20261205"
    )


def _pynetdicom_worklist(port: int, calling: str, keys: Dataset) -> list[Dataset]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    assert assoc.is_established
    try:
        answers = []
        for status, identifier in assoc.send_c_find(keys, ModalityWorklistInformationFind):
            assert status.Status in (0xFF00, 0xFF01, 0x0000), hex(status.Status)
            if identifier is not None:
                answers.append(identifier)
        return answers
    finally:
        assoc.release()


def _keys(**top: str) -> Dataset:
    keys = Dataset()
    keys.PatientName = top.get("PatientName", "")
    keys.PatientID = top.get("PatientID", "")
    keys.AccessionNumber = ""
    step = Dataset()
    step.Modality = top.get("Modality", "")
    step.ScheduledStationAETitle = ""
    step.ScheduledProcedureStepStartDate = top.get("Date", "")
    keys.ScheduledProcedureStepSequence = [step]
    return keys


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # matching: the test above
def test_vietnamese_name_in_each_charset_profile(
    orders: Archive, dimse_server: DimseServer
) -> None:
    keys = _keys(PatientID="BN123", Modality="CT")
    (utf8,) = _pynetdicom_worklist(dimse_server.port, "NEWCT", keys)
    assert str(utf8.PatientName) == "Nguyễn^Thị Bích"
    (ascii_,) = _pynetdicom_worklist(dimse_server.port, "OLDCT", keys)
    assert "SpecificCharacterSet" not in ascii_ or ascii_.SpecificCharacterSet in ("", "ISO_IR 6")
    assert str(ascii_.PatientName) == "Nguyen^Thi Bich"
    (latin,) = _pynetdicom_worklist(dimse_server.port, "LATIN", keys)
    assert latin.SpecificCharacterSet == "ISO_IR 100"
    assert "Nguy" in str(latin.PatientName)
    # A range over two days, a folded name in any word order.
    found = _pynetdicom_worklist(
        dimse_server.port, "NEWCT", _keys(PatientName="*duc*", Date="20261201-20261231")
    )
    assert [ds.AccessionNumber for ds in found] == ["ACC3"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_calling_ae_sees_only_its_own_steps_when_configured(
    orders: Archive, dimse_server: DimseServer
) -> None:
    # OMI^O23 with an IPC segment: accession IPC-1, modality IPC-5, station AE IPC-9.
    omi = orm("W6", accession="ACC6", kind="OMI^O23^OMI_O23")
    omi += "\rIPC|ACC6|RP6|1.2.3.6|SPS6|CT||||CT01"
    with listening(orders) as listener, MLLPClient("127.0.0.1", listener.port) as client:
        assert b"MSA|AA|" in client.send_message(omi)
    orders.settings.worklist_calling_ae_only = True
    everything = _keys(Date="20261201-20261231")
    own = _pynetdicom_worklist(dimse_server.port, "CT01", everything)
    assert [ds.AccessionNumber for ds in own] == ["ACC6"]
    assert own[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT01"
    assert _pynetdicom_worklist(dimse_server.port, "NEWCT", everything) == []
    orders.settings.worklist_calling_ae_only = False
    assert len(_pynetdicom_worklist(dimse_server.port, "NEWCT", everything)) == 4
