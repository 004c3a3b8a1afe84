"""P-DATA-TF PDUs read by our own path (pacs.dimse.pdata) instead of pynetdicom's.

What must hold: a C-STORE's dataset reaches the archive byte for byte without
passing through pynetdicom's copies; a PDU whose items do not add up aborts
that association and no other; a declared length reserves no memory; and
pynetdicom's log handlers, which would send every PDU back the slow way, are
bound only when their log is read.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.dicom import status as st
from pacs.dimse import reactor
from pacs.dimse.pdata import MalformedPDU, pdv_items
from pacs.dimse.server import DimseServer
from tests.dicom_factory import ct_slice, to_bytes
from tests.dimse.peers import status_of, store_ae, stored_bytes


def _pdv(context_id: int, control: int, data: bytes) -> bytes:
    return struct.pack(">LBB", len(data) + 2, context_id, control) + data


def test_pdv_items_are_split_as_encoded() -> None:
    body = _pdv(1, 0x03, b"command") + _pdv(3, 0x00, b"") + _pdv(5, 0x02, b"x" * 1000)
    items = [(cx, control, bytes(data)) for cx, control, data in pdv_items(memoryview(body))]
    assert items == [(1, 0x03, b"command"), (3, 0x00, b""), (5, 0x02, b"x" * 1000)]


@pytest.mark.parametrize(
    "body",
    [
        _pdv(1, 0x02, b"abc")[:-1],  # item longer than the PDU
        struct.pack(">LBB", 1, 1, 0),  # item shorter than its own header
        _pdv(1, 0x02, b"abc") + b"\x00\x00\x00",  # trailing bytes, not an item
    ],
)
def test_pdv_items_that_do_not_add_up_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedPDU):
        list(pdv_items(memoryview(body)))


@pytest.fixture
def quiet_server(archive: Archive) -> Iterator[DimseServer]:
    """Our listener as ``pacs serve`` runs it: pynetdicom's log at WARNING."""
    pynetdicom_log = logging.getLogger("pynetdicom")
    level = pynetdicom_log.level
    pynetdicom_log.setLevel(logging.WARNING)
    server = DimseServer(archive)
    server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        server.stop(grace=2)
        pynetdicom_log.setLevel(level)


