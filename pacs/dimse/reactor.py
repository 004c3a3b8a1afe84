"""The receive path of the associations we accept: reactors that wake on work, bulk reads.

Each pynetdicom association runs two polling loops (its own ``TODO`` says
"make this event based"): the DUL thread sleeps ``_run_loop_delay`` (1 ms)
whenever a turn found nothing to do, and the association thread sleeps 1 ms
before each look at its DIMSE message queue. A C-STORE crosses three of those
sleeps (request read, handler started, response sent), about 1.5 ms per
instance on average: at a modality's pace (one object in flight per
association) that was a third of pynetdicom's own cost here.

The loops stay pynetdicom's; only their sleeps change. For the associations
our server accepts, ``time.sleep`` inside those two modules returns as soon as
the thread has work: the DUL waits in ``select`` on its socket and on a wake-up
pipe written when a primitive is queued for it, and the association thread
waits on an event set when a DIMSE message or an ACSE primitive is queued. A
sleep that returns early is always safe there, since every sleep in those
modules sits in a loop that re-checks its own condition; other threads and our
own outgoing associations keep the plain sleep. The association thread's idle
wait is also longer than pynetdicom's 1 ms (see :func:`_association_wait`).
``tests/dimse/test_reactor.py`` checks that pynetdicom still sleeps through
``time.sleep`` in both loops.

pynetdicom also reads each PDU 4 KiB at a time into a growing bytearray: 128
``recv`` calls (and as many polls, the socket having a timeout) per 512 KiB
slice. :class:`BulkReceiveSocket` reads into buffers as large as the bytes
that arrive, and :class:`~pacs.dimse.pdata.PDataReader` takes P-DATA PDUs
(and the C-STOREs they complete) off pynetdicom's hands altogether.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import socket
import ssl
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any, TypeVar

import pynetdicom.association
import pynetdicom.dul
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dul import DULServiceProvider
from pynetdicom.transport import AssociationSocket

from pacs.dimse.pdata import PDataReader
from pacs.dimse.responses import SenderOwnedResponses

log = logging.getLogger(__name__)
_Q = TypeVar("_Q", bound=queue.Queue[Any])
_REACTOR_LOOP = Association._run_reactor.__code__
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
ASSOCIATION_IDLE_WAIT_S = 0.02


class _MessageQueue(SenderOwnedResponses):
    """The DIMSE message queue, plus an event that wakes every waiting reader.

    ``Queue.not_empty`` wakes one waiter per item, so a reactor waiting on it
    could take the wake-up meant for a ``get(block=True)`` elsewhere.

    While :meth:`claiming`, C-STORE requests are kept aside for the caller
    instead of queued (see :class:`~pacs.dimse.pdata.PDataReader`).
    """

    def __init__(self, assoc: Association | None = None) -> None:
        super().__init__(assoc)
        self.arrived = threading.Event()
        self._claimed: list[tuple[int, C_STORE]] | None = None

    @contextlib.contextmanager
    def claiming(self) -> Iterator[list[tuple[int, C_STORE]]]:
        """Keep the C-STORE requests put meanwhile (by this thread) in the yielded list."""
        claimed: list[tuple[int, C_STORE]] = []
        self._claimed = claimed
        try:
            yield claimed
        finally:
            self._claimed = None

    def _put(self, item: Any) -> None:
        _, primitive = item
        if (
            self._claimed is not None
            and isinstance(primitive, C_STORE)
            and primitive.is_valid_request
        ):
            self._claimed.append(item)
            return
        super()._put(item)
        self.arrived.set()


class _NotifyingQueue(queue.Queue[Any]):
    """The DUL's queue of ACSE primitives for the association, setting its ``arrived`` too."""

    def __init__(self, arrived: threading.Event) -> None:
        super().__init__()
        self.arrived = arrived

    def _put(self, item: Any) -> None:
        super()._put(item)
        self.arrived.set()


class _ProviderQueue(queue.Queue[Any]):
    """The DUL's outgoing primitive queue, writing to a pipe the DUL selects on."""

    def __init__(self, wake_fd: int) -> None:
        super().__init__()
        self.wake_fd = wake_fd

    def _put(self, item: Any) -> None:
        super()._put(item)
        # A full pipe already holds a wake-up; a closed one has no DUL left to wake.
        with contextlib.suppress(OSError):
            os.write(self.wake_fd, b"\0")


