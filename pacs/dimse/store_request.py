"""C-STORE requests taken from their command set without pynetdicom's DIMSE decoder.

For each request pynetdicom decodes the command set into a pydicom dataset,
builds a message object, converts it to a primitive and fires a
DIMSE-received event: about 0.4 ms per CT slice here, for eight elements.
:func:`begin_store` reads a C-STORE-RQ command set in one pass (implicit VR
little endian, PS3.7 E.1) and prepares what pynetdicom would have: the
C_STORE primitive, and its spool file headed by the File Meta group.

It takes only the plain case: a command set in one PDV, holding nothing but
the elements PS3.7 9.3.1.1 lists for a C-STORE-RQ, on an accepted
presentation context. Anything else (another command, an unknown element, a
malformed length, a UID pynetdicom refuses) returns ``None`` and goes to
pynetdicom, which answers it as it always did.
"""

from __future__ import annotations

import contextlib
import os
import struct
import weakref
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from pynetdicom.dimse_primitives import C_STORE

from pacs.dimse.spool import FileMeta, SpoolFile, open_spool_file
from pacs.uids import InvalidUID, check_uid

C_STORE_RQ = 0x0001
NO_DATASET = 0x0101
_ELEMENT = struct.Struct("<HHL")
_US = struct.Struct("<H")
_UL = struct.Struct("<L")
# (0000,eeee) elements of a C-STORE-RQ, and how their values read.
_FIELDS = {
    0x0000: "CommandGroupLength",
    0x0002: "AffectedSOPClassUID",
    0x0100: "CommandField",
    0x0110: "MessageID",
    0x0700: "Priority",
    0x0800: "CommandDataSetType",
    0x1000: "AffectedSOPInstanceUID",
    0x1030: "MoveOriginatorApplicationEntityTitle",
    0x1031: "MoveOriginatorMessageID",
}
_NUMBERS = {0x0100, 0x0110, 0x0700, 0x0800, 0x1031}


@dataclass
class IncomingStore:
    """A C-STORE request whose dataset is arriving into its spool file.

    If it is dropped before it is :meth:`taken` or :meth:`handed_over` (the
    association ended mid-dataset), its spool file is closed and removed. If
    the spool cannot take the dataset (a full disk), the file goes at once,
    the rest of the dataset is read and dropped, and ``failure`` says why: the
    request is answered, the association goes on.
    """

    context_id: int
    fields: dict[str, Any]  # the command set's elements by keyword (see parse_command)
    spool: SpoolFile | None
    failure: str = ""

    def __post_init__(self) -> None:
        self._discard = weakref.finalize(self, _remove, self.spool)

    def write(self, data: memoryview) -> None:
        """A fragment of the dataset into the spool file, unless spooling failed already."""
        if self.spool is None:
            return
        try:
            self.spool.write(data)
        except OSError as exc:
            self._fail(exc)

    def finish(self) -> bool:
        """The whole dataset reached the spool file; ``False`` if spooling failed."""
        if self.spool is not None:
            try:
                self.spool.flush()
            except OSError as exc:
                self._fail(exc)
        return self.spool is not None

    def _fail(self, exc: OSError) -> None:
        self._discard()
        self.spool = None
        self.failure = f"cannot spool: {exc.strerror or exc}"

    @property
    def message_id(self) -> int:
        return int(self.fields["MessageID"])

    @property
    def sop_class_uid(self) -> str:
        return str(self.fields["AffectedSOPClassUID"])

    @property
    def sop_instance_uid(self) -> str:
        return str(self.fields["AffectedSOPInstanceUID"])

    def taken(self) -> SpoolFile:
        """The complete spool file (after :meth:`finish`), from now on the caller's."""
        assert self.spool is not None, "taken after spooling failed"
        self._discard.detach()
        return self.spool

    def handed_over(self) -> C_STORE:
        """The finished request; from now on pynetdicom's C-STORE service owns the file."""
        return _primitive(self.context_id, self.fields, self.taken())


