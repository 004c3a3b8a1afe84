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
import io
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

from pacs.part10 import PREAMBLE, Part10Header

SPOOL_PREFIX = "pacs-"  # what `pacs serve` clears from the spool folder at start
_TOKEN = secrets.token_hex(4)
_numbers = itertools.count()


class SpoolFile(io.BufferedWriter):
    """A new file in the spool folder; ``file`` is itself, as pynetdicom expects of its files.

    It hashes what is written, so ingest need not read a file that becomes the
    blob as it is (a zero preamble and pynetdicom's meta: every one) again.
    """

    def __init__(self, raw: io.FileIO) -> None:
        super().__init__(raw)
        self.sha256 = hashlib.sha256()
        self._head: tuple[bytes, str] | None = None  # what write_head wrote, and its syntax

    def write_head(self, meta: bytes, transfer_syntax: str) -> None:
        """Begin the DICOM File Format: zero preamble, ``DICM`` and the encoded meta group."""
        self.write(PREAMBLE + b"DICM" + meta)
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
        return super().write(data)

    @property
    def file(self) -> SpoolFile:
        return self


def open_spool_file(*_args: Any, **_kwargs: Any) -> SpoolFile:
    """Stands in for ``NamedTemporaryFile(delete=False, mode="wb", suffix=".dcm")``."""
    folder = tempfile.gettempdir()  # serve sets the spool folder here
    while True:
        name = f"{SPOOL_PREFIX}{os.getpid()}-{_TOKEN}-{next(_numbers)}.dcm"
        path = os.path.join(folder, name)
        try:
            raw = io.FileIO(path, "xb", opener=_private)
        except FileExistsError:  # left by a process that had our pid before us
            continue
        return SpoolFile(raw)


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


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


def install() -> None:
    """Have pynetdicom's message decoder spool through this module."""
    module: Any = pynetdicom.dimse_messages
    module.NamedTemporaryFile = open_spool_file
    module.create_file_meta = FileMeta
    module.write_file_meta_info = write_meta