class BulkReceiveSocket(AssociationSocket):
    """pynetdicom's association socket, reading a PDU in as few ``recv`` calls as it can.

    Bytes pushed back (a PDU header :class:`~pacs.dimse.pdata.PDataReader`
    read and leaves to pynetdicom) are returned first.
    """

    _pushed_back = b""
    read_timeout: float | None = None  # ARTIM for each read, on the connections we accept
    _expired = False

    def refuse_reads(self) -> None:
        """Read nothing more from this peer: every later read sees a closed connection."""
        self._pushed_back = b""
        self._expired = True

    def push_back(self, data: bytes | bytearray) -> None:
        self._pushed_back = bytes(data) + self._pushed_back

    def recv(self, nr_bytes: int) -> bytearray:
        """``nr_bytes`` from the peer; fewer only if the connection closed (as pynetdicom's).

        The buffer grows as bytes arrive, at most 1 MiB at a time: a declared
        length is the peer's word, not memory to set aside for it.
        """
        buffer = bytearray(self._pushed_back[:nr_bytes])
        self._pushed_back = self._pushed_back[nr_bytes:]
        while len(buffer) < nr_bytes:
            got = len(buffer)
            buffer.extend(bytes(min(nr_bytes - got, 1 << 20)))
            with memoryview(buffer) as view:
                got += self._recv_into(view[got:])
            if got < len(buffer):
                del buffer[got:]
                break
        return buffer

    def recv_exactly(self, view: memoryview) -> bool:
        """Fill ``view`` from the peer; ``False`` if the connection closed first."""
        got = 0
        if self._pushed_back:
            got = min(len(view), len(self._pushed_back))
            view[:got] = self._pushed_back[:got]
            self._pushed_back = self._pushed_back[got:]
        if got < len(view):
            got += self._recv_into(view[got:])
        return got == len(view)

    def _recv_into(self, view: memoryview) -> int:
        """Read until ``view`` is full or the peer closes; the count read.

        With a :attr:`read_timeout` (ARTIM, see :mod:`pacs.dimse.slots`), a read
        that has not completed in that time counts as a closed connection, and so
        does every later one: a peer that starts a PDU and stops cannot hold the
        thread (and its association slot).
        """
        sock = self.socket
        assert sock is not None
        got = 0
        if self._expired:
            return got
        deadline = None if self.read_timeout is None else time.monotonic() + self.read_timeout
        previous = sock.gettimeout()
        try:
            while got < len(view):
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError
                    sock.settimeout(remaining)
                count = sock.recv_into(view[got:])
                _ack_at_once(sock)
                if not count:
                    break
                got += count
        except TimeoutError:
            log.warning(
                "DICOM peer %s sent %d of %d bytes in %.1f s (ARTIM): connection closed",
                _peer(sock),
                got,
                len(view),
                self.read_timeout,
            )
            self._expired = True
        finally:
            if deadline is not None:
                with contextlib.suppress(OSError):
                    sock.settimeout(previous)
        return got


def _peer(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername()[0])
    except (OSError, IndexError):
        return "?"


def _ack_at_once(sock: socket.socket) -> None:
    """Acknowledge what was just read now, not after Linux's delayed-ACK timer (~40 ms).

    A peer that keeps Nagle's algorithm on (DCMTK unless ``TCP_NODELAY=1``, many
    modalities) writes a PDU header and its body as two small segments and holds
    the second until the first is acknowledged; we send nothing else meanwhile
    (we wait for that very PDU), so the acknowledgement waited for the timer:
    40 ms per C-STORE response of a C-MOVE to a DCMTK storescp. ``TCP_QUICKACK``
    lasts until the kernel falls back to delayed ACKs, so it is set after each read.
    """
    if _QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


def make_event_driven(assoc: Association) -> None:
    """Give an association the socket and queues the waits need.

    For one we accept: before it starts. For one we request (a C-MOVE
    sub-association): on ``EVT_CONN_OPEN``, which its DUL thread runs while
    nothing else uses the queues; what they hold moves to the new ones.
    """
    dul = assoc.dul
    if type(dul.socket) is AssociationSocket:
        # pynetdicom built it (and queued its connection event); only the reads change.
        dul.socket.__class__ = BulkReceiveSocket
    if isinstance(dul.socket, BulkReceiveSocket):
        dul._read_pdu_data = PDataReader(dul, dul._read_pdu_data)  # type: ignore[method-assign]
    messages = _MessageQueue(assoc)
    assoc._reactor_checkpoint = _Checkpoint(messages.arrived)
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    weakref.finalize(dul, _close_pipe, read_fd, write_fd)
    dul.to_provider_queue = _moved(dul.to_provider_queue, _ProviderQueue(write_fd))
    dul._wake_fd = read_fd  # type: ignore[attr-defined]
    dul.to_user_queue = _moved(dul.to_user_queue, _NotifyingQueue(messages.arrived))
    assoc.dimse.msg_queue = _moved(assoc.dimse.msg_queue, messages)


