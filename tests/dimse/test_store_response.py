"""C-STORE responses encoded by pacs.dimse.store_response: byte for byte pynetdicom's."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.tag import Tag
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode

from pacs.archive import Archive
from pacs.dicom import status as st
from pacs.dimse.server import DimseServer
from pacs.dimse.store_response import encode_store_response
from tests.dicom_factory import ct_slice
from tests.dimse.peers import status_of, store_ae

CT = "1.2.840.10008.5.1.4.1.1.2"


def _response(
    status: int,
    comment: str | None = None,
    *,
    message_id: int = 7,
    sop_class: str = CT,
    sop_instance: str = "1.2.826.0.1.3680043.8.498.1",
) -> C_STORE:
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Status = status
    if comment is not None:
        primitive.ErrorComment = comment  # type: ignore[assignment]
    return primitive


def _pynetdicom_bytes(primitive: C_STORE) -> bytes:
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    return bytes(encode(message.command_set, True, True))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "primitive",
    [
        _response(st.SUCCESS),
        _response(st.SUCCESS, sop_instance="1.2.3.44", message_id=65535),  # even-length UID
        _response(st.WARNING_DUPLICATE_KEPT, "duplicate SOP Instance UID; original kept"),
        _response(st.CANNOT_UNDERSTAND, "odd"),  # odd-length comment, padded
        _response(st.OUT_OF_RESOURCES, "x" * 64),
        _response(st.DATASET_DOES_NOT_MATCH, sop_class="1.2.840.10008.5.1.4.1.1.4"),
    ],
    ids=["success", "even-uid", "warning", "odd-comment", "long-comment", "mr"],
)
def test_encoding_equals_pynetdicoms(primitive: C_STORE) -> None:
    assert encode_store_response(primitive) == _pynetdicom_bytes(primitive)


def test_what_it_does_not_cover_is_left_to_pynetdicom() -> None:
    offending = _response(st.CANNOT_UNDERSTAND)
    offending.OffendingElement = [Tag(0x0008, 0x0018)]  # type: ignore[assignment]
    assert encode_store_response(offending) is None
    assert encode_store_response(_response(st.CANNOT_UNDERSTAND, "Nguyễn")) is None
    request = C_STORE()
    request.MessageID = 1
    assert encode_store_response(request) is None  # a request, not a response


@pytest.mark.fastpath
def test_peers_read_the_responses(
    archive: Archive, dimse_server: DimseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pynetdicom as the sender decodes what we encode: success and a refusal with its reason."""
    converted: list[str] = []  # responses pynetdicom encoded itself
    to_message = C_STORE_RSP.primitive_to_message

    def spy(self: C_STORE_RSP, primitive: Any) -> None:
        converted.append(type(self).__name__)
        to_message(self, primitive)

    monkeypatch.setattr(C_STORE_RSP, "primitive_to_message", spy)
    assoc = store_ae().associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        good = status_of(assoc.send_c_store(ct_slice()))
        bad_ds = ct_slice()
        bad_ds.SeriesInstanceUID = "1.2.3/../4"
        bad = status_of(assoc.send_c_store(bad_ds))
    finally:
        assoc.release()
    assert good == (st.SUCCESS, "")
    assert bad[0] == st.CANNOT_UNDERSTAND and "SeriesInstanceUID" in bad[1]
    assert converted == [], "the server's C-STORE responses went through pynetdicom's encoder"
