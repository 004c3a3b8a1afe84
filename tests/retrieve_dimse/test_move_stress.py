"""C-MOVE completes, every time: 20 consecutive moves of a 60-instance study, real destinations.

A C-MOVE used to stall for the DIMSE timeout about once in four (to DCMTK's
storescp), after pynetdicom logged "Received unexpected C-STORE service
message": the sub-association's reactor thread took a C-STORE-RSP that the
thread sending the C-STOREs was waiting for (see :mod:`pacs.dimse.responses`).
The race is forced here by holding the reactor inside its window, and the
stress tests count, for every move, what the destination received and what
the final response reports.
"""

from __future__ import annotations

import io
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelMove,
)
from pynetdicom.transport import AssociationSocket

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.dimse import move
from pacs.dimse.responses import SenderOwnedResponses
from pacs.dimse.server import DimseServer
from pacs.settings import RemoteAE
from tests.conftest import free_port
from tests.dicom_factory import ct_slice, to_bytes
from tests.peers import register
from tests.retrieve_dimse import destinations

STUDY = "1.2.826.0.1.3680043.8.498.700"
SERIES = f"{STUDY}.1"
INSTANCES = 60
MOVES = 20  # 1,200 C-STOREs per destination: the race showed about once in four moves


def sop(index: int) -> str:
    return f"{SERIES}.{index + 1}"


@pytest.fixture
def study(sqlite_archive: Archive) -> set[str]:
    """A study of 60 small CT slices (64 x 64); the SOP Instance UIDs."""
    for index in range(INSTANCES):
        ds = ct_slice(STUDY, SERIES, sop(index), index=index, size=64)
        sqlite_archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="test"))
    return {sop(index) for index in range(INSTANCES)}


@pytest.fixture
def server(sqlite_archive: Archive) -> Iterator[DimseServer]:
    sqlite_archive.settings.dimse_timeout = 5.0  # a stolen response shows in seconds
    server = DimseServer(sqlite_archive)
    server.start("127.0.0.1", 0)
    yield server
    server.stop(grace=2)


def _register(archive: Archive, destination: str, port: int) -> None:
    register(
        archive,
        RemoteAE(ae_title="MOVESCU", services=["move"]),
        RemoteAE(ae_title=destination, host="127.0.0.1", port=port, services=["store"]),
    )


@pytest.fixture
def storescp(tmp_path: Path, dcmtk: None) -> Iterator[tuple[int, Path]]:
    folder = tmp_path / "storescp"
    with destinations.storescp(folder) as port:
        yield port, folder


def _taken(folder: Path) -> Counter[str]:
    """SOP Instance UIDs of the files storescp wrote since the last call (then removed)."""
    found: Counter[str] = Counter()
    for path in folder.iterdir():
        found[str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)] += 1
        path.unlink()
    return found


class StorageSCP:
    """The storage SCP of :mod:`tests.retrieve_dimse.storage_scp`, in a process of its own."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.read = 0
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.retrieve_dimse.storage_scp", str(self.port), str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )
        destinations.wait_listening(self.port, self.process)

    def taken(self) -> Counter[str]:
        """SOP Instance UIDs received since the last call (each line is written before
        its C-STORE is answered, so a finished C-MOVE finds all of them)."""
        with self.log.open("rb") as log:
            log.seek(self.read)
            data = log.read()
        self.read += len(data)
        return Counter(data.decode("ascii").split())


@pytest.fixture
def pynetdicom_scp(tmp_path: Path) -> Iterator[StorageSCP]:
    scp = StorageSCP(tmp_path / "pyscp.log")
    try:
        yield scp
    finally:
        scp.process.terminate()
        scp.process.wait(timeout=10)


def _identifier() -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = STUDY
    return ds


@pytest.fixture
def stock_server(sqlite_archive: Archive, monkeypatch: pytest.MonkeyPatch) -> Iterator[DimseServer]:
    """The server on stock pynetdicom (``PACS_DIMSE_FASTPATH=false``) whatever the run says."""
    settings = sqlite_archive.settings.model_copy(update={"dimse_fastpath": False})
    monkeypatch.setattr(sqlite_archive, "settings", settings)
    server = DimseServer(sqlite_archive)
    assert server.fastpath is False
    server.start("127.0.0.1", 0)
    yield server
    server.stop(grace=2)


def test_on_stock_pynetdicom_a_move_acknowledges_the_destination_at_once(
    sqlite_archive: Archive,
    study: set[str],
    stock_server: DimseServer,
    storescp: tuple[int, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the fast path's reads, every C-STORE to a destination that keeps Nagle on
    (storescp) waited for Linux's delayed ACK: ~50 ms per instance, 10x the fast path
    (the "crawl" of the stock pass). After each PDU the sub-association sends, the
    socket must be out of delayed-ACK mode (``TCP_QUICKACK`` reads 1; the kernel turns it
    off whenever data is sent shortly after data was received)."""
    port, folder = storescp
    _register(sqlite_archive, "STORESCP", port)
    modes: list[int] = []
    send = AssociationSocket.send

    def observed(self: AssociationSocket, bytestream: bytes) -> bool:
        sent = send(self, bytestream)
        ours = self.assoc.is_requestor and self.assoc.ae is stock_server.ae  # the sub-association
        if ours and self.socket is not None:
            modes.append(self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK))
        return sent

    monkeypatch.setattr(AssociationSocket, "send", observed)
    scu = AE(ae_title="MOVESCU")
    scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = scu.associate("127.0.0.1", stock_server.port, ae_title="PACS")
    final = _move(assoc, "STORESCP")[-1]
    assoc.release()
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == INSTANCES
    assert set(_taken(folder)) == study
    assert len(modes) >= INSTANCES and set(modes) == {1}, Counter(modes)