class _Checkpoint(threading.Event):
    """``Association._reactor_checkpoint``, for a reactor that waits on ``arrived``.

    A thread about to send a request on the association clears it and spins
    until the reactor is paused; clearing it also wakes the reactor's idle wait,
    so the reactor pauses at once instead of after :data:`ASSOCIATION_IDLE_WAIT_S`
    (per C-STORE of a C-MOVE, whose sender is another thread).

    ``wait`` returns only while the checkpoint is set: ``threading.Event.wait``
    returns true for a notification even when the flag was cleared again before
    the waiter ran, which let a reactor resume while the next sender believed
    it paused (see :mod:`pacs.dimse.responses`).
    """

    def __init__(self, wake: threading.Event) -> None:
        super().__init__()
        self.wake = wake
        self.set()

    def clear(self) -> None:
        super().clear()
        self.wake.set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            super().wait(remaining)
        return True


def _moved(old: queue.Queue[Any], new: _Q) -> _Q:
    with old.mutex:
        for item in old.queue:
            new.put(item)
        old.queue.clear()
    return new


def _close_pipe(read_fd: int, write_fd: int) -> None:
    for fd in (read_fd, write_fd):
        with contextlib.suppress(OSError):
            os.close(fd)


def _dul_wait(dul: DULServiceProvider, seconds: float) -> None:
    """Wait until the peer sends data, a primitive is queued, or ``seconds`` pass."""
    wake_fd: int | None = getattr(dul, "_wake_fd", None)
    transport = dul.socket.socket if dul.socket is not None else None
    if wake_fd is None or transport is None or transport.fileno() < 0:
        time.sleep(seconds)
        return
    if isinstance(transport, ssl.SSLSocket) and transport.pending():
        return  # decrypted bytes already buffered: select cannot see them
    try:
        ready, _, _ = select.select([transport.fileno(), wake_fd], [], [], seconds)
    except (OSError, ValueError):  # closed under us: let the reactor notice
        time.sleep(seconds)
        return
    if wake_fd in ready:
        with contextlib.suppress(OSError):
            os.read(wake_fd, 4096)


def _association_wait(assoc: Association, seconds: float) -> None:
    """Wait until a DIMSE message or an ACSE primitive is queued for this association.

    With nothing queued the wait lasts at least :data:`ASSOCIATION_IDLE_WAIT_S`
    instead of pynetdicom's 1 ms: C-STOREs are served by the DUL thread (see
    :class:`~pacs.dimse.pdata.PDataReader`), and a thousand idle turns a second
    per association were a twentieth of a core each. What the turn looks for
    (a DIMSE request, a release or abort from the peer) sets ``arrived``; the
    idle timer and a kill are noticed within that bound.
    """
    messages = assoc.dimse.msg_queue
    if not isinstance(messages, _MessageQueue):
        time.sleep(seconds)
        return
    messages.arrived.clear()
    if (
        messages.empty()
        and assoc.dul.to_user_queue.empty()
        and assoc._reactor_checkpoint.is_set()  # else a sender waits for us to pause
    ):
        messages.arrived.wait(max(seconds, ASSOCIATION_IDLE_WAIT_S))
    else:
        time.sleep(seconds)  # a message is waiting: the reactor's own turn takes it


class _ReactorClock:
    """``time`` for pynetdicom's DUL and association modules, with work-aware sleeps."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        """The DUL loop's and the association loop's sleeps wait for work; others sleep.

        Only the association loop's own turn may wait on its queue: an association
        thread also sleeps elsewhere in that module, for instance spinning until
        another association's reactor pauses (a C-MOVE handler sending C-STOREs on
        its sub-association), where waiting for its own queue would cost up to
        :data:`ASSOCIATION_IDLE_WAIT_S` per C-STORE.
        """
        thread = threading.current_thread()
        if isinstance(thread, DULServiceProvider):
            _dul_wait(thread, seconds)
        elif isinstance(thread, Association) and sys._getframe(1).f_code is _REACTOR_LOOP:
            _association_wait(thread, seconds)
        else:
            time.sleep(seconds)


def install() -> None:
    """Route the sleeps of pynetdicom's reactor modules through :class:`_ReactorClock`."""
    clock = _ReactorClock()
    pynetdicom.dul.time = clock  # type: ignore[assignment]
    pynetdicom.association.time = clock  # type: ignore[assignment]


def uninstall() -> None:
    """Give pynetdicom's reactor modules the plain ``time`` module back."""
    pynetdicom.dul.time = time
    pynetdicom.association.time = time
