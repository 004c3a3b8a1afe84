"""Every operation on patient data leaves exactly one audit record, through every door."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.dimse.server import DimseServer
from pacs.settings import RemoteAE
from tests.dicom_factory import ct_slice, to_bytes
from tests.peers import register

STUDY = "1.2.826.0.1.3680043.8.498.900"


def _new_actions(archive: Archive, before: int) -> list[str]:
    return [event.action for event in archive.audit.events()[before:]]


def test_one_record_per_operation(
    archive: Archive, client: TestClient, dimse_server: DimseServer
) -> None:
    register(archive, RemoteAE(ae_title="WORKSTATION", services=["find", "get"]))
    ds = ct_slice(STUDY, index=0, size=16)
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="test"))
    uids = f"{STUDY}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"

    http_operations = {
        "qido": lambda: client.get("/dicom-web/studies?PatientID=BN0001"),
        "wado": lambda: client.get(f"/dicom-web/studies/{uids}"),
        "wado-metadata": lambda: client.get(f"/dicom-web/studies/{uids}/metadata"),
        "wado-rendered": lambda: client.get(f"/dicom-web/studies/{uids}/rendered"),
        "stow": lambda: client.post(
            "/dicom-web/studies",
            content=b"--b\r\nContent-Type: application/dicom\r\n\r\n"
            + to_bytes(ct_slice(STUDY, index=1, size=16))
            + b"\r\n--b--\r\n",
            headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
        ),
    }
    for name, call in http_operations.items():
        before = len(archive.audit.events())
        response = call()
        assert response.status_code == 200, (name, response.status_code)
        actions = _new_actions(archive, before)
        assert len(actions) == 1, (name, actions)

    ae = AE(ae_title="WORKSTATION")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        "127.0.0.1",
        dimse_server.port,
        ae_title="PACS",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[],
    )
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = STUDY
    before = len(archive.audit.events())
    list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
    assert _new_actions(archive, before) == ["c-find"]
    before = len(archive.audit.events())
    list(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))
    assert _new_actions(archive, before) == ["c-get"]
    assoc.release()
