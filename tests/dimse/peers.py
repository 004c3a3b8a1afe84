"""Real DICOM peers for the C-STORE tests: DCMTK storescu/echoscu and pynetdicom, plus checks."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.presentation import StoragePresentationContexts

from pacs.archive import Archive

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}  # DCMTK disables Nagle only when asked

# storescu's option proposing each transfer syntax first (or only, for implicit VR).
STORESCU_PROPOSAL = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.4.100": "-xm",  # MPEG-2
    "1.2.840.10008.1.2.4.102": "-xn",  # MPEG-4 AVC/H.264
    "1.2.840.10008.1.2.4.107": "-x4",  # HEVC/H.265 Main
    "1.2.840.10008.1.2.4.108": "-x5",  # HEVC/H.265 Main 10
    "1.2.840.10008.1.2.5": "-xr",
}


def dataset_bytes(data: bytes) -> bytes:
    """The encoded dataset of a Part 10 file: everything after its File Meta Information."""
    fp = io.BytesIO(data)
    read_preamble(fp, False)
    _read_file_meta_info(fp)
    return data[fp.tell() :]


def dcmtk_wire_form(source: Path, target: Path) -> Path:
    """``source`` encoded the way storescu puts it on the wire.

    DCMTK re-encodes what it sends: no group lengths, no trailing padding, and
    a deflated stream padded to even length (PS3.5 A.5). Comparing the archive
    against this form proves the archive keeps what it received, byte for byte.
    """
    subprocess.run(
        ["dcmconv", "-g", "-p", str(source), str(target)], check=True, capture_output=True
    )
    data = target.read_bytes()
    transfer_syntax = transfer_syntax_of(target)
    if transfer_syntax == DeflatedExplicitVRLittleEndian and len(dataset_bytes(data)) % 2:
        target.write_bytes(data + b"\x00")
    return target


def file_meta_of(path: Path) -> FileMetaDataset:
    with path.open("rb") as fp:
        read_preamble(fp, False)
        return _read_file_meta_info(fp)


def transfer_syntax_of(path: Path) -> str:
    return str(file_meta_of(path).TransferSyntaxUID)


def storescu(
    port: int, *paths: Path | str, calling: str = "STORESCU", options: Iterable[str] = ()
) -> subprocess.CompletedProcess[str]:
    command = ["storescu", "-aet", calling, "-aec", "PACS", *options, "127.0.0.1", str(port)]
    return subprocess.run(
        [*command, *map(str, paths)], capture_output=True, text=True, env=DCMTK_ENV, timeout=60
    )


def echoscu(port: int, calling: str = "ECHOSCU") -> subprocess.CompletedProcess[str]:
    command = ["echoscu", "-aet", calling, "-aec", "PACS", "127.0.0.1", str(port)]
    return subprocess.run(command, capture_output=True, text=True, env=DCMTK_ENV, timeout=30)


def store_ae(
    calling: str = "PYNETDICOM",
    transfer_syntaxes: list[str] | None = None,
    sop_classes: Iterable[str] | None = None,
) -> AE:
    """A pynetdicom SCU proposing ``sop_classes`` (default: every storage SOP class)."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    if sop_classes is None:
        sop_classes = [str(cx.abstract_syntax) for cx in StoragePresentationContexts]
    for sop_class in sop_classes:
        if transfer_syntaxes is None:
            ae.add_requested_context(sop_class)
        else:
            ae.add_requested_context(sop_class, transfer_syntaxes)
    return ae


def send_files(
    port: int, paths: Iterable[Path], calling: str = "PYNETDICOM"
) -> list[tuple[int, str]]:
    """C-STORE files as they are on disk (no re-encoding) on one association per file.

    One association per file, so each is offered exactly its own transfer syntax.
    Returns (status, error comment) per file; -1 when no association was made.
    """
    results: list[tuple[int, str]] = []
    chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the file's bytes, not a re-encoding
    try:
        for path in paths:
            meta = file_meta_of(path)
            ae = store_ae(calling, [meta.TransferSyntaxUID], [meta.MediaStorageSOPClassUID])
            assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
            if not assoc.is_established:
                results.append((-1, "association not established"))
                continue
            try:
                results.append(status_of(assoc.send_c_store(path)))
            finally:
                assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked
    return results


def status_of(response: Dataset) -> tuple[int, str]:
    if "Status" not in response:
        return -1, "no response"
    return int(response.Status), str(response.get("ErrorComment", ""))


def stored_bytes(archive: Archive, sop_instance_uid: str) -> bytes:
    """The stored object of ``sop_instance_uid``; checks the recorded hash on the way."""
    [instance] = archive.locate(sop_instance_uid=sop_instance_uid)
    with archive.open_blob(instance.blob_key) as fp:
        blob = fp.read()
    assert instance.sha256 == hashlib.sha256(blob).hexdigest(), sop_instance_uid
    assert instance.size == len(blob)
    return blob


def files_below(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}
