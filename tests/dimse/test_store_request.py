"""C-STORE requests read without pynetdicom's DIMSE decoder (pacs.dimse.store_request)."""

from __future__ import annotations

import gc
import struct
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pynetdicom.dimse_messages import C_STORE_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.dsutils import encode

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from pacs.dimse.store_request import parse_command
from tests.dicom_factory import CT_IMAGE_STORAGE, ct_slice
from tests.dimse.peers import status_of, store_ae, stored_bytes


def _command(primitive: Any, message: Any) -> bytes:
    """The command set pynetdicom sends for ``primitive``."""
    message.primitive_to_message(primitive)
    return bytes(encode(message.command_set, True, True))  # type: ignore[arg-type]


def _store_request(**extra: Any) -> C_STORE:
    primitive = C_STORE()
    primitive.MessageID = 12
    primitive.AffectedSOPClassUID = CT_IMAGE_STORAGE
    primitive.AffectedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.123"
    primitive.Priority = 2
    for name, value in extra.items():
        setattr(primitive, name, value)
    primitive.DataSet = BytesIO(struct.pack("<HHL", 0x0008, 0x0018, 0))
    return primitive


@pytest.mark.parametrize(
    "extra",
    [{}, {"MoveOriginatorApplicationEntityTitle": "MOVESCU", "MoveOriginatorMessageID": 3}],
    ids=["plain", "move-originator"],
)
def test_command_sets_read_as_pynetdicom_encodes_them(extra: dict[str, Any]) -> None:
    fields = parse_command(_command(_store_request(**extra), C_STORE_RQ()))
    assert fields is not None
    assert fields["MessageID"] == 12 and fields["Priority"] == 2
    assert fields["AffectedSOPClassUID"] == CT_IMAGE_STORAGE
    assert fields["AffectedSOPInstanceUID"] == "1.2.826.0.1.3680043.8.498.123"
    for name, value in extra.items():
        assert fields[name] == value


def test_anything_but_a_plain_store_request_is_left_to_pynetdicom() -> None:
    from pynetdicom.dimse_messages import C_ECHO_RQ

    echo = C_ECHO()
    echo.MessageID = 1
    echo.AffectedSOPClassUID = "1.2.840.10008.1.1"
    store = _command(_store_request(), C_STORE_RQ())
    assert parse_command(_command(echo, C_ECHO_RQ())) is None
    assert parse_command(store[:-3]) is None  # truncated
    unknown = struct.pack("<HHL", 0x0000, 0x0901, 2) + b"\0\0"  # not a C-STORE-RQ element
    assert parse_command(store + unknown) is None


@pytest.mark.fastpath
def test_pynetdicom_decodes_no_store_request(
    archive: Archive, dimse_server: DimseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[int] = []
    decode = DIMSEMessage.decode_msg

    def spy(self: DIMSEMessage, primitive: Any, assoc: Any = None) -> bool:
        if assoc is not None and assoc.is_acceptor:  # the server's side, not the peer's
            decoded.append(len(primitive.presentation_data_value_list))
        return decode(self, primitive, assoc)

    monkeypatch.setattr(DIMSEMessage, "decode_msg", spy)
    slices = [ct_slice(index=i, size=300) for i in range(2)]
    assoc = store_ae().associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        statuses = [status_of(assoc.send_c_store(ds)) for ds in slices]
        moved = ct_slice(index=5)
        statuses.append(
            status_of(assoc.send_c_store(moved, originator_aet="MOVESCU", originator_id=7))
        )
    finally:
        assoc.release()
    assert statuses == [(0, "")] * 3
    for ds in [*slices, moved]:
        assert stored_bytes(archive, ds.SOPInstanceUID).endswith(ds.PixelData)
    assert decoded == [], "C-STORE requests went through pynetdicom's decoder"


def _pdv(context_id: int, control: int, data: bytes) -> bytes:
    return struct.pack(">LBB", len(data) + 2, context_id, control) + data


@pytest.mark.fastpath
def test_an_association_dropped_mid_dataset_leaves_no_spool_file(
    dimse_server: DimseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "spool-under-test"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    assoc = store_ae().associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert assoc.is_established
    [context] = [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == CT_IMAGE_STORAGE]
    command = _command(_store_request(), C_STORE_RQ())
    body = _pdv(context.context_id, 0x03, command) + _pdv(context.context_id, 0x00, b"\0" * 1000)
    transport = assoc.dul.socket.socket  # type: ignore[union-attr]
    assert transport is not None
    transport.sendall(struct.pack(">BBL", 0x04, 0, len(body)) + body)
    deadline = time.monotonic() + 5
    while not list(folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(folder.iterdir()), "the request was not spooled at all"
    assoc.abort()
    deadline = time.monotonic() + 10
    while list(folder.iterdir()) and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert list(folder.iterdir()) == []