def _move(assoc: Association, destination: str) -> list[Dataset]:
    """One C-MOVE on ``assoc``; every response's status dataset."""
    responses = assoc.send_c_move(
        _identifier(), destination, StudyRootQueryRetrieveInformationModelMove
    )
    return [status for status, _ in responses]


def _moves(
    server: DimseServer, destination: str, taken: Callable[[], Counter[str]], expected: set[str]
) -> list[str]:
    """50 C-MOVEs on one association; a line per move that went wrong."""
    scu = AE(ae_title="MOVESCU")
    scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    scu.dimse_timeout = 30
    assoc = scu.associate("127.0.0.1", server.port, ae_title="PACS")
    assert assoc.is_established
    wrong: list[str] = []
    try:
        for number in range(MOVES):
            statuses = _move(assoc, destination)
            final = statuses[-1]
            received = taken()
            counts = (
                int(final.Status),
                int(final.get("NumberOfCompletedSuboperations", -1)),
                int(final.get("NumberOfFailedSuboperations", -1)),
                int(final.get("NumberOfWarningSuboperations", -1)),
            )
            pending = [int(s.NumberOfRemainingSuboperations) for s in statuses[:-1]]
            if (
                counts != (0x0000, INSTANCES, 0, 0)
                or set(received) != expected
                or set(received.values()) != {1}
                or pending != list(range(INSTANCES - 1, -1, -1))
            ):
                duplicates = sum(n - 1 for n in received.values())
                wrong.append(
                    f"move {number}: status {counts[0]:#06x}, completed/failed/warning "
                    f"{counts[1:]}, destination got {len(received)} distinct, "
                    f"{duplicates} duplicates, {len(pending)} pending responses"
                )
    finally:
        assoc.release()
    return wrong


def test_20_moves_to_dcmtk_storescp(
    sqlite_archive: Archive,
    study: set[str],
    server: DimseServer,
    storescp: tuple[int, Path],
) -> None:
    port, folder = storescp
    _register(sqlite_archive, "STORESCP", port)
    started = time.monotonic()
    wrong = _moves(server, "STORESCP", lambda: _taken(folder), study)
    took = time.monotonic() - started
    assert not wrong, "\n".join(wrong)
    print(f"{MOVES} moves x {INSTANCES} instances to storescp: {took:.1f} s")


def test_20_moves_to_a_pynetdicom_scp(
    sqlite_archive: Archive,
    study: set[str],
    server: DimseServer,
    pynetdicom_scp: StorageSCP,
) -> None:
    _register(sqlite_archive, "PYSCP", pynetdicom_scp.port)
    started = time.monotonic()
    wrong = _moves(server, "PYSCP", pynetdicom_scp.taken, study)
    took = time.monotonic() - started
    assert not wrong, "\n".join(wrong)
    print(f"{MOVES} moves x {INSTANCES} instances to a pynetdicom SCP: {took:.1f} s")


