"""Old modalities can send: retired storage SOP classes and private ones listed in a setting.

pynetdicom's storage list stops at current SOP classes; an ultrasound or
nuclear-medicine device of the 1990s still sends Ultrasound Image Storage
(Retired) or Nuclear Medicine Image Storage (Retired). Each is sent by DCMTK
storescu (proposing just the file's class) and by pynetdicom, and must be
stored; a private class is accepted only once the setting names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from pacs.dimse.storage_classes import retired_storage_sop_classes, storage_sop_classes
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, write
from tests.dimse.peers import status_of, store_ae, storescu

RETIRED = {
    "1.2.840.10008.5.1.4.1.1.6": "Ultrasound Image Storage (Retired)",
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image Storage (Retired)",
    "1.2.840.10008.5.1.4.1.1.5": "Nuclear Medicine Image Storage (Retired)",
    "1.2.840.10008.5.1.4.1.1.77.1": "VL Image Storage - Trial (Retired)",
}
PRIVATE = "1.2.826.0.1.3680043.8.498.77.1"  # a vendor's private storage SOP class


def _of_class(sop_class: str, index: int) -> Dataset:
    ds = ct_slice(index=index, size=32)
    ds.SOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    return ds


def _stored_classes(archive: Archive) -> dict[str, str]:
    return {i.sop_instance_uid: i.sop_class_uid for i in archive.locate()}


def test_every_retired_storage_class_is_accepted_beside_pynetdicom_s() -> None:
    accepted = storage_sop_classes()
    assert set(RETIRED) <= set(retired_storage_sop_classes())
    assert set(RETIRED) <= set(accepted)
    assert "1.2.840.10008.1.20.1" not in accepted  # storage commitment is no storage class
    assert len(accepted) == len(set(accepted)) > 128  # more than one requestor may propose


@pytest.mark.usefixtures("dcmtk")
def test_storescu_stores_retired_classes(
    archive: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    sent = {}
    for index, sop_class in enumerate(RETIRED):
        ds = _of_class(sop_class, index)
        path = write(ds, tmp_path / f"{index}.dcm")
        # -R: propose only the classes of the files sent, as an old device does
        result = storescu(dimse_server.port, path, options=["-R"])
        assert result.returncode == 0, result.stderr
        sent[str(ds.SOPInstanceUID)] = sop_class
    assert _stored_classes(archive) == sent


def test_pynetdicom_stores_retired_classes(archive: Archive, dimse_server: DimseServer) -> None:
    datasets = [_of_class(sop_class, index) for index, sop_class in enumerate(RETIRED)]
    ae = store_ae(transfer_syntaxes=[ExplicitVRLittleEndian], sop_classes=list(RETIRED))
    assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        answers = [status_of(assoc.send_c_store(ds)) for ds in datasets]
    finally:
        assoc.release()
    assert answers == [(0x0000, "")] * len(RETIRED)
    assert _stored_classes(archive) == {str(ds.SOPInstanceUID): ds.SOPClassUID for ds in datasets}


@pytest.fixture
def private_server(archive: Archive) -> Iterator[DimseServer]:
    archive.settings = Settings(
        data_dir=archive.settings.data_dir,
        database_url=archive.settings.database_url,
        extra_storage_sop_classes=[PRIVATE],
    )
    server = DimseServer(archive)
    server.start("127.0.0.1", 0)
    yield server
    server.stop(grace=2)


def test_a_private_class_needs_the_setting(archive: Archive, dimse_server: DimseServer) -> None:
    ae = store_ae(transfer_syntaxes=[ExplicitVRLittleEndian], sop_classes=[PRIVATE])
    assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert not assoc.is_established  # its only context is refused: no association


def test_a_private_class_in_the_setting_is_stored(
    archive: Archive, private_server: DimseServer
) -> None:
    """By pynetdicom: DCMTK storescu refuses to send a storage class it does not know."""
    datasets = [_of_class(PRIVATE, index) for index in range(2)]
    ae = store_ae(transfer_syntaxes=[ExplicitVRLittleEndian], sop_classes=[PRIVATE])
    assoc = ae.associate("127.0.0.1", private_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        answers = [status_of(assoc.send_c_store(ds)) for ds in datasets]
    finally:
        assoc.release()
    assert answers == [(0x0000, "")] * 2
    assert _stored_classes(archive) == {str(ds.SOPInstanceUID): PRIVATE for ds in datasets}
