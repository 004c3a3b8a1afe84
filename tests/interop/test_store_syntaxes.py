"""Real senders, every common transfer syntax, stored byte for byte.

DCMTK ``storescu`` and pynetdicom send pydicom-data's real files (JPEG
baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE, deflated, big endian,
implicit) and generated HTJ2K and video objects; each must come back with the
dataset bytes exactly as sent and the recorded SHA-256 of the stored blob.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    HEVCMP51,
    MPEG2MPML,
    MPEG4HP41,
    UID,
    HTJ2KLossless,
    generate_uid,
)
from pynetdicom import AE, _config

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from pacs.part10 import read_header
from tests.conftest import free_port
from tests.interop.helpers import body, propose_own_syntax, stored_bytes, storescu
from tests.retrieve_dimse.destinations import wait_listening

REAL_FILES = [
    "CT_small.dcm",  # explicit little endian
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",  # deflated
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline
    "JPEG-lossy.dcm",  # JPEG extended
    "JPEG-LL.dcm",  # JPEG lossless SV1
    "MR_small_jpeg_ls_lossless.dcm",
    "US1_J2KR.dcm",  # JPEG 2000 lossless
    "JPEG2000.dcm",  # JPEG 2000
    "MR_small_RLE.dcm",
    "emri_small_jpeg_2k_lossless.dcm",  # enhanced multi-frame
]


def _real(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom-data lacks {name}"
    return Path(path)


def _generated(tmp_path: Path, syntax: str, sop_class: str, payload: bytes) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "VID1", "Trần^Thị Bình", "ES"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 64, 64, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PhotometricInterpretation, ds.NumberOfFrames = "MONOCHROME2", 1
    ds.PixelData = encapsulate([payload])
    ds["PixelData"].VR = "OB"
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _generated_files(tmp_path: Path) -> list[Path]:
    frame = np.random.default_rng(1).integers(0, 65535, (64, 64), dtype=np.uint16)
    video = bytes(np.random.default_rng(2).integers(0, 255, 4001, dtype=np.uint8))
    endoscopy = "1.2.840.10008.5.1.4.1.1.77.1.1.1"  # Video Endoscopic Image Storage
    return [
        _generated(
            tmp_path,
            HTJ2KLossless,
            "1.2.840.10008.5.1.4.1.1.7",
            bytes(imagecodecs.htj2k_encode(frame)),
        ),
        _generated(tmp_path, MPEG2MPML, endoscopy, video),
        _generated(tmp_path, MPEG4HP41, endoscopy, video),
        _generated(tmp_path, HEVCMP51, endoscopy, video),
    ]


def _assert_stored_as_sent(archive: Archive, path: Path) -> None:
    sent = path.read_bytes()
    sop = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    stored, sha256 = stored_bytes(archive, sop)
    assert hashlib.sha256(stored).hexdigest() == sha256
    assert body(stored) == body(sent), f"{path.name}: stored dataset differs from what was sent"


@pytest.fixture
def reference_scp(tmp_path: Path, dcmtk: None) -> Iterator[tuple[int, Path]]:
    """DCMTK's storescp in bit-preserving mode: it writes exactly what storescu put on the wire."""
    port, folder = free_port(), tmp_path / "reference"
    folder.mkdir()
    process = subprocess.Popen(
        ["storescp", "+B", "+xa", "-pm", "-aet", "PACS", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(port, process)  # polled: a fixed pause is no readiness
    yield port, folder
    process.terminate()
    process.wait(timeout=10)


def _reference_copy(folder: Path, sop: str) -> bytes:
    (match,) = [p for p in folder.iterdir() if p.name.endswith(sop) or sop in p.name]
    return match.read_bytes()


def _sop(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


@pytest.mark.parametrize("name", REAL_FILES)
def test_storescu_real_files(
    name: str, archive: Archive, dimse_server: DimseServer, reference_scp: tuple[int, Path]
) -> None:
    """What storescu sends (it may re-encode the file) is what we keep, bit for bit."""
    path = _real(name)
    port, folder = reference_scp
    own = propose_own_syntax(path)
    assert storescu(port, path, extra=own).returncode == 0
    result = storescu(dimse_server.port, path, extra=own)
    assert result.returncode == 0, result.stderr
    stored, sha256 = stored_bytes(archive, _sop(path))
    assert hashlib.sha256(stored).hexdigest() == sha256
    reference = _reference_copy(folder, _sop(path))
    assert (
        read_header(io.BytesIO(stored)).transfer_syntax_uid
        == read_header(io.BytesIO(reference)).transfer_syntax_uid
    )
    assert body(stored) == body(reference), f"{name}: stored dataset differs from the wire"


def test_storescu_video(
    tmp_path: Path, archive: Archive, dimse_server: DimseServer, dcmtk: None
) -> None:
    """MPEG-2, MPEG-4, HEVC objects via storescu (DCMTK 3.6.7 lacks HTJ2K: pynetdicom sends it)."""
    for path in _generated_files(tmp_path)[1:]:
        result = storescu(dimse_server.port, path, extra=("-R", *propose_own_syntax(path)))
        assert result.returncode == 0, result.stderr
        _assert_stored_as_sent(archive, path)


def test_pynetdicom_every_syntax_raw(
    tmp_path: Path, archive: Archive, dimse_server: DimseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)  # send file bytes as they are
    paths = [_real(name) for name in REAL_FILES] + _generated_files(tmp_path)
    # MR_small comes in several syntaxes under one SOP Instance UID: send each UID once here
    # (a different object under a known UID is the duplicate policy's business, tested apart).
    unique: dict[str, Path] = {}
    for path in paths:
        unique.setdefault(_sop(path), path)
    paths = list(unique.values())
    ae = AE(ae_title="PYNETDICOM")
    for path in paths:
        meta = dcmread(path, stop_before_pixels=True).file_meta
        ae.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
    ae.requested_contexts = ae.requested_contexts[:128]
    assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        for path in paths:
            status = assoc.send_c_store(path)
            assert status.Status == 0x0000, (path.name, hex(status.Status))
    finally:
        assoc.release()
    for path in paths:
        _assert_stored_as_sent(archive, path)
