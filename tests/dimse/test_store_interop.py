"""C-STORE from real peers in every transfer syntax: what was sent is what is kept."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from tests.dicom_factory import ct_slice, write
from tests.dimse.peers import (
    STORESCU_PROPOSAL,
    dataset_bytes,
    dcmtk_wire_form,
    send_files,
    stored_bytes,
    storescu,
    transfer_syntax_of,
)
from tests.dimse.samples import NOT_FOR_STORESCU, REAL_FILES, UNCOMPRESSED, generated, real_file


def _all_samples(folder: Path, skip: frozenset[str] = frozenset()) -> list[Path]:
    return [*generated(folder), *(real_file(name) for name in REAL_FILES if name not in skip)]


def _differences(archive: Archive, sent: list[Path]) -> list[str]:
    """What differs between each sent file and what the archive kept (empty when all match)."""
    problems = []
    for path in sent:
        sop_uid = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        [instance] = archive.locate(sop_instance_uid=sop_uid)
        if instance.transfer_syntax_uid != transfer_syntax_of(path):
            problems.append(f"{path.name}: stored as {instance.transfer_syntax_uid}")
        kept = stored_bytes(archive, sop_uid)  # also checks the recorded sha256 and size
        if dataset_bytes(kept) != dataset_bytes(path.read_bytes()):
            problems.append(f"{path.name}: dataset bytes differ")
        if (
            kept[:128] != b"\x00" * 128
            or dcmread(io.BytesIO(kept), stop_before_pixels=True).SOPInstanceUID != sop_uid
        ):
            problems.append(f"{path.name}: not a clean Part 10 file")
    return problems


def test_pynetdicom_store_keeps_every_syntax_byte_for_byte(
    archive: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    sent = _all_samples(tmp_path / "sent")
    results = send_files(dimse_server.port, sent)
    assert results == [(0, "")] * len(sent), [p.name for p in sent]
    assert _differences(archive, sent) == []
    assert archive.counts()["instances"] == len(sent)


def test_storescu_keeps_every_syntax_byte_for_byte(
    dcmtk: None, archive: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    """Each file is sent proposing its own syntax first, so DCMTK does not convert it."""
    wire = tmp_path / "wire"
    wire.mkdir()
    sent = [
        dcmtk_wire_form(path, wire / path.name)
        for path in _all_samples(tmp_path / "src", NOT_FOR_STORESCU)
    ]
    for path in sent:
        proposal = STORESCU_PROPOSAL[transfer_syntax_of(path)]
        result = storescu(dimse_server.port, path, options=[proposal])
        assert result.returncode == 0 and "Status" not in result.stderr, (path.name, result.stderr)
    assert _differences(archive, sent) == []
    assert {i.transfer_syntax_uid for i in archive.locate()} >= set(UNCOMPRESSED)


def test_storescu_folder_send(
    dcmtk: None, archive: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    """`storescu +sd +r`: a study in nested folders, many files on one association."""
    study_uid = generate_uid()
    folder = tmp_path / "study"
    sent = []
    for series in range(2):
        series_uid = generate_uid()
        for index in range(5):
            ds = ct_slice(study_uid, series_uid, index=index, seed=series * 10 + index)
            assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
            sent.append(write(ds, folder / f"series{series}" / f"{index}.dcm"))
    (folder / "README.txt").write_text("not DICOM; the scan pattern skips it")
    result = storescu(dimse_server.port, folder, options=["+sd", "+r", "+sp", "*.dcm", "-xe"])
    assert result.returncode == 0, result.stderr
    assert archive.counts() == {"studies": 1, "series": 2, "instances": 10}
    assert _differences(archive, sent) == []
    shutil.rmtree(folder)  # the archive holds its own copies
    assert len(archive.locate(study_uid=study_uid)) == 10
