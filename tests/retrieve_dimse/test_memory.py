"""C-GET and C-MOVE send stored files without holding an instance in memory.

A ~300 MB multi-frame instance is written to disk in chunks (never built in
memory), stored in a real `pacs serve` with DCMTK storescu, then fetched with
getscu (C-GET) and movescu to a storescp the test starts (C-MOVE). The server's
peak resident memory (VmHWM, reset between phases through /proc/<pid>/clear_refs)
must stay under 300 MB for each retrieval, and the bytes received must be the
bytes stored. Smaller cases cover the other ways out: a blob on S3 is spooled to
a temporary file, and a peer that did not accept the stored syntax gets a small
instance re-encoded but a large one refused as a failed sub-operation.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom._globals import DEFAULT_MAX_LENGTH
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
)

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.dimse.server import DimseServer
from pacs.settings import RemoteAE, Settings
from tests.conftest import free_port
from tests.dicom_factory import ct_slice, to_bytes
from tests.peers import register
from tests.retrieve_dimse.destinations import wait_listening
from tests.serve_process import serve_process
from tests.storage.conftest import S3_KEY, s3_endpoint  # noqa: F401  (fixture)

XA_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.12.1"  # classic multi-frame, offered by getscu
STUDY = "1.2.826.0.1.3680043.8.498.900"
SERIES = "1.2.826.0.1.3680043.8.498.901"
SOP = "1.2.826.0.1.3680043.8.498.902.1"
ROWS = COLUMNS = 512
FRAMES = 580  # 512 x 512 x 2 bytes x 580 frames = 304 MB of pixel data
LIMIT = 300 << 20
CHUNK = 1 << 20


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    dicom_port: int
    data_dir: Path
    storescp_port: int  # where the C-MOVE destination STORESCP is registered


def _header(path: Path) -> None:
    """Everything but Pixel Data, written as a Part 10 file."""
    ds = Dataset()
    ds.SOPClassUID = UID(XA_IMAGE_STORAGE)
    ds.SOPInstanceUID = UID(SOP)
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = SERIES
    ds.PatientID = "MEM0001"
    ds.PatientName = "Memory^Large"
    ds.Modality = "XA"
    ds.StudyDate = "20260101"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.NumberOfFrames = FRAMES
    ds.FrameIncrementPointer = 0x00181063
    ds.FrameTime = 33.3
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(XA_IMAGE_STORAGE)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(SOP)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dcmwrite(path, ds, enforce_file_format=True)


def _write_large_instance(path: Path) -> None:
    """Header, then (7FE0,0010) OW with its length, then the frames one chunk at a time."""
    _header(path)
    length = ROWS * COLUMNS * 2 * FRAMES
    with path.open("ab") as out:
        out.write(b"\xe0\x7f\x10\x00OW\x00\x00" + length.to_bytes(4, "little"))
        noise = os.urandom(CHUNK)
        for index in range(length // CHUNK):
            out.write(index.to_bytes(8, "little") + noise[8:])  # every chunk differs
        out.write(noise[: length % CHUNK])


def _dataset_digest(path: Path) -> tuple[int, str]:
    """(size, SHA-256) of the bytes after the file meta group, read in chunks."""
    with path.open("rb") as fh:
        head = fh.read(144)
        assert head[128:132] == b"DICM" and head[132:136] == b"\x02\x00\x00\x00"
        fh.seek(144 + int.from_bytes(head[140:144], "little"))
        digest, size = hashlib.sha256(), 0
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


@pytest.fixture(scope="module")
def large_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("large") / "large.dcm"
    _write_large_instance(path)
    return path


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc status")


def _reset_peak(pid: int) -> float | None:
    """Bring VmHWM down to the current RSS (Linux 4.0+), so each phase is measured alone.

    Returns the RSS it starts from, or ``None`` where the kernel refuses (then the
    peak is cumulative, which only makes the 300 MB bound harder to meet).
    """
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return None
    return _rss_mb(pid)


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TCP_NODELAY": "1"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def server(tmp_path: Path, dcmtk: None) -> Iterator[Server]:
    """`pacs serve` as a child process on loopback, with the test's AEs registered."""
    store_port = free_port()
    remote = [
        {"ae_title": "GETSCU", "services": ["get"]},
        {"ae_title": "MOVESCU", "services": ["move"]},
        {"ae_title": "STORESCP", "host": "127.0.0.1", "port": store_port, "services": ["store"]},
    ]
    settings = {
        "PACS_REMOTE_AES": json.dumps(remote),
        # One DIMSE process, so that the one whose VmHWM is read is the one retrieving.
        "PACS_DICOM_PROCESSES": "1",
    }
    with serve_process(tmp_path, settings) as served:
        yield Server(served.process, served.dicom_port, served.data_dir, store_port)


