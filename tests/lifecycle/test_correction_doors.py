"""A corrected name, ID, birth date and accession through the DICOM doors' delivered objects.

test_corrections.py covers QIDO, pynetdicom C-FIND, WADO-RS metadata and
instance bytes; here the objects a peer receives: pynetdicom C-GET, DCMTK
movescu to a DCMTK storescp, and DCMTK findscu's answer, while the bytes as
received stay in the store. SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
from pathlib import Path

from fastapi.testclient import TestClient
from pydicom import dcmread

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from pacs.settings import RemoteAE
from tests.conftest import free_port
from tests.lifecycle.conftest import StoredStudy
from tests.peers import register
from tests.retrieve_dimse.destinations import wait_listening

CORRECTED = {
    "PatientName": "Trần^Thị Bình",
    "PatientID": "BN0042",
    "PatientBirthDate": "19750203",
    "AccessionNumber": "ACC4242",
}


def _received_by_c_get(port: int, study_uid: str) -> list:
    from pydicom.dataset import Dataset
    from pynetdicom import AE, evt
    from pynetdicom.presentation import build_role
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        CTImageStorage,
        StudyRootQueryRetrieveInformationModelGet,
    )

    received: list = []

    def on_store(event: evt.Event) -> int:
        received.append(event.dataset)
        return 0x0000

    ae = AE(ae_title="FINDSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="PACS",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    try:
        statuses = [
            s for s, _ in assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
        ]
    finally:
        assoc.release()
    assert statuses[-1].Status == 0x0000
    return received


def _assert_corrected(ds: object) -> None:
    assert str(ds.PatientName) == CORRECTED["PatientName"]  # type: ignore[attr-defined]
    assert ds.PatientID == CORRECTED["PatientID"]  # type: ignore[attr-defined]
    assert ds.PatientBirthDate == CORRECTED["PatientBirthDate"]  # type: ignore[attr-defined]
    assert ds.AccessionNumber == CORRECTED["AccessionNumber"]  # type: ignore[attr-defined]


def test_corrected_values_reach_c_get_c_move_and_findscu(
    archive: Archive,
    client: TestClient,
    dimse_server: DimseServer,
    study: StoredStudy,
    tmp_path: Path,
    dcmtk: None,
) -> None:
    uid = study.study_uid
    response = client.post(
        f"/api/studies/{uid}/corrections",
        json={"attributes": CORRECTED, "reason": "registration error"},
    )
    assert response.status_code == 200, response.text

    # C-GET (pynetdicom): every delivered object carries the corrections, pixels unchanged.
    received = _received_by_c_get(dimse_server.port, uid)
    assert len(received) == 4
    for ds in received:
        _assert_corrected(ds)
        sent = dcmread(io.BytesIO(study.data[str(ds.SOPInstanceUID)]))
        assert ds.PixelData == sent.PixelData

    # C-MOVE (DCMTK movescu) to a DCMTK storescp.
    port, folder = free_port(), tmp_path / "moved"
    folder.mkdir()
    register(
        archive,
        RemoteAE(ae_title="MOVESCU", services=["find", "move"]),
        RemoteAE(ae_title="STORESCP", host="127.0.0.1", port=port, services=["store"]),
    )
    receiver = subprocess.Popen(
        ["storescp", "-aet", "STORESCP", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, receiver)
        moved = subprocess.run(
            [
                "movescu",
                "-S",
                "-aet",
                "MOVESCU",
                "-aec",
                "PACS",
                "-aem",
                "STORESCP",
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={uid}",
                "127.0.0.1",
                str(dimse_server.port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    assert moved.returncode == 0, moved.stderr
    files = list(folder.iterdir())
    assert len(files) == 4
    for path in files:
        _assert_corrected(dcmread(path))

    # DCMTK findscu answers the corrected birth date and ID; the old ID no longer matches.
    find = subprocess.run(
        [
            "findscu",
            "-S",
            "-aet",
            "MOVESCU",
            "-aec",
            "PACS",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"PatientID={CORRECTED['PatientID']}",
            "-k",
            "PatientBirthDate",
            "-k",
            "AccessionNumber",
            "-k",
            "StudyInstanceUID",
            "127.0.0.1",
            str(dimse_server.port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert find.returncode == 0, find.stderr
    answer = find.stdout + find.stderr
    assert "[19750203]" in answer and "[ACC4242" in answer and uid in answer  # SH is padded

    # The objects as received are still in the store, byte for byte.
    for result in study.results:
        with archive.open_blob(result.blob_key) as blob:
            assert hashlib.sha256(blob.read()).hexdigest() == result.sha256
