"""The spool file of each incoming C-STORE, opened and headed without pydicom datasets.

pynetdicom spools a received dataset to a ``NamedTemporaryFile`` headed by a
File Meta Information group it builds as a pydicom dataset and writes with
pydicom. Per CT slice that was about half a millisecond of the receiving
thread, as much as reading the slice's 512 KiB from the socket and writing it
out: a random name drawn and tried, a wrapper object, a dataset of seven
validated elements, its encoding.

:func:`install` gives pynetdicom's message decoder cheaper equivalents of the
three names it uses for that (``pynetdicom.dimse_messages`` imports them as
module globals): a spool file named by process, a random token and a counter
(never by anything the peer sent), opened exclusively with mode 0600 in the
spool folder, and the same meta group encoded in one pass. The bytes are
pydicom's, which a test checks; a UID outside ASCII goes to pydicom.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import struct
import tempfile
from typing import Any, BinaryIO

import pynetdicom.dimse_messages
from pydicom.filewriter import write_file_meta_info
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.dsutils import create_file_meta

from pacs.dimse.direct_io import DirectWriter
from pacs.part10 import PREAMBLE, Part10Header

SPOOL_PREFIX = "pacs-"  # what `pacs serve` clears from the spool folder at start
_TOKEN = secrets.token_hex(4)
_numbers = itertools.count()
_direct_io = True  # see use_direct_io


def use_direct_io(enabled: bool) -> None:
    """Whether spool files write their body by direct I/O (the default where it is taken).

    Worth it when the spool file becomes the blob by a hard link; a store that
    copies the file elsewhere (S3) reads it back at once, better from the page cache.
    """
    global _direct_io
    _direct_io = enabled


class SpoolFile:
    """A new file in the spool folder, with what pynetdicom uses of its temporary files.

    It hashes what is written, so ingest need not read a file that becomes the
    blob as it is (a zero preamble and pynetdicom's meta: every one) again. Its
    body goes to the disk by direct I/O where the filesystem takes it (see
    :mod:`pacs.dimse.direct_io`); a :meth:`flush` ends that, so pynetdicom's own
    spooling, which flushes every fragment, writes through the page cache.
    """

    def __init__(self, name: str, fd: int, direct_io: bool) -> None:
        self.name = name
        self.sha256 = hashlib.sha256()
        self.closed = False
        self._writer = DirectWriter(fd, direct=direct_io)
        self._head: tuple[bytes, str] | None = None  # what write_head wrote, and its syntax

    def write_head(self, meta: bytes, transfer_syntax: str) -> None:
        """Begin the DICOM File Format: zero preamble, ``DICM`` and the encoded meta group."""
        head = PREAMBLE + b"DICM" + meta
        self.sha256.update(head)
        self._writer.write(head)
        self._head = (b"DICM" + meta, transfer_syntax)

    def header(self) -> Part10Header | None:
        """The head :meth:`write_head` wrote, as ingest would read it back; call after flushing."""
        if self._head is None:
            return None
        meta_bytes, transfer_syntax = self._head
        return Part10Header(
            meta_bytes,
            body_offset=len(PREAMBLE) + len(meta_bytes),
            source_size=self.tell(),
            transfer_syntax_uid=transfer_syntax,
            preamble_zeroed=False,
            meta_synthesized=False,
        )

    def write(self, data: Any, /) -> int:
        self.sha256.update(data)
        return self._writer.write(data)

    def tell(self) -> int:
        return self._writer.size

    def fileno(self) -> int:
        return self._writer.fd

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._writer.close()
        finally:
            os.close(self._writer.fd)

    @property
    def file(self) -> SpoolFile:
        return self

    def __enter__(self) -> SpoolFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_spool_file(*_args: Any, **_kwargs: Any) -> SpoolFile:
    """Stands in for ``NamedTemporaryFile(delete=False, mode="wb", suffix=".dcm")``."""
    folder = tempfile.gettempdir()  # serve sets the spool folder here
    while True:
        name = f"{SPOOL_PREFIX}{os.getpid()}-{_TOKEN}-{next(_numbers)}.dcm"
        path = os.path.join(folder, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:  # left by a process that had our pid before us
            continue
        return SpoolFile(path, fd, _direct_io)


class FileMeta:
    """What ``create_file_meta`` is given, kept as text until it is written."""

    def __init__(
        self,
        sop_class_uid: str,
        sop_instance_uid: str,
        transfer_syntax: str,
        implementation_uid: str = PYNETDICOM_IMPLEMENTATION_UID,
        implementation_version: str = PYNETDICOM_IMPLEMENTATION_VERSION,
    ) -> None:
        self.sop_class_uid = str(sop_class_uid)
        self.sop_instance_uid = str(sop_instance_uid)
        self.transfer_syntax = str(transfer_syntax)
        self.implementation_uid = str(implementation_uid)
        self.implementation_version = str(implementation_version)

    def encoded(self) -> bytes | None:
        """The group in explicit VR little endian, or ``None`` for text pydicom must judge."""
        uids = (
            self.sop_class_uid,
            self.sop_instance_uid,
            self.transfer_syntax,
            self.implementation_uid,
        )
        if not all(uid.isascii() for uid in (*uids, self.implementation_version)):
            return None
        body = _long(0x0001, b"OB", b"\x00\x01")
        for element, uid in zip((0x0002, 0x0003, 0x0010, 0x0012), uids, strict=True):
            body += _short(element, b"UI", _padded(uid.encode("ascii"), b"\x00"))
        if self.implementation_version:
            version = _padded(self.implementation_version.encode("ascii"), b" ")
            body += _short(0x0013, b"SH", version)
        return _short(0x0000, b"UL", struct.pack("<L", len(body))) + body


def _short(element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _long(element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sHL", 0x0002, element, vr, 0, len(value)) + value


def _padded(value: bytes, pad: bytes) -> bytes:
    return value + pad if len(value) % 2 else value


def write_meta(fp: BinaryIO, meta: Any, enforce_standard: bool = True) -> None:
    """Stands in for pydicom's ``write_file_meta_info`` in pynetdicom's decoder."""
    encoded = meta.encoded() if isinstance(meta, FileMeta) else None
    if encoded is not None:
        fp.write(encoded)
        return
    if isinstance(meta, FileMeta):
        meta = create_file_meta(
            sop_class_uid=meta.sop_class_uid,  # type: ignore[arg-type]
            sop_instance_uid=meta.sop_instance_uid,  # type: ignore[arg-type]
            transfer_syntax=meta.transfer_syntax,  # type: ignore[arg-type]
            implementation_uid=meta.implementation_uid,  # type: ignore[arg-type]
            implementation_version=meta.implementation_version,
        )
    write_file_meta_info(fp, meta, enforce_standard=enforce_standard)  # type: ignore[arg-type]


_PYNETDICOM_NAMES = {
    name: getattr(pynetdicom.dimse_messages, name)
    for name in ("NamedTemporaryFile", "create_file_meta", "write_file_meta_info")
}


def install() -> None:
    """Have pynetdicom's message decoder spool through this module."""
    module: Any = pynetdicom.dimse_messages
    module.NamedTemporaryFile = open_spool_file
    module.create_file_meta = FileMeta
    module.write_file_meta_info = write_meta


def uninstall() -> None:
    """Give pynetdicom's message decoder its own spooling back."""
    for name, value in _PYNETDICOM_NAMES.items():
        setattr(pynetdicom.dimse_messages, name, value)