@pytest.mark.fastpath
def test_dataset_fragments_go_to_the_spool_file_not_through_pynetdicom(
    archive: Archive, quiet_server: DimseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slice of several PDUs arrives intact, and pynetdicom saw none of its dataset bytes."""
    seen: list[int] = []  # lengths of the dataset PDVs pynetdicom was handed
    decode = DIMSEMessage.decode_msg

    def spy(self: DIMSEMessage, primitive: Any, assoc: Any = None) -> bool:
        for _, data in primitive.presentation_data_value_list:
            if not data[0] & 1:
                seen.append(len(data))
        return decode(self, primitive, assoc)

    monkeypatch.setattr(DIMSEMessage, "decode_msg", spy)
    slices = [ct_slice(index=i, size=384) for i in range(3)]  # 288 KiB of pixels each
    assoc = store_ae().associate("127.0.0.1", quiet_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        statuses = [status_of(assoc.send_c_store(ds)) for ds in slices]
    finally:
        assoc.release()
    assert statuses == [(0, "")] * 3
    for ds in slices:
        sent = to_bytes(ds)
        kept = stored_bytes(archive, ds.SOPInstanceUID)
        assert kept[-len(ds.PixelData) :] == ds.PixelData
        assert kept.endswith(sent[sent.index(b"\x08\x00\x05\x00") :])  # dataset as sent
    assert all(length <= 1 for length in seen), "dataset bytes went through pynetdicom's decoding"


def _raw_pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, len(body)) + body


def test_a_malformed_pdata_pdu_aborts_only_its_association(quiet_server: DimseServer) -> None:
    ae = AE(ae_title="PROBE")
    ae.add_requested_context(Verification)
    aborted = threading.Event()
    handlers: list[Any] = [(evt.EVT_ABORTED, lambda _event: aborted.set())]
    assoc = ae.associate("127.0.0.1", quiet_server.port, ae_title="PACS", evt_handlers=handlers)
    assert assoc.is_established
    transport = assoc.dul.socket.socket  # type: ignore[union-attr]
    assert transport is not None
    # An item claiming 100 bytes inside a PDU of 10.
    transport.sendall(_raw_pdu(0x04, struct.pack(">LBB", 100, 1, 0x02) + b"1234"))
    assert aborted.wait(10), "the server did not abort the association"
    assoc.kill()

    second = ae.associate("127.0.0.1", quiet_server.port, ae_title="PACS")
    assert second.is_established
    try:
        assert second.send_c_echo().Status == 0x0000
    finally:
        second.release()


def test_a_declared_length_is_not_memory_set_aside() -> None:
    """The peer's word for a PDU's length costs nothing until the bytes arrive."""
    ours, peer = socket.socketpair()
    with ours, peer:
        bulk = reactor.BulkReceiveSocket.__new__(reactor.BulkReceiveSocket)
        bulk.socket = ours
        peer.sendall(b"0123456789")
        peer.close()
        tracemalloc.start()
        try:
            got = bulk.recv(1 << 31)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert bytes(got) == b"0123456789"
    assert peak < 4 << 20, f"{peak} bytes reserved for a 2 GiB declaration"


def test_pushed_back_bytes_are_read_first() -> None:
    ours, peer = socket.socketpair()
    with ours, peer:
        bulk = reactor.BulkReceiveSocket.__new__(reactor.BulkReceiveSocket)
        bulk.socket = ours
        peer.sendall(b"world")
        bulk.push_back(b"hello ")
        assert bytes(bulk.recv(8)) == b"hello wo"
        view = memoryview(bytearray(3))
        assert bulk.recv_exactly(view) and bytes(view) == b"rld"


@pytest.mark.parametrize(
    ("level", "expected"), [(logging.WARNING, "none"), (logging.INFO, "standard")]
)
def test_pynetdicom_log_handlers_are_bound_only_when_their_log_is_read(
    archive: Archive, level: int, expected: str
) -> None:
    pynetdicom_log = logging.getLogger("pynetdicom")
    before_level, before_config = pynetdicom_log.level, _config.LOG_HANDLER_LEVEL
    pynetdicom_log.setLevel(level)
    server = DimseServer(archive)
    server.start("127.0.0.1", 0)
    try:
        assert expected == _config.LOG_HANDLER_LEVEL
        ae = AE(ae_title="PROBE")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", server.port, ae_title="PACS")
        assert assoc.is_established
        deadline = time.monotonic() + 5
        while (
            server.server is not None
            and not server.server.active_associations
            and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        assert server.server is not None
        [accepted] = server.server.active_associations
        bound = bool(accepted.get_handlers(evt.EVT_PDU_RECV))
        assoc.release()
        assert bound is (expected == "standard")
    finally:
        server.stop(grace=2)
        pynetdicom_log.setLevel(before_level)
        _config.LOG_HANDLER_LEVEL = before_config


@pytest.mark.fastpath
def test_store_requests_are_served_on_the_receiving_thread(
    archive: Archive, quiet_server: DimseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No handover to the association thread and back; and a release is still prompt."""
    threads: list[str] = []
    ingest = archive.ingest

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(type(threading.current_thread()).__name__)
        return ingest(*args, **kwargs)

    monkeypatch.setattr(archive, "ingest", recording)
    ae = store_ae()
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", quiet_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        statuses = [status_of(assoc.send_c_store(ct_slice(index=i))) for i in range(3)]
        assert assoc.send_c_echo().Status == 0x0000  # still served by the association thread
    finally:
        started = time.monotonic()
        assoc.release()
        released_in = time.monotonic() - started
    assert statuses == [(0, "")] * 3
    assert threads == ["DULServiceProvider"] * 3
    assert released_in < 0.5, f"release took {released_in:.2f} s"
    assert archive.counts()["instances"] == 3


def _serve_request_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the requests pynetdicom's own ``_serve_request`` served."""
    served: list[str] = []
    serve = Association._serve_request

    def spy(self: Association, msg: Any, context_id: int) -> None:
        served.append(type(msg).__name__)
        serve(self, msg, context_id)

    monkeypatch.setattr(Association, "_serve_request", spy)
    return served


@pytest.mark.fastpath
def test_plain_store_requests_bypass_pynetdicoms_service_and_answer_alike(
    archive: Archive, quiet_server: DimseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Success, a kept duplicate, a refusal with its reason, and one only pynetdicom encodes."""
    served = _serve_request_spy(monkeypatch)
    first = ct_slice(index=0)
    changed = ct_slice(index=1)
    changed.SOPInstanceUID = first.SOPInstanceUID  # same UID, other content
    broken = ct_slice(index=2)
    broken.SeriesInstanceUID = "1.2.3/../4"
    accented = ct_slice(index=3)
    accented.StudyInstanceUID = "1.2.3\u00e9"  # its refusal's comment is not ASCII
    assoc = store_ae().associate("127.0.0.1", quiet_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        answers = [status_of(assoc.send_c_store(ds)) for ds in (first, changed, broken, accented)]
    finally:
        assoc.release()
    assert served == []
    assert answers[0] == (st.SUCCESS, "")
    assert answers[1] == (st.WARNING_DUPLICATE_KEPT, "duplicate SOP Instance UID; original kept")
    assert answers[2][0] == st.CANNOT_UNDERSTAND and "SeriesInstanceUID" in answers[2][1]
    assert answers[3][0] == st.CANNOT_UNDERSTAND and "StudyInstanceUID" in answers[3][1]
    assert archive.counts()["instances"] == 1
    assert stored_bytes(archive, first.SOPInstanceUID).endswith(first.PixelData)


def test_with_an_observer_bound_pynetdicom_serves_and_it_sees_every_response(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = _serve_request_spy(monkeypatch)
    sent: list[str] = []
    server = DimseServer(
        archive,
        extra_handlers=[
            (evt.EVT_DIMSE_SENT, lambda event: sent.append(type(event.message).__name__))
        ],
    )
    server.start("127.0.0.1", 0)
    try:
        assoc = store_ae().associate("127.0.0.1", server.port, ae_title="PACS")
        assert assoc.is_established
        try:
            answers = [status_of(assoc.send_c_store(ct_slice(index=i))) for i in range(2)]
        finally:
            assoc.release()
    finally:
        server.stop(grace=2)
    assert answers == [(st.SUCCESS, "")] * 2
    assert served == ["C_STORE"] * 2
    assert sent == ["C_STORE_RSP"] * 2
