"""Association level: C-ECHO with DCMTK, the calling-AE allow-list, TCP_NODELAY, syntax choice."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, write
from tests.dimse.peers import (
    dataset_bytes,
    dcmtk_wire_form,
    echoscu,
    send_files,
    status_of,
    store_ae,
    stored_bytes,
    storescu,
)
from tests.dimse.samples import real_file


def test_echoscu(dcmtk: None, dimse_server: DimseServer) -> None:
    result = echoscu(dimse_server.port)
    assert result.returncode == 0, result.stderr


def test_accepted_sockets_have_nagle_disabled(dimse_server: DimseServer) -> None:
    ae = AE(ae_title="NAGLE")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        assert dimse_server.server is not None
        [server_side] = dimse_server.server.active_associations
        sock = server_side.dul.socket.socket  # type: ignore[union-attr]
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        assoc.release()


def test_a_burst_of_connections_waits_in_the_backlog(sqlite_archive: Archive) -> None:
    """64 connections before anyone accepts all complete their handshake at once.

    With socketserver's default backlog of 5, the sixth and later SYNs were
    dropped and retried for seconds: a burst was accepted late and its ARTIM
    timer started late.
    """
    server = DimseServer(sqlite_archive)
    server.bind("127.0.0.1", 0)  # listening, not accepting yet
    burst: list[socket.socket] = []
    try:
        for _ in range(64):
            burst.append(  # from another address: 127.0.0.1 keeps its per-address share
                socket.create_connection(
                    ("127.0.0.1", server.port), timeout=0.5, source_address=("127.0.0.2", 0)
                )
            )
        server.start()
        ae = AE(ae_title="AFTER")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", server.port, ae_title="PACS")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()
    finally:
        for connection in burst:
            connection.close()
        server.stop(grace=2)


@pytest.fixture
def guarded_server(tmp_path: Path, database_url: str) -> Iterator[DimseServer]:
    """A server that takes associations only from CT01 and MR01."""
    settings = Settings(
        data_dir=tmp_path / "guarded",
        database_url=database_url,
        allowed_calling_aes=["CT01", "MR01"],
    )
    archive = Archive.open(settings)
    server = DimseServer(archive)
    server.start("127.0.0.1", 0)
    yield server
    server.stop(grace=1)
    archive.close()


def test_allow_list_refuses_other_calling_aes(guarded_server: DimseServer) -> None:
    for calling in ("INTRUDER", "CT0", "ct01"):
        ae = store_ae(calling, sop_classes=[CTImageStorage])
        assoc = ae.associate("127.0.0.1", guarded_server.port, ae_title="PACS")
        assert assoc.is_rejected, calling
    ds = ct_slice()
    for calling in ("CT01", "MR01"):
        ae = store_ae(calling, sop_classes=[CTImageStorage])
        assoc = ae.associate("127.0.0.1", guarded_server.port, ae_title="PACS")
        assert assoc.is_established, calling
        assert status_of(assoc.send_c_store(ds)) == (0, "")
        assoc.release()
    assert guarded_server.archive.counts()["instances"] == 1


def test_allow_list_with_dcmtk(dcmtk: None, guarded_server: DimseServer, tmp_path: Path) -> None:
    path = write(ct_slice(), tmp_path / "slice.dcm")
    refused = storescu(guarded_server.port, path, calling="INTRUDER")
    assert refused.returncode != 0 and "Association Rejected" in refused.stderr, refused.stderr
    assert echoscu(guarded_server.port, calling="INTRUDER").returncode != 0
    accepted = storescu(guarded_server.port, path, calling="CT01")
    assert accepted.returncode == 0, accepted.stderr
    assert guarded_server.archive.counts()["instances"] == 1


def test_sender_is_never_asked_to_compress_lossily(
    dcmtk: None, archive: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    """One context offering JPEG baseline and the uncompressed syntaxes (`storescu -xy +C`):
    an uncompressed image must arrive uncompressed, exactly as it was."""
    sent = dcmtk_wire_form(real_file("SC_rgb.dcm"), tmp_path / "rgb.dcm")
    result = storescu(dimse_server.port, sent, options=["-xy", "+C", "-v"])
    assert result.returncode == 0, result.stderr
    assert "-> JPEG" not in result.stderr  # storescu did not convert it
    [instance] = archive.locate()
    assert instance.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert dataset_bytes(stored_bytes(archive, instance.sop_instance_uid)) == dataset_bytes(
        sent.read_bytes()
    )


def test_default_pynetdicom_proposal_is_not_deflated(
    archive: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    """pynetdicom offers implicit, explicit, deflated and big endian: we take explicit VR
    little endian, not deflate (which would cost both sides CPU and slow frame access)."""
    ds = ct_slice()
    assoc = store_ae(sop_classes=[CTImageStorage]).associate(
        "127.0.0.1", dimse_server.port, ae_title="PACS"
    )
    assert assoc.is_established
    [context] = assoc.accepted_contexts
    assert context.transfer_syntax[0] == "1.2.840.10008.1.2.1"
    assoc.release()
    assert send_files(dimse_server.port, [write(ds, tmp_path / "s.dcm")]) == [(0, "")]