@pytest.fixture
def storescp(tmp_path: Path, server: Server) -> Iterator[Path]:
    """DCMTK storescp on the port registered for STORESCP; yields the folder it writes."""
    folder = tmp_path / "moved"
    folder.mkdir()
    process = subprocess.Popen(
        ["storescp", "-aet", "STORESCP", "-od", str(folder), str(server.storescp_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(server.storescp_port, process)  # polled: a fixed pause is no readiness
    yield folder
    process.terminate()
    process.wait(timeout=10)


def _only_file(folder: Path) -> Path:
    files = list(folder.iterdir())
    assert len(files) == 1, files
    return files[0]


def test_large_instance_in_and_out_with_bounded_memory(
    tmp_path: Path, large_file: Path, server: Server, storescp: Path
) -> None:
    pid, port = server.process.pid, str(server.dicom_port)
    original = _dataset_digest(large_file)
    figures: dict[str, float] = {}

    started = time.monotonic()
    start: dict[str, float | None] = {"c-store": _reset_peak(pid)}
    stored = _run(["storescu", "-aec", "PACS", "127.0.0.1", port, str(large_file)])
    assert stored.returncode == 0, stored.stderr
    figures["c-store"] = _peak_mb(pid)
    blobs = [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1 and _dataset_digest(blobs[0]) == original

    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY}"]
    got = tmp_path / "got"
    got.mkdir()
    start["c-get"] = _reset_peak(pid)
    args = ["getscu", "-aet", "GETSCU", "-aec", "PACS", "-S", "-od", str(got), *keys]
    result = _run([*args, "127.0.0.1", port])
    assert result.returncode == 0, result.stderr
    figures["c-get"] = _peak_mb(pid)
    assert _dataset_digest(_only_file(got)) == original

    start["c-move"] = _reset_peak(pid)
    args = ["movescu", "-aet", "MOVESCU", "-aec", "PACS", "-aem", "STORESCP", "-S", *keys]
    result = _run([*args, "127.0.0.1", port])
    assert result.returncode == 0, result.stderr
    figures["c-move"] = _peak_mb(pid)
    assert _dataset_digest(_only_file(storescp)) == original

    start["c-get, no PDU limit"] = _reset_peak(pid)
    assert _c_get_unlimited_pdu(server.dicom_port) == original
    figures["c-get, no PDU limit"] = _peak_mb(pid)

    elapsed = time.monotonic() - started
    print(
        f"\n{original[0] / 1e6:.0f} MB instance, server VmHWM per phase (MB): "
        + ", ".join(f"{k} {v:.0f}" for k, v in figures.items())
        + f"; {elapsed:.1f} s"
    )
    for phase in ("c-get", "c-move", "c-get, no PDU limit"):
        assert figures[phase] < LIMIT / (1 << 20), figures
        base = start[phase]
        if base is not None:  # the instance is 304 MB; a few PDUs in flight is all it may cost
            assert figures[phase] - base < 64, (phase, base, figures)


def _c_get_study(
    port: int,
    study: str,
    sop_class: str,
    syntax: str,
    on_store: Callable[[Any], int],
    max_pdu: int = DEFAULT_MAX_LENGTH,
) -> list[Dataset]:
    """C-GET a study as a pynetdicom peer receiving ``sop_class`` only in ``syntax``;
    the responses. ``on_store`` gets every C-STORE that comes back."""
    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="PACS",
        ext_neg=[build_role(sop_class, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
        max_pdu=max_pdu,
    )
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study
    query = StudyRootQueryRetrieveInformationModelGet
    responses = [status for status, _ in assoc.send_c_get(identifier, query)]
    assoc.release()
    return responses


def _c_get_unlimited_pdu(port: int) -> tuple[int, str]:
    """C-GET the large study as a pynetdicom peer announcing no PDU limit; its digest."""
    received: list[tuple[int, str]] = []

    def on_store(event: Any) -> int:
        received.append(_dataset_digest(event.dataset_path))  # spooled: chunked receive is on
        return 0x0000

    # max_pdu 0 is "no limit": a naive sender would read the whole file into one PDU.
    responses = _c_get_study(
        port, STUDY, XA_IMAGE_STORAGE, ExplicitVRLittleEndian, on_store, max_pdu=0
    )
    statuses = [s.Status for s in responses if s]
    assert statuses[-1] == 0x0000, [hex(code) for code in statuses]
    assert len(received) == 1
    return received[0]


# --- the other ways out: an S3 blob, a peer that did not accept the stored syntax -------------

STUDY_SMALL = "1.2.826.0.1.3680043.8.498.910"
SERIES_SMALL = "1.2.826.0.1.3680043.8.498.911"


def _ingest_small(archive: Archive) -> dict[str, bytes]:
    """Three CT slices (Explicit VR Little Endian); SOP Instance UID -> Pixel Data."""
    pixels = {}
    for index in range(3):
        uid = f"1.2.826.0.1.3680043.8.498.912.{index + 1}"
        ds = ct_slice(STUDY_SMALL, SERIES_SMALL, uid, index=index, size=32)
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="test"))
        pixels[uid] = bytes(ds.PixelData)
    return pixels


def _c_get(port: int, syntax: str) -> tuple[list[Dataset], dict[str, bytes]]:
    """C-GET the small study, receiving CT only in ``syntax``; (responses, uid -> pixels)."""
    received: dict[str, bytes] = {}

    def on_store(event: Any) -> int:
        received[str(event.dataset.SOPInstanceUID)] = bytes(event.dataset.PixelData)
        return 0x0000

    responses = _c_get_study(port, STUDY_SMALL, CTImageStorage, syntax, on_store)
    return responses, received


def test_blob_on_s3_is_spooled_and_removed(tmp_path: Path, s3_endpoint: str) -> None:  # noqa: F811
    settings = Settings(
        data_dir=tmp_path / "data",
        storage_url=f"s3://archive-{uuid.uuid4().hex[:12]}/pacs",
        s3_endpoint=s3_endpoint,
        s3_access_key=SecretStr(S3_KEY),
        s3_secret_key=SecretStr(S3_KEY),
        s3_create_bucket=True,
        remote_aes=[RemoteAE(ae_title="GETSCU", services=["get"])],
    )
    archive = Archive.open(settings)
    server = DimseServer(archive)
    server.start("127.0.0.1", 0)
    try:
        pixels = _ingest_small(archive)
        responses, received = _c_get(server.port, ExplicitVRLittleEndian)
    finally:
        server.stop(grace=2)
        archive.close()
    assert responses[-1].Status == 0x0000
    assert responses[-1].NumberOfCompletedSuboperations == 3
    assert received == pixels
    assert settings.spool_dir is not None
    assert not list(settings.spool_dir.glob("retrieve-*"))  # each spooled copy was deleted


def test_small_instance_is_converted_for_a_peer_without_its_syntax(
    archive: Archive, dimse_server: DimseServer
) -> None:
    register(archive, RemoteAE(ae_title="GETSCU", services=["get"]))
    pixels = _ingest_small(archive)
    responses, received = _c_get(dimse_server.port, ImplicitVRLittleEndian)
    assert responses[-1].Status == 0x0000
    assert received == pixels
    assert "3 of 3 instances" in archive.audit.events()[-1].detail


def test_large_instance_is_refused_rather_than_loaded(
    archive: Archive, dimse_server: DimseServer
) -> None:
    """Converting would hold the instance in memory: each one is a failed sub-operation."""
    archive.settings.retrieve_convert_max_bytes = 1024  # the slices are ~2 KB: "large"
    register(archive, RemoteAE(ae_title="GETSCU", services=["get"]))
    pixels = _ingest_small(archive)
    responses, received = _c_get(dimse_server.port, ImplicitVRLittleEndian)
    final = responses[-1]
    assert final.Status == 0xA702  # every sub-operation failed
    assert final.NumberOfFailedSuboperations == 3
    assert final.NumberOfCompletedSuboperations == 0
    assert not received
    assert len(pixels) == 3
    record = archive.audit.events()[-1]
    assert record.action == "c-get" and "0 of 3 instances" in record.detail  # none delivered