def test_a_response_arriving_in_the_reactors_window_reaches_its_sender(
    sqlite_archive: Archive,
    study: set[str],
    server: DimseServer,
    pynetdicom_scp: StorageSCP,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race, forced: the sub-association's reactor passes its checkpoint just before
    the C-MOVE handler pauses it for a C-STORE, and polls the queue only once that
    C-STORE's response is there. Before the fix the reactor took the response and the
    move stalled for the DIMSE timeout, reporting a stored instance as failed."""
    _register(sqlite_archive, "PYSCP", pynetdicom_scp.port)
    held: list[bool] = []
    original = move._event_driven

    def event_driven_with_a_slow_reactor(event: Any) -> None:
        original(event)
        assoc = event.assoc
        checkpoint = assoc._reactor_checkpoint
        messages = assoc.dimse.msg_queue
        passed = checkpoint.wait

        def wait(timeout: float | None = None) -> bool:
            result = bool(passed(timeout))
            if result and not held and threading.current_thread() is assoc:
                held.append(True)  # only the reactor's first turn is held
                deadline = time.monotonic() + 5
                while messages.empty() and time.monotonic() < deadline:
                    time.sleep(0.001)
            return result

        checkpoint.wait = wait

    monkeypatch.setattr(move, "_event_driven", event_driven_with_a_slow_reactor)
    scu = AE(ae_title="MOVESCU")
    scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = scu.associate("127.0.0.1", server.port, ae_title="PACS")
    # Every association of the process has the queue: this requestor's too.
    assert isinstance(assoc.dimse.msg_queue, SenderOwnedResponses)
    started = time.monotonic()
    final = _move(assoc, "PYSCP")[-1]
    took = time.monotonic() - started
    assoc.release()
    received = pynetdicom_scp.taken()
    assert held, "the reactor's window was never entered"
    assert set(received) == study and set(received.values()) == {1}
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == INSTANCES
    assert final.NumberOfFailedSuboperations == 0
    assert took < sqlite_archive.settings.dimse_timeout, "a C-STORE waited for the timeout"


def _store_primitive(*, request: bool) -> C_STORE:
    primitive = C_STORE()
    if request:
        primitive.MessageID = 1
        primitive.AffectedSOPClassUID = CTImageStorage
        primitive.AffectedSOPInstanceUID = sop(0)
        primitive.Priority = 2
        primitive.DataSet = io.BytesIO(b"")
    else:
        primitive.MessageIDBeingRespondedTo = 1
        primitive.AffectedSOPClassUID = CTImageStorage
        primitive.AffectedSOPInstanceUID = sop(0)
        primitive.Status = 0x0000
    return primitive


def test_the_reactors_poll_leaves_a_response_to_a_paused_sender() -> None:
    checkpoint = threading.Event()
    messages = SenderOwnedResponses(
        cast(Association, SimpleNamespace(_reactor_checkpoint=checkpoint))
    )
    response = (1, _store_primitive(request=False))
    request = (1, _store_primitive(request=True))
    assert response[1].is_valid_response and request[1].is_valid_request

    messages.put(response)  # a sender paused the reactor: the response is the sender's
    with pytest.raises(queue.Empty):
        messages.get(block=False)
    assert messages.get(block=True, timeout=1) == response

    messages.put(request)  # a request is the reactor's, paused or not
    assert messages.get(block=False) == request

    checkpoint.set()  # nobody waits: the reactor sees (and drops) a stray response
    messages.put(response)
    assert messages.get(block=False) == response


@pytest.mark.parametrize(
    ("model", "level", "key"),
    [("-P", "PATIENT", "PatientID=BN0001"), ("-S", "STUDY", f"StudyInstanceUID={STUDY}")],
)
def test_movescu_at_patient_and_study_level_to_storescp(
    sqlite_archive: Archive,
    study: set[str],
    server: DimseServer,
    storescp: tuple[int, Path],
    model: str,
    level: str,
    key: str,
) -> None:
    """DCMTK's movescu, as the defect was found: 5 moves in a row, each complete."""
    port, folder = storescp
    _register(sqlite_archive, "STORESCP", port)
    args = ["movescu", "-v", "-aet", "MOVESCU", "-aec", "PACS", "-aem", "STORESCP", model]
    args += ["-k", f"QueryRetrieveLevel={level}", "-k", key, "127.0.0.1", str(server.port)]
    for number in range(5):
        result = subprocess.run(args, capture_output=True, text=True, timeout=60)
        output = result.stdout + result.stderr
        received = _taken(folder)
        assert result.returncode == 0, output
        assert "Received Final Move Response (Success)" in output, f"move {number}: {output}"
        assert set(received) == study and set(received.values()) == {1}, f"move {number}"