def parse_command(encoded: bytes | memoryview) -> dict[str, Any] | None:
    """The elements of a C-STORE-RQ command set by keyword, or ``None`` if it is anything else."""
    fields: dict[str, Any] = {}
    offset, end = 0, len(encoded)
    while offset < end:
        if end - offset < 8:
            return None
        group, element, length = _ELEMENT.unpack_from(encoded, offset)
        offset += 8
        keyword = _FIELDS.get(element)
        if group != 0x0000 or keyword is None or offset + length > end:
            return None
        value = bytes(encoded[offset : offset + length])
        offset += length
        if element == 0x0000:
            fields[keyword] = _UL.unpack(value)[0] if length == 4 else None
        elif element in _NUMBERS:
            if length != 2:
                return None
            fields[keyword] = _US.unpack(value)[0]
        else:
            try:
                fields[keyword] = value.decode("ascii").rstrip("\0 ")
            except UnicodeDecodeError:
                return None
    if fields.get("CommandField") != C_STORE_RQ or fields.get("CommandDataSetType") == NO_DATASET:
        return None
    required = ("MessageID", "AffectedSOPClassUID", "AffectedSOPInstanceUID", "Priority")
    return fields if all(name in fields for name in required) else None


def begin_store(assoc: Any, context_id: int, encoded: bytes | memoryview) -> IncomingStore | None:
    """The request and its open spool file, or ``None`` to leave the message to pynetdicom.

    Ours are only requests pynetdicom's primitive would take as they are: the
    primitive itself is built only if pynetdicom gets the request after all
    (see :meth:`IncomingStore.handed_over`).
    """
    fields = parse_command(encoded)
    context = assoc._accepted_cx.get(context_id)
    if fields is None or context is None or not _acceptable(fields):
        return None
    meta = FileMeta(
        sop_class_uid=fields["AffectedSOPClassUID"],
        sop_instance_uid=fields["AffectedSOPInstanceUID"],
        transfer_syntax=context.transfer_syntax[0],
    ).encoded()
    if meta is None:
        return None
    try:
        spool = open_spool_file()
    except OSError as exc:
        incoming = IncomingStore(context_id, fields, None)
        incoming._fail(exc)
        return incoming
    incoming = IncomingStore(context_id, fields, spool)
    try:
        spool.write_head(meta, str(context.transfer_syntax[0]))
    except OSError as exc:
        incoming._fail(exc)
    return incoming


def _acceptable(fields: dict[str, Any]) -> bool:
    """Whether pynetdicom's setters take these values (our UID check is the stricter)."""
    try:
        check_uid(fields["AffectedSOPClassUID"], "AffectedSOPClassUID")
        check_uid(fields["AffectedSOPInstanceUID"], "AffectedSOPInstanceUID")
    except InvalidUID:
        return False
    if fields["Priority"] not in (0, 1, 2):
        return False
    if "MoveOriginatorApplicationEntityTitle" in fields:  # rare: let pynetdicom judge the AE title
        try:
            _primitive(0, fields, None)
        except (TypeError, ValueError):
            return False
    return True


def _primitive(context_id: int, fields: dict[str, Any], spool: SpoolFile | None) -> C_STORE:
    """The C_STORE primitive pynetdicom's decoder would have made of the request."""
    primitive = C_STORE()
    primitive.MessageID = fields["MessageID"]
    primitive.AffectedSOPClassUID = fields["AffectedSOPClassUID"]
    primitive.AffectedSOPInstanceUID = fields["AffectedSOPInstanceUID"]
    primitive.Priority = fields["Priority"]
    if "MoveOriginatorApplicationEntityTitle" in fields:
        primitive.MoveOriginatorApplicationEntityTitle = fields[
            "MoveOriginatorApplicationEntityTitle"
        ]
    if "MoveOriginatorMessageID" in fields:
        primitive.MoveOriginatorMessageID = fields["MoveOriginatorMessageID"]
    if spool is not None:
        primitive.DataSet = BytesIO()
        primitive._context_id = context_id
        primitive._dataset_path = Path(spool.name)
        primitive._dataset_file = spool  # type: ignore[assignment]  # what pynetdicom uses of one
    return primitive


def _remove(spool: SpoolFile | None) -> None:
    if spool is None:
        return
    with contextlib.suppress(OSError):
        spool.close()
    with contextlib.suppress(OSError):
        os.unlink(spool.name)
