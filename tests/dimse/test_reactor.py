"""The accepted associations' receive path (pacs.dimse.reactor).

Reactors that wait for work must still wake on it, and must leave nothing
behind; the bulk reads must give pynetdicom exactly what its own reads gave.
The sleeps of pynetdicom's loops are what the waits replace, so a pynetdicom
release that stopped sleeping through ``time.sleep`` would silently undo
them: that is checked too.
"""

from __future__ import annotations

import gc
import inspect
import os
import socket
import threading
import time
from types import SimpleNamespace
from typing import Any, cast

import pynetdicom.association
import pynetdicom.dul
import pytest
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from pacs.dimse import reactor
from pacs.dimse.server import DimseServer


@pytest.mark.fastpath
def test_pynetdicom_reactors_still_sleep_through_time_sleep(dimse_server: DimseServer) -> None:
    assert "time.sleep(self._run_loop_delay)" in inspect.getsource(DULServiceProvider.run_reactor)
    assert "time.sleep(" in inspect.getsource(Association._run_reactor)
    assert isinstance(pynetdicom.dul.time, reactor._ReactorClock)
    assert isinstance(pynetdicom.association.time, reactor._ReactorClock)


def _returns_within(seconds: float, call: Any, wake: Any) -> float:
    """Run ``call`` (a wait of 5 s) while ``wake`` fires after 50 ms; how long it took."""
    timer = threading.Timer(0.05, wake)
    started = time.monotonic()
    timer.start()
    call()
    took = time.monotonic() - started
    timer.join()
    assert took < seconds, f"the wait ran {took:.2f} s: it did not wake on work"
    return took


def test_association_wait_wakes_when_a_message_is_queued() -> None:
    messages = reactor._MessageQueue()
    assoc = cast(
        Association,
        SimpleNamespace(
            dimse=SimpleNamespace(msg_queue=messages),
            dul=SimpleNamespace(to_user_queue=reactor._NotifyingQueue(messages.arrived)),
            _reactor_checkpoint=reactor._Checkpoint(messages.arrived),
        ),
    )
    _returns_within(
        2.0,
        lambda: reactor._association_wait(assoc, 5.0),
        lambda: messages.put((1, "message")),
    )
    assert messages.get_nowait() == (1, "message")
    _returns_within(  # an A-RELEASE or A-ABORT indication from the DUL wakes it too
        2.0,
        lambda: reactor._association_wait(assoc, 5.0),
        lambda: assoc.dul.to_user_queue.put("A-RELEASE"),
    )


def test_pausing_the_reactor_wakes_its_idle_wait() -> None:
    """A thread about to send on the association (a C-MOVE's C-STOREs) waits for the
    reactor to pause: clearing the checkpoint must end the reactor's idle wait."""
    messages = reactor._MessageQueue()
    checkpoint = reactor._Checkpoint(messages.arrived)
    assoc = cast(
        Association,
        SimpleNamespace(
            dimse=SimpleNamespace(msg_queue=messages),
            dul=SimpleNamespace(to_user_queue=reactor._NotifyingQueue(messages.arrived)),
            _reactor_checkpoint=checkpoint,
        ),
    )
    _returns_within(2.0, lambda: reactor._association_wait(assoc, 5.0), checkpoint.clear)
    started = time.monotonic()
    reactor._association_wait(assoc, 0.001)  # still cleared: no idle wait, a bare turn
    assert time.monotonic() - started < reactor.ASSOCIATION_IDLE_WAIT_S


def test_dul_wait_wakes_on_peer_data_and_on_a_queued_primitive() -> None:
    ours, peer = socket.socketpair()
    read_fd, write_fd = os.pipe()
    with ours, peer:
        dul = cast(
            DULServiceProvider,
            SimpleNamespace(socket=SimpleNamespace(socket=ours), _wake_fd=read_fd),
        )
        _returns_within(2.0, lambda: reactor._dul_wait(dul, 5.0), lambda: peer.send(b"\x04"))
        ours.recv(1)
        outgoing = reactor._ProviderQueue(write_fd)
        _returns_within(2.0, lambda: reactor._dul_wait(dul, 5.0), lambda: outgoing.put("P-DATA"))
        assert outgoing.get_nowait() == "P-DATA"
    os.close(read_fd)
    os.close(write_fd)


def test_bulk_receive_reads_whole_pdus_and_short_reads_on_close() -> None:
    ours, peer = socket.socketpair()
    with ours, peer:
        bulk = reactor.BulkReceiveSocket.__new__(reactor.BulkReceiveSocket)
        bulk.socket = ours
        payload = os.urandom(300_000)
        sender = threading.Thread(target=peer.sendall, args=(payload,))
        sender.start()
        assert bytes(bulk.recv(len(payload))) == payload
        sender.join()
        peer.sendall(b"0123456789")
        peer.close()
        assert bytes(bulk.recv(100)) == b"0123456789"  # as much as came, as pynetdicom's


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_associations_leave_no_descriptors_behind(dimse_server: DimseServer) -> None:
    ae = AE(ae_title="PROBE")
    ae.add_requested_context(Verification)

    def one_echo() -> None:
        assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()

    one_echo()
    deadline = time.monotonic() + 10  # the first association's threads end, then we count
    while dimse_server.server is not None and dimse_server.server.active_associations:
        assert time.monotonic() < deadline, "the association did not end"
        time.sleep(0.01)
    gc.collect()
    before = _open_fds()
    for _ in range(20):
        one_echo()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        gc.collect()
        if _open_fds() <= before + 2:
            break
        time.sleep(0.1)
    assert _open_fds() <= before + 2, "wake-up pipes or sockets leak per association"


def test_many_requests_on_one_association_are_answered(dimse_server: DimseServer) -> None:
    """Back-to-back requests: each answered once, none lost between the two waits."""
    ae = AE(ae_title="PROBE")
    ae.add_requested_context(Verification)
    ae.dimse_timeout = 10
    assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        statuses = [assoc.send_c_echo().Status for _ in range(300)]
    finally:
        assoc.release()
    assert statuses == [0x0000] * 300
