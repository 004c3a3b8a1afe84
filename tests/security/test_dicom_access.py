"""DICOM access control: TLS port with optional client certificates, strict mode, C-STORE audit."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from pacs.settings import RemoteAE, Settings
from tests.conftest import free_port
from tests.dicom_factory import ct_slice
from tests.pki import client_context, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_server(tmp_path: Path, pki: Path, require_client_cert: bool) -> DimseServer:
    settings = Settings(
        data_dir=tmp_path / "data",
        dicom_tls_port=free_port(),
        dicom_tls_cert_file=pki / "server.pem",
        dicom_tls_key_file=pki / "server.key",
        dicom_tls_ca_file=pki / "ca.pem" if require_client_cert else None,
    )
    server = DimseServer(Archive.open(settings))
    server.start("127.0.0.1", 0)
    return server


def _echo(port: int, tls: ssl.SSLContext | None = None, calling: str = "SCU") -> bool:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 5
    assoc = ae.associate("127.0.0.1", port, tls_args=(tls, "server") if tls else None)
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0


@pytest.fixture
def stopper() -> Iterator[list[DimseServer]]:
    servers: list[DimseServer] = []
    yield servers
    for server in servers:
        server.stop(grace=1)
        server.archive.close()


def test_dicom_tls_port(tmp_path: Path, pki: Path, stopper: list[DimseServer]) -> None:
    server = _tls_server(tmp_path, pki, require_client_cert=False)
    stopper.append(server)
    assert _echo(server.tls_port, client_context(pki, with_cert=False))
    assert _echo(server.port)  # the plain port keeps working for old modalities


def test_dicom_tls_client_certificate_required(
    tmp_path: Path, pki: Path, stopper: list[DimseServer]
) -> None:
    server = _tls_server(tmp_path, pki, require_client_cert=True)
    stopper.append(server)
    assert _echo(server.tls_port, client_context(pki, with_cert=True))
    assert not _echo(server.tls_port, client_context(pki, with_cert=False))


def test_strict_mode_refuses_unknown_calling_aes(
    tmp_path: Path, stopper: list[DimseServer]
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        dicom_strict=True,
        remote_aes=[RemoteAE(ae_title="CT01", services=["store"])],
    )
    server = DimseServer(Archive.open(settings))
    server.start("127.0.0.1", 0)
    stopper.append(server)
    assert _echo(server.port, calling="CT01")
    assert not _echo(server.port, calling="INTRUDER")


def test_c_store_audited_once_per_association_and_study(
    archive: Archive, dimse_server: DimseServer
) -> None:
    ae = AE(ae_title="CT01")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert assoc.is_established
    study = "1.2.826.0.1.3680043.8.498.1"
    for index in range(5):
        assert assoc.send_c_store(ct_slice(study, index=index)).Status == 0
    bad = ct_slice()
    del bad.StudyInstanceUID
    assert assoc.send_c_store(bad).Status != 0
    assoc.release()
    dimse_server.stop(grace=5)  # association-end handlers have run once the server drained
    events = [e for e in archive.audit.events() if e.action == "c-store"]
    assert [(e.actor, e.study_uid, e.patient_id, e.detail) for e in events if e.study_uid] == [
        ("CT01", study, "BN0001", "5 instances")
    ]
    failures = [e for e in events if not e.study_uid]
    assert len(failures) == 1 and failures[0].outcome.startswith("failure: 1 x invalid")
    assert archive.audit.verify() is None


def test_dcmtk_storescu_over_tls_with_client_certificate(
    tmp_path: Path, pki: Path, stopper: list[DimseServer], dcmtk: None
) -> None:
    server = _tls_server(tmp_path, pki, require_client_cert=True)
    stopper.append(server)
    path = tmp_path / "slice.dcm"
    ct_slice().save_as(path, enforce_file_format=True)
    tls = ["+tls", str(pki / "client.key"), str(pki / "client.pem"), "+cf", str(pki / "ca.pem")]
    result = subprocess.run(
        ["storescu", *tls, "-aec", "PACS", "127.0.0.1", str(server.tls_port), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert server.archive.counts()["instances"] == 1
    # Without a client certificate the handshake fails and nothing is stored.
    anonymous = ["+tla", "+cf", str(pki / "ca.pem")]
    result = subprocess.run(
        ["storescu", *anonymous, "-aec", "PACS", "127.0.0.1", str(server.tls_port), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
