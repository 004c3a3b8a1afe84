"""C-STORE responses encoded straight to bytes, the most frequent message we send.

pynetdicom turns each response primitive into a pydicom command set and
encodes it twice (once to learn the group length), about half a millisecond
per stored instance here, a tenth of the whole C-STORE. A C-STORE-RSP is a
fixed handful of group 0000 elements in implicit VR little endian (PS3.7
9.3.1.2, E.1), so :func:`encode_store_response` writes them directly, and
:func:`send_store_responses_directly` has an association send them that way.

Anything it does not cover exactly (an Offending Element, a comment outside
the default character repertoire, a command that would not fit one PDU,
someone listening for sent DIMSE messages) is left to pynetdicom. A test
compares its bytes with pynetdicom's encoding of the same primitives.
"""

from __future__ import annotations

import struct
from typing import Any

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

C_STORE_RSP = 0x8001
NO_DATASET = 0x0101
COMMAND_LAST_FRAGMENT = 0x03
_PDV_OVERHEAD = 6  # item length and context ID, message control header: PS3.8 9.3.5


def _element(element: int, value: bytes) -> bytes:
    return struct.pack("<HHL", 0x0000, element, len(value)) + value


def _ui(uid: str) -> bytes:
    value = uid.encode("ascii")
    return value + b"\x00" if len(value) % 2 else value


def _us(number: int) -> bytes:
    return struct.pack("<H", number)


def encode_store_response(primitive: C_STORE) -> bytes | None:
    """The encoded command set of a C-STORE response, or ``None`` to leave it to pynetdicom."""
    if (
        primitive.MessageIDBeingRespondedTo is None
        or primitive.Status is None
        or primitive.OffendingElement is not None
    ):
        return None
    return encode_store_rsp(
        primitive.MessageIDBeingRespondedTo,
        primitive.AffectedSOPClassUID or "",
        primitive.AffectedSOPInstanceUID or "",
        primitive.Status,
        primitive.ErrorComment or "",
    )


def encode_store_rsp(
    message_id: int, sop_class: str, sop_instance: str, status: int, comment: str = ""
) -> bytes | None:
    """A C-STORE-RSP command set from its values; ``None`` for a comment outside ASCII."""
    if comment and not (comment.isascii() and comment.isprintable()):
        return None
    parts: list[bytes] = []
    if sop_class:
        parts.append(_element(0x0002, _ui(sop_class)))
    parts.append(_element(0x0100, _us(C_STORE_RSP)))
    parts.append(_element(0x0120, _us(message_id)))
    parts.append(_element(0x0800, _us(NO_DATASET)))
    parts.append(_element(0x0900, _us(status)))
    if comment:
        value = comment.encode("ascii")
        parts.append(_element(0x0902, value + b" " if len(value) % 2 else value))
    if sop_instance:
        parts.append(_element(0x1000, _ui(sop_instance)))
    body = b"".join(parts)
    return _element(0x0000, struct.pack("<L", len(body))) + body


def send_store_responses_directly(assoc: Association) -> None:
    """Route this association's C-STORE responses through :func:`encode_store_response`."""
    dimse = assoc.dimse
    send_msg = dimse.send_msg

    def send(primitive: Any, context_id: int) -> None:
        encoded = None
        if isinstance(primitive, C_STORE) and not assoc.get_handlers(evt.EVT_DIMSE_SENT):
            encoded = encode_store_response(primitive)
        limit = dimse.maximum_pdu_size
        if encoded is None or (limit and len(encoded) + _PDV_OVERHEAD > limit):
            send_msg(primitive, context_id)
            return
        pdata = P_DATA()
        pdata.presentation_data_value_list.append(
            (context_id, bytes([COMMAND_LAST_FRAGMENT]) + encoded)
        )
        dimse.dul.send_pdu(pdata)

    dimse.send_msg = send  # type: ignore[method-assign]
