"""Peers are known by title AND address (and certificate): a spoofed calling AE title gets nothing.

The attack: a workstation registered at 10.9.9.9 for C-GET; anyone on the
network who sends its AE title from another address pulled its studies, in
strict mode too. Each refusal says why, in the DIMSE status, the log and the
audit trail.
"""

from __future__ import annotations

import io
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.principal import Kind, Principal, Role
from pacs.config import RemoteAE as Peer
from pacs.config import remote_ae
from pacs.dimse.refusals import RefusalRecorder
from pacs.dimse.server import DimseServer
from pacs.settings import RemoteAE, Settings
from tests.conftest import free_port
from tests.dicom_factory import ct_slice, to_bytes
from tests.pki import client_context, make_pki

STUDY = "1.2.826.0.1.3680043.8.498.77"


def _server(
    tmp_path: Path, database_url: str, *peers: RemoteAE, instances: int = 3, **settings: object
) -> DimseServer:
    archive = Archive.open(
        Settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            remote_aes=list(peers),
            **settings,  # type: ignore[arg-type]
        )
    )
    for index in range(instances):
        archive.ingest(io.BytesIO(to_bytes(ct_slice(STUDY, index=index))), Origin(door="test"))
    server = DimseServer(archive)
    server.start("127.0.0.1", 0)
    return server


@pytest.fixture
def servers() -> Iterator[list[DimseServer]]:
    started: list[DimseServer] = []
    yield started
    for server in started:
        server.stop(grace=1)
        server.archive.close()


def _get(
    port: int, calling: str, tls: tuple[ssl.SSLContext, str] | None = None
) -> tuple[bool, int | None, str, int]:
    """(associated, final status, error comment, instances received) of a study C-GET."""
    received: list[Dataset] = []
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    handlers = [(evt.EVT_C_STORE, lambda event: (received.append(event.dataset), 0x0000)[1])]
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="PACS",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=handlers,
        tls_args=tls,
    )
    if not assoc.is_established:
        return False, None, "", 0
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = STUDY
    final, comment = None, ""
    for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
        final = int(status.Status)
        comment = str(status.get("ErrorComment", ""))
    assoc.release()
    return True, final, comment, len(received)


def _audit(server: DimseServer, action: str) -> list[str]:
    return [e.outcome for e in server.archive.audit.events() if e.action == action]


def test_strict_mode_refuses_a_registered_title_from_another_address(
    tmp_path: Path, database_url: str, servers: list[DimseServer]
) -> None:
    remote = RemoteAE(ae_title="WS_RADIO", host="10.9.9.9", port=104, services=["find", "get"])
    server = _server(tmp_path, database_url, remote, dicom_strict=True)
    servers.append(server)
    for _ in range(5):  # a peer retrying in a loop gets one record, not one per attempt
        associated, _, _, received = _get(server.port, "WS_RADIO")
        assert not associated and received == 0
    [refusal] = _audit(server, "association")
    assert "registered at 10.9.9.9, but called from 127.0.0.1" in refusal
    # The same peer, registered where it really is, gets the study.
    server.archive.remote_aes.replace("WS_RADIO", _with_host(remote, "127.0.0.1"))
    associated, status, _, received = _get(server.port, "WS_RADIO")
    assert associated and status == 0x0000 and received == 3


def test_open_mode_refuses_queries_and_retrievals_from_another_address(
    tmp_path: Path, database_url: str, servers: list[DimseServer]
) -> None:
    remote = RemoteAE(ae_title="WS_RADIO", host="10.9.9.9", port=104, services=["find", "get"])
    server = _server(tmp_path, database_url, remote)
    servers.append(server)
    associated, status, comment, received = _get(server.port, "WS_RADIO")
    assert associated  # storage stays open to any AE in open mode...
    assert status == 0xC000 and received == 0  # ...query and retrieval do not
    assert "registered at 10.9.9.9" in comment
    assert any("called from 127.0.0.1" in outcome for outcome in _audit(server, "c-get"))
    ae = AE(ae_title="WS_RADIO")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="PACS")
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    statuses = [
        (int(s.Status), m)
        for s, m in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
    ]
    assoc.release()
    assert statuses == [(0xC000, None)]
    assert any("registered at 10.9.9.9" in outcome for outcome in _audit(server, "c-find"))


