"""C-MOVE to destinations that accept some transfer syntaxes only: convert, never degrade.

A study of a JPEG Lossless Secondary Capture (about 100 KB, like the one a
storescp without ``+xa`` used to miss) and CT slices stored in both native
syntaxes goes to DCMTK's storescp (uncompressed only, and ``+xa``) and to
pynetdicom SCPs accepting one syntax per class.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLossless,
)
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelMove,
)

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.dimse.server import DimseServer
from pacs.settings import RemoteAE
from pacs.transcode import transcode_dataset
from tests.conftest import free_port
from tests.dicom_factory import ct_slice, to_bytes
from tests.peers import register
from tests.retrieve_dimse import destinations

STUDY = "1.2.826.0.1.3680043.8.498.800"
SC = f"{STUDY}.9.1"
CT_EXPLICIT = (f"{STUDY}.1.1", f"{STUDY}.1.2")
CT_IMPLICIT = f"{STUDY}.1.3"
IMPLICIT = ImplicitVRLittleEndian


def _sc_jpeg_lossless() -> Dataset:
    ds = ct_slice(STUDY, f"{STUDY}.9", SC, size=256, seed=7)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.Modality = "OT"
    return transcode_dataset(ds, JPEGLossless)


@pytest.fixture
def study(sqlite_archive: Archive) -> dict[str, np.ndarray]:
    """SOP Instance UID -> pixels of each stored instance."""
    pixels = {}
    datasets = [_sc_jpeg_lossless()]
    for index, uid in enumerate((*CT_EXPLICIT, CT_IMPLICIT)):
        ds = ct_slice(STUDY, f"{STUDY}.1", uid, index=index, size=64)
        if uid == CT_IMPLICIT:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        datasets.append(ds)
    for ds in datasets:
        raw = to_bytes(ds)
        sqlite_archive.ingest(io.BytesIO(raw), Origin(door="test"))
        pixels[str(ds.SOPInstanceUID)] = dcmread(io.BytesIO(raw)).pixel_array
    assert 60_000 < len(to_bytes(datasets[0])) < 200_000  # a real image's size, compressed
    return pixels


@pytest.fixture
def server(sqlite_archive: Archive) -> Iterator[DimseServer]:
    server = DimseServer(sqlite_archive)
    server.start("127.0.0.1", 0)
    yield server
    server.stop(grace=2)


def _move(archive: Archive, server: DimseServer, destination: str, port: int) -> Dataset:
    register(
        archive,
        RemoteAE(ae_title="MOVESCU", services=["move"]),
        RemoteAE(ae_title=destination, host="127.0.0.1", port=port, services=["store"]),
    )
    scu = AE(ae_title="MOVESCU")
    scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = scu.associate("127.0.0.1", server.port, ae_title="PACS")
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = STUDY
    try:
        responses = list(
            assoc.send_c_move(identifier, destination, StudyRootQueryRetrieveInformationModelMove)
        )
    finally:
        assoc.release()
    status, failed = responses[-1]
    if failed is not None and "FailedSOPInstanceUIDList" in failed:
        status.FailedSOPInstanceUIDList = failed.FailedSOPInstanceUIDList
    return status


def _files(folder: Path) -> dict[str, Dataset]:
    found = {}
    for path in folder.iterdir():
        ds = dcmread(path)
        assert str(ds.SOPInstanceUID) not in found, "received twice"
        found[str(ds.SOPInstanceUID)] = ds
    return found


def _counts(status: Dataset) -> tuple[int, int, int, int]:
    return (
        int(status.Status),
        int(status.NumberOfCompletedSuboperations),
        int(status.NumberOfFailedSuboperations),
        int(status.NumberOfWarningSuboperations),
    )


def test_storescp_without_compression_gets_the_jpeg_image_decompressed(
    sqlite_archive: Archive,
    study: dict[str, np.ndarray],
    server: DimseServer,
    tmp_path: Path,
    dcmtk: None,
) -> None:
    folder = tmp_path / "plain"
    with destinations.storescp(folder) as port:
        status = _move(sqlite_archive, server, "STORESCP", port)
    assert _counts(status) == (0x0000, 4, 0, 0)
    received = _files(folder)
    assert set(received) == set(study)
    assert not received[SC].file_meta.TransferSyntaxUID.is_compressed
    for uid, ds in received.items():
        assert np.array_equal(ds.pixel_array, study[uid])  # lossless: the same pixels
    assert received[CT_IMPLICIT].file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert received[CT_EXPLICIT[0]].file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_storescp_accepting_all_gets_every_object(
    sqlite_archive: Archive,
    study: dict[str, np.ndarray],
    server: DimseServer,
    tmp_path: Path,
    dcmtk: None,
) -> None:
    folder = tmp_path / "all"
    with destinations.storescp(folder, "+xa") as port:
        status = _move(sqlite_archive, server, "STORESCP", port)
    assert _counts(status) == (0x0000, 4, 0, 0)
    received = _files(folder)
    assert set(received) == set(study)
    # storescp +xa (DCMTK 3.6.7) takes JPEG lossless SV1 (.70) but refuses .57: the
    # image used to be refused; it now goes decompressed, pixel for pixel.
    assert received[SC].file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert received[CT_IMPLICIT].file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert received[CT_EXPLICIT[1]].file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert all(np.array_equal(ds.pixel_array, study[uid]) for uid, ds in received.items())


class OneSyntaxSCP:
    """A pynetdicom storage SCP accepting each class in the one syntax given; it records
    the contexts it was offered and what it received."""

    def __init__(self, accepted: dict[str, str]) -> None:
        self.offered: list[tuple[str, list[str]]] = []
        self.received: dict[str, tuple[str, np.ndarray]] = {}
        ae = AE(ae_title="ONESYNTAX")
        for sop_class, syntax in accepted.items():
            ae.add_supported_context(sop_class, syntax)
        self.port = free_port()
        self.server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_REQUESTED, self.on_requested), (evt.EVT_C_STORE, self.on_store)],
        )

    def on_requested(self, event: Any) -> None:
        for cx in event.assoc.requestor.requested_contexts:
            self.offered.append((str(cx.abstract_syntax), [str(t) for t in cx.transfer_syntax]))

    def on_store(self, event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        uid = str(ds.SOPInstanceUID)
        assert uid not in self.received, "received twice"
        self.received[uid] = (str(event.context.transfer_syntax), ds.pixel_array)
        return 0x0000


@pytest.fixture
def one_syntax_scp(request: pytest.FixtureRequest) -> Iterator[OneSyntaxSCP]:
    scp = OneSyntaxSCP(request.param)
    yield scp
    scp.server.shutdown()


@pytest.mark.parametrize(
    "one_syntax_scp",
    [
        {
            CTImageStorage: ImplicitVRLittleEndian,
            SecondaryCaptureImageStorage: ImplicitVRLittleEndian,
        }
    ],
    indirect=True,
)
def test_each_object_is_converted_to_the_syntax_its_class_was_accepted_in(
    sqlite_archive: Archive,
    study: dict[str, np.ndarray],
    server: DimseServer,
    one_syntax_scp: OneSyntaxSCP,
) -> None:
    status = _move(sqlite_archive, server, "ONESYNTAX", one_syntax_scp.port)
    assert _counts(status) == (0x0000, 4, 0, 0)
    received = one_syntax_scp.received
    assert set(received) == set(study)
    assert {uid: syntax for uid, (syntax, _) in received.items()} == {
        SC: ImplicitVRLittleEndian,
        CT_EXPLICIT[0]: ImplicitVRLittleEndian,
        CT_EXPLICIT[1]: ImplicitVRLittleEndian,
        CT_IMPLICIT: ImplicitVRLittleEndian,
    }
    assert all(np.array_equal(pixels, study[uid]) for uid, (_, pixels) in received.items())
    # Every stored (class, syntax) pair was offered in a context of its own.
    offered = {(sop_class, syntaxes[0]) for sop_class, syntaxes in one_syntax_scp.offered}
    assert {
        (SecondaryCaptureImageStorage, JPEGLossless),
        (CTImageStorage, ExplicitVRLittleEndian),
        (CTImageStorage, ImplicitVRLittleEndian),
    } <= offered
    assert all(len(syntaxes) == 1 for _, syntaxes in one_syntax_scp.offered)
    assert {sop_class for sop_class, _ in one_syntax_scp.offered} == {
        CTImageStorage,
        SecondaryCaptureImageStorage,
    }


@pytest.mark.parametrize(
    "one_syntax_scp",
    [{CTImageStorage: ExplicitVRLittleEndian, SecondaryCaptureImageStorage: JPEGBaseline8Bit}],
    indirect=True,
)
def test_a_lossless_image_is_never_sent_lossy(
    sqlite_archive: Archive,
    study: dict[str, np.ndarray],
    server: DimseServer,
    one_syntax_scp: OneSyntaxSCP,
) -> None:
    status = _move(sqlite_archive, server, "ONESYNTAX", one_syntax_scp.port)
    assert _counts(status) == (0xB000, 3, 1, 0)
    assert status.FailedSOPInstanceUIDList == SC
    assert set(one_syntax_scp.received) == {*CT_EXPLICIT, CT_IMPLICIT}


def test_conversion_is_bounded_by_the_setting(
    sqlite_archive: Archive,
    study: dict[str, np.ndarray],
    server: DimseServer,
    tmp_path: Path,
    dcmtk: None,
) -> None:
    """The SC decodes to 128 KiB: over a 100 KB limit it is refused, the rest still goes."""
    sqlite_archive.settings.retrieve_convert_max_bytes = 100_000
    folder = tmp_path / "bounded"
    with destinations.storescp(folder) as port:
        status = _move(sqlite_archive, server, "STORESCP", port)
    assert _counts(status) == (0xB000, 3, 1, 0)
    assert status.FailedSOPInstanceUIDList == SC
    assert set(_files(folder)) == {*CT_EXPLICIT, CT_IMPLICIT}
