"""Reading the header of an incoming DICOM stream and laying out what we store.

What we keep is the bytes as received in the DICOM File Format: a zeroed
128-byte preamble (a non-DICOM preamble can make a file a valid TIFF or
executable too, CVE-2019-11687), ``DICM``, the File Meta Information, then the
dataset exactly as sent. A file without a meta header (old CDs, raw dumps) gets
one built for it.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pydicom.dataset import FileMetaDataset
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

PREAMBLE = b"\x00" * 128


#: Above this an inflated dataset is refused: a 1 MB deflate stream may expand a thousandfold.
MAX_INFLATED = 4 << 30


class NotDicom(ValueError):
    """The stream is not DICOM, or its header cannot be read."""


@dataclass
class Part10Header:
    """The head of what we store, and where the dataset starts in the source."""

    meta_bytes: bytes  # b"DICM" + the encoded file meta group
    body_offset: int  # first byte of the dataset in the source stream
    source_size: int
    transfer_syntax_uid: str
    preamble_zeroed: bool
    meta_synthesized: bool

    @property
    def stored_size(self) -> int:
        return len(PREAMBLE) + len(self.meta_bytes) + self.source_size - self.body_offset

    @property
    def implicit_vr(self) -> bool:
        return self.transfer_syntax_uid == ImplicitVRLittleEndian

    @property
    def little_endian(self) -> bool:
        return self.transfer_syntax_uid != ExplicitVRBigEndian

    @property
    def deflated(self) -> bool:
        return self.transfer_syntax_uid == DeflatedExplicitVRLittleEndian


def stream_size(fp: BinaryIO) -> int:
    here = fp.tell()
    size = fp.seek(0, os.SEEK_END)
    fp.seek(here)
    return size


def read_header(fp: BinaryIO) -> Part10Header:
    """Read the preamble and file meta of ``fp`` (seekable).

    For a bare dataset the meta header is left empty; see :func:`with_synthesized_meta`.
    """
    size = stream_size(fp)
    fp.seek(0)
    preamble = fp.read(128)
    magic = fp.read(4)
    if magic == b"DICM" and len(preamble) == 128:
        fp.seek(0)
        return _with_meta(fp, size, prefixed=True, preamble_zeroed=preamble != PREAMBLE)
    # No preamble: a bare dataset. Guess its encoding from the first element.
    fp.seek(0)
    head = fp.read(8)
    if len(head) < 8:
        raise NotDicom("too short to be DICOM")
    group = int.from_bytes(head[0:2], "little")
    if group == 0x0002:
        # File meta without preamble and DICM: what pydicom's dcmwrite writes for a
        # dataset built in memory (dicomweb-client's STOW, for one). Stored with both.
        fp.seek(0)
        return _with_meta(fp, size, prefixed=False, preamble_zeroed=False)
    if group != 0x0008:
        raise NotDicom("no DICM prefix and no DICOM element at the start")
    explicit = head[4:6].isalpha() and head[4:6].isupper()
    ts = ExplicitVRLittleEndian if explicit else ImplicitVRLittleEndian
    return Part10Header(b"", 0, size, ts, False, meta_synthesized=True)


def _with_meta(fp: BinaryIO, size: int, prefixed: bool, preamble_zeroed: bool) -> Part10Header:
    """The header of a stream at offset 0 whose meta group follows a preamble and ``DICM``
    (``prefixed``) or starts the stream."""
    try:
        if prefixed:
            read_preamble(fp, False)
        meta = _read_file_meta_info(fp)
    except Exception as exc:
        raise NotDicom(f"unreadable file meta information: {exc}") from exc
    body_offset = fp.tell()
    ts = str(meta.get("TransferSyntaxUID", "") or "")
    if not ts:
        raise NotDicom("file meta information has no TransferSyntaxUID")
    meta_start = len(PREAMBLE) + 4 if prefixed else 0
    fp.seek(meta_start)
    meta_bytes = b"DICM" + fp.read(body_offset - meta_start)
    return Part10Header(meta_bytes, body_offset, size, ts, preamble_zeroed, meta_synthesized=False)


def with_synthesized_meta(header: Part10Header, sop_class_uid: str, sop_uid: str) -> Part10Header:
    """Fill in the meta header of a bare dataset once its SOP Class and Instance are known."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = UID(header.transfer_syntax_uid)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    buffer = io.BytesIO()
    buffer.write(b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)  # type: ignore[arg-type]
    return Part10Header(
        buffer.getvalue(),
        header.body_offset,
        header.source_size,
        header.transfer_syntax_uid,
        header.preamble_zeroed,
        meta_synthesized=True,
    )


def iter_stored_bytes(fp: BinaryIO, header: Part10Header, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The bytes we store: zero preamble, meta, then the dataset from the source unchanged."""
    yield PREAMBLE
    yield header.meta_bytes
    fp.seek(header.body_offset)
    while data := fp.read(chunk):
        yield data


class ChunkStream(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (what stores consume)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


@contextlib.contextmanager
def inflated(fp: BinaryIO, limit: int = MAX_INFLATED) -> Iterator[BinaryIO]:
    """A Deflated Explicit VR Little Endian file re-laid as Explicit VR Little Endian.

    Readers that seek (frame decoding, transcoding) cannot seek in a deflate
    stream, and pydicom would inflate the whole dataset into memory; this
    inflates it once into a temporary file (in memory while small) behind a
    new file meta header naming the plain syntax. Raises :class:`NotDicom` for
    a stream that does not inflate or inflates past ``limit`` bytes.
    Any other file is handed back unchanged.
    """
    start = fp.tell()
    header = read_header(fp)
    fp.seek(start)
    if not header.deflated:
        yield fp
        return
    fp.seek(start)
    read_preamble(fp, False)
    meta = _read_file_meta_info(fp)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as plain:
        plain.write(PREAMBLE + b"DICM")
        write_file_meta_info(plain, meta, enforce_standard=True)  # type: ignore[arg-type]
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        fp.seek(header.body_offset)
        written = 0
        try:
            while chunk := fp.read(1 << 20):
                data = inflater.decompress(chunk, limit + 1 - written)
                written += len(data)
                plain.write(data)
                if written > limit or inflater.eof:
                    break
            plain.write(inflater.flush())
        except zlib.error as exc:
            raise NotDicom(f"the deflated dataset cannot be inflated: {exc}") from exc
        if written > limit:
            raise NotDicom(f"the deflated dataset inflates past {limit} bytes")
        plain.seek(0)
        yield plain  # type: ignore[misc]