def _with_host(remote: RemoteAE, host: str) -> Peer:
    return remote_ae(
        ae_title=remote.ae_title, host=host, port=remote.port, services=remote.services
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_client_certificate_identity(
    tmp_path: Path, database_url: str, servers: list[DimseServer], pki: Path
) -> None:
    tls_settings = {
        "dicom_tls_port": free_port(),
        "dicom_tls_cert_file": pki / "server.pem",
        "dicom_tls_key_file": pki / "server.key",
        "dicom_tls_ca_file": pki / "ca.pem",
        "dicom_strict": True,
    }
    remote = RemoteAE(ae_title="WS_TLS", host="127.0.0.1", services=["get"], tls_identity="client")
    server = _server(tmp_path, database_url, remote, **tls_settings)
    servers.append(server)
    with_cert = (client_context(pki, with_cert=True), "server")
    associated, status, _, received = _get(server.tls_port, "WS_TLS", with_cert)
    assert associated and status == 0x0000 and received == 3
    # Without TLS the same title and address are not enough.
    associated, *_ = _get(server.port, "WS_TLS")
    assert not associated
    assert any("must call over DICOM TLS" in o for o in _audit(server, "association"))
    # A certificate naming someone else is not enough either.
    server.archive.remote_aes.replace(
        "WS_TLS",
        remote_ae(
            ae_title="WS_TLS", host="127.0.0.1", port=104, services=["get"], tls_identity="ws-7"
        ),
    )
    associated, *_ = _get(server.tls_port, "WS_TLS", with_cert)
    assert not associated
    assert any("certificate for ws-7 (showed client)" in o for o in _audit(server, "association"))


@pytest.mark.parametrize("strict", [True, False])
def test_unreadable_peer_configuration(
    tmp_path: Path, servers: list[DimseServer], strict: bool
) -> None:
    """Index gone before the first association: strict mode rejects for now (transient), open
    mode admits (each request then answers 0xA700 until the index is back)."""
    folder = tmp_path / "index"
    remote = RemoteAE(ae_title="WS_RADIO", host="127.0.0.1", port=104, services=["find"])
    server = _server(tmp_path, f"sqlite:///{folder / 'index.sqlite'}", remote, dicom_strict=strict)
    servers.append(server)
    server.archive.engine.dispose()
    folder.rename(tmp_path / "index.away")  # an unmounted volume
    ae = AE(ae_title="WS_RADIO")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="PACS")
    if strict:
        assert assoc.is_rejected
        assert assoc.acceptor.primitive is not None and assoc.acceptor.primitive.result == 0x02
    else:
        assert assoc.is_established
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ""
        [(status, _)] = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
        assert int(status.Status) == 0xA700
        assoc.release()
    (tmp_path / "index.away").rename(folder)
    associated, *_ = _get(server.port, "WS_RADIO")
    assert associated  # back without a restart


def test_repeated_refusals_are_counted_in_the_next_record(archive: Archive) -> None:
    recorder = RefusalRecorder(archive, window=0.3)
    spoofer = Principal(Kind.AE, "WS_RADIO", Role.MODALITY, "10.0.0.7:50000")
    for _ in range(3):
        recorder.refused(spoofer, "10.0.0.7", "AE WS_RADIO is registered at 10.9.9.9")
    recorder.refused(spoofer, "10.0.0.8", "AE WS_RADIO is registered at 10.9.9.9")
    first = time.monotonic()
    while time.monotonic() - first < 0.35:  # the window itself is under test
        time.sleep(0.05)
    recorder.refused(spoofer, "10.0.0.7", "AE WS_RADIO is registered at 10.9.9.9")
    records = [e for e in archive.audit.events() if e.action == "association"]
    assert [e.detail for e in records] == ["", "", "2 more since the last record"]
