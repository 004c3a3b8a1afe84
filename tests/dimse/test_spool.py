"""Spool files of incoming C-STORE datasets (pacs.dimse.spool): pydicom's bytes, our names."""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import stat
import tempfile
from pathlib import Path

import pynetdicom.dimse_messages
import pytest
from pydicom.filewriter import write_file_meta_info
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dsutils import create_file_meta

from pacs.archive import Archive, ingest
from pacs.dimse import spool
from pacs.dimse.server import DimseServer
from pacs.part10 import read_header
from tests.dicom_factory import ct_slice
from tests.dimse.peers import status_of, store_ae, stored_bytes


@pytest.mark.fastpath
def test_pynetdicom_still_spools_through_the_names_we_replace() -> None:
    source = inspect.getsource(DIMSEMessage.decode_msg)
    for name in ("NamedTemporaryFile(", "create_file_meta(", "write_file_meta_info("):
        assert name in source, f"pynetdicom's decoder no longer calls {name}..."
    assert pynetdicom.dimse_messages.NamedTemporaryFile is spool.open_spool_file
    assert pynetdicom.dimse_messages.create_file_meta is spool.FileMeta
    assert pynetdicom.dimse_messages.write_file_meta_info is spool.write_meta


@pytest.mark.parametrize(
    ("sop_class", "sop_instance", "syntax"),
    [
        ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4", "1.2.840.10008.1.2.1"),  # odd UIDs
        ("1.2.840.10008.5.1.4.1.1.4", "1.2.3.45", "1.2.840.10008.1.2"),  # even
        ("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4", "1.2.840.10008.1.2.4.50"),
        ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4\u00e9", "1.2.840.10008.1.2.1"),  # to pydicom
    ],
)
def test_meta_bytes_are_pydicoms(sop_class: str, sop_instance: str, syntax: str) -> None:
    ours = io.BytesIO()
    spool.write_meta(
        ours,
        spool.FileMeta(
            sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=syntax
        ),
    )
    theirs = io.BytesIO()
    meta = create_file_meta(
        sop_class_uid=sop_class,  # type: ignore[arg-type]
        sop_instance_uid=sop_instance,  # type: ignore[arg-type]
        transfer_syntax=syntax,  # type: ignore[arg-type]
    )
    write_file_meta_info(theirs, meta)  # type: ignore[arg-type]
    assert ours.getvalue() == theirs.getvalue()


def test_spool_files_are_new_private_and_named_by_us(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first, second = spool.open_spool_file(), spool.open_spool_file()
    with first, second:
        first.write(b"abc")
        first.file.flush()
    names = {Path(first.name), Path(second.name)}
    assert len(names) == 2 and all(path.parent == tmp_path for path in names)
    assert Path(first.name).read_bytes() == b"abc"
    assert stat.S_IMODE(os.stat(first.name).st_mode) == 0o600


def test_spool_files_hash_what_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with spool.open_spool_file() as spooled:
        spooled.write(b"\0" * 128 + b"DICM")
        meta = spool.FileMeta(
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            sop_instance_uid="1.2.3.4\u00e9",  # written by pydicom
            transfer_syntax="1.2.840.10008.1.2.1",
        )
        spool.write_meta(spooled, meta)
        spooled.write(memoryview(os.urandom(300_000))[1:])
    assert spooled.sha256.hexdigest() == hashlib.sha256(Path(spooled.name).read_bytes()).hexdigest()


def test_the_head_a_spool_file_wrote_is_what_ingest_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    meta = spool.FileMeta(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        sop_instance_uid="1.2.3.45",
        transfer_syntax="1.2.840.10008.1.2",
    ).encoded()
    assert meta is not None
    with spool.open_spool_file() as spooled:
        assert spooled.header() is None  # nothing written by write_head
        spooled.write_head(meta, "1.2.840.10008.1.2")
        spooled.write(b"\x08\x00\x16\x00\x1a\x00\x00\x00" + b"1.2.840.10008.5.1.4.1.1.2\0")
        spooled.flush()
        written = spooled.header()
    with open(spooled.name, "rb") as fp:
        assert written == read_header(fp)


@pytest.mark.fastpath
def test_a_stored_slice_leaves_no_spool_file(
    archive: Archive, dimse_server: DimseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its hash and head are the ones taken while it was spooled, not read from the file, and
    no content hash is taken for a new object (only a differing resend needs one)."""
    rehashed: list[object] = []
    monkeypatch.setattr(ingest, "file_sha256", lambda *args: rehashed.append(args))
    monkeypatch.setattr(ingest, "content_sha256", lambda *args: rehashed.append(args))
    monkeypatch.setattr(ingest, "read_header", lambda *args: rehashed.append(args))
    folder = tmp_path / "spool-under-test"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    ds = ct_slice(size=256)
    assoc = store_ae().associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        assert status_of(assoc.send_c_store(ds)) == (0, "")
    finally:
        assoc.release()
    assert stored_bytes(archive, ds.SOPInstanceUID).endswith(ds.PixelData)
    assert list(folder.iterdir()) == []
    assert rehashed == []
