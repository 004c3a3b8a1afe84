"""Who may hold the DICOM port's association slots, and how long a silent connection may.

Before this, 45 connections that each sent 10 bytes of an A-ASSOCIATE-RQ held
every slot for as long as they liked (the DUL thread blocked reading a PDU that
never completed), and 40 idle associations from anyone kept everyone else out.
Four rules close that:

- **ARTIM** (PS3.8 9.1.5): a connection must send its A-ASSOCIATE-RQ within
  ``dicom_artim_timeout`` (pynetdicom's ARTIM timer, which it calls the ACSE
  timeout), and every PDU it starts must arrive whole within that time (see
  :class:`~pacs.dimse.reactor.BulkReceiveSocket`); otherwise it is closed.
  An unrecognised PDU type before association is answered with an A-ABORT and the
  connection closed at once (:class:`GarbageGuard`), as soon as its first byte shows it.
- **Per address**: one peer address holds at most
  ``dicom_max_associations_per_address`` connections per process; more are
  closed as soon as they are accepted.
- **Connections**: a process holds at most :data:`CONNECTIONS_PER_SLOT` x
  ``max_associations`` connections, established or not; the last
  :data:`CONNECTIONS_PER_SLOT` x ``dicom_reserved_associations`` of them only
  from the address of a registered peer (the title is not known before the
  A-ASSOCIATE-RQ; it is checked against the same registration then). Beyond
  that a connection is closed as soon as it is accepted. pynetdicom counted
  every accepted connection against its own limit and refused the association
  of whoever came next with "local limit exceeded": with 200 hostile
  connections open (half PDUs and rejected requests wait out ARTIM), a
  registered modality was refused.
- **Reserved slots**: of ``max_associations`` established associations, the
  last ``dicom_reserved_associations`` go only to registered peers (title
  proven by address, as :meth:`pacs.config.service.RemoteAEs.admit` says);
  others are rejected, transiently, with "local limit exceeded".

Idle established associations end after ``network_timeout``, as before.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.events import Event

from pacs.archive import Archive
from pacs.archive.errors import Unavailable
from pacs.dimse.identity import caller_of
from pacs.dimse.pdata import LARGEST_BUFFERED_PDU

log = logging.getLogger(__name__)

# A-ASSOCIATE-RJ: rejected-transient, service provider (presentation), local limit exceeded.
REJECT_BUSY = (0x02, 0x03, 0x02)
# pynetdicom counts every accepted connection, even one that has not yet sent its
# A-ASSOCIATE-RQ, against its own limit; that count is bounded by the rules above.
CONNECTIONS_PER_SLOT = 4
PDU_TYPES = range(0x01, 0x08)  # A-ASSOCIATE-RQ .. A-ABORT (PS3.8 9.3.1)
# Idle (the accepted connection's Evt5 may still be queued) or transport open: no
# A-ASSOCIATE-RQ yet.
AWAITING_REQUEST = ("Sta1", "Sta2")
AWAITING_CLOSE = "Sta13"
DRAIN_BYTES = 64 * 1024


class GarbageGuard:
    """The DUL's PDU read, refusing a connection whose first byte is no PDU type.

    pynetdicom reads the 6-byte PDU header whole before it looks at the type:
    ``GET `` (an HTTP client, a port scanner) is 4 bytes of PDU type 0x47, and the
    read waited for the 2 missing bytes for the whole ARTIM. PS3.8 9.3.1 says an
    unrecognised PDU is answered with an A-ABORT (state machine AA-1); the guard
    looks at the first byte (``MSG_PEEK``) while the association is not yet
    requested, drops what the peer sent (at most :data:`DRAIN_BYTES`) and
    reports the invalid PDU, so the state machine sends the A-ABORT at once; any
    further byte from that peer closes the connection instead of being read.
    Only before association: afterwards the peer has spoken DICOM, and the peek
    would cost a system call per PDU. A TLS socket cannot peek and is left alone.
    """

    def __init__(self, dul: DULServiceProvider, read: Callable[[], None]) -> None:
        self.dul = dul
        self.read = read
        self.refused = False

    def __call__(self) -> None:
        dul = self.dul
        state = dul.state_machine.current_state
        if self.refused and state == AWAITING_CLOSE and dul.socket is not None:
            dul.socket.close()  # what pynetdicom does in Sta13 once nothing is left to read
            return
        if state in AWAITING_REQUEST and self._unrecognised():
            self.refused = True
            dul.event_queue.put("Evt19")  # unrecognised or invalid PDU: AA-1
            # The association thread waits for the A-ASSOCIATE-RQ (ARTIM); nothing will
            # come: no primitive is its "timed out", and it ends once the DUL has closed.
            dul.to_user_queue.put(None)
            return
        self.read()

    def _unrecognised(self) -> bool:
        raw = getattr(self.dul.socket, "socket", None)
        if raw is None or isinstance(raw, ssl.SSLSocket):
            return False
        try:
            first = raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            return False  # nothing there or closed: pynetdicom's read says which
        if not first or first[0] in PDU_TYPES:
            return False
        with contextlib.suppress(OSError):
            raw.recv(DRAIN_BYTES, socket.MSG_DONTWAIT)
        log.warning(
            "DICOM peer %s sent no PDU (first byte %#04x): A-ABORT, connection closed",
            _peer(raw),
            first[0],
        )
        return True


class BoundedReads:
    """Stock pynetdicom's socket reads, refusing a PDU longer than any we accept.

    pynetdicom reads a PDU's body whole, as long as its header declares (up to 4
    GiB), before it looks at it; the fast path refuses such a PDU where it reads the
    header (:meth:`pacs.dimse.pdata.PDataReader._longest`). Here the read of a body
    longer than our announced maximum (at least
    :data:`~pacs.dimse.pdata.LARGEST_BUFFERED_PDU`) reports an invalid PDU (A-ABORT,
    PS3.8 9.3.1) and reads nothing: pynetdicom sees a short PDU and the connection
    closes.
    """

    def __init__(self, dul: DULServiceProvider, recv: Callable[[int], bytearray]) -> None:
        self.dul = dul
        self.recv = recv

    def __call__(self, nr_bytes: int) -> bytearray:
        announced = int(self.dul.assoc.acceptor.maximum_length or 0)
        if not announced or nr_bytes <= max(announced, LARGEST_BUFFERED_PDU):
            return self.recv(nr_bytes)
        log.warning("DICOM peer declared a PDU of %d bytes: A-ABORT, connection closed", nr_bytes)
        self.dul.event_queue.put("Evt19")
        if self.dul.state_machine.current_state in AWAITING_REQUEST:
            self.dul.to_user_queue.put(None)  # the association thread ends (see GarbageGuard)
        return bytearray()


@dataclass(frozen=True)
class SlotPolicy:
    archive: Archive
    total: int
    reserved: int
    per_address: int
    artim: float
    # Accepted connections whose association thread has not started yet, by address:
    # a burst is accepted faster than those threads start, and they count already.
    _pending: Counter[str] = field(default_factory=Counter, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @classmethod
    def of(cls, archive: Archive) -> SlotPolicy:
        settings = archive.settings
        return cls(
            archive,
            total=settings.max_associations,
            reserved=min(settings.dicom_reserved_associations, settings.max_associations),
            per_address=settings.dicom_max_associations_per_address,
            artim=settings.dicom_artim_timeout,
        )

    @property
    def connections(self) -> int:
        """Connections one process holds at most, established or not."""
        return self.total * CONNECTIONS_PER_SLOT

    @property
    def reserved_connections(self) -> int:
        """Of :attr:`connections`, those kept for the addresses of registered peers."""
        return self.reserved * CONNECTIONS_PER_SLOT

    def admits_connection(self, ae: AE, host: str) -> bool:
        """Whether a new connection from ``host`` may be served (else close it at once).

        Admitted, it counts as pending until its association thread runs (:meth:`starting`).
        """
        with self._lock:
            held = Counter(_host(a) for a in ae.active_associations if a.is_acceptor)
            held.update(self._pending)
            in_use = sum(held.values())
            why = None
            if held[host] >= self.per_address:
                why = f"it already holds {held[host]}"
            elif in_use >= self.connections:
                why = f"all {self.connections} connections in use"
            elif in_use >= self.connections - self.reserved_connections and not (
                self._registered_address(host)
            ):
                why = (
                    f"{in_use} of {self.connections} connections in use, the last"
                    f" {self.reserved_connections} kept for registered peers"
                )
            if why is None:
                self._pending[host] += 1
                return True
        log.warning("DICOM connection from %s closed: %s", host, why)
        return False

    @contextlib.contextmanager
    def starting(self, host: str) -> Iterator[None]:
        """While the association thread of a connection from ``host`` starts; then it counts.

        The count and the hand-over are one step: counted both as pending and as a
        running association, a burst from one address was refused below its share.
        """
        with self._lock:
            try:
                yield
            finally:
                self._drop(host)

    def abandon(self, host: str) -> None:
        """An admitted connection from ``host`` got no handler (its thread did not start)."""
        with self._lock:
            self._drop(host)

    def _drop(self, host: str) -> None:
        self._pending[host] -= 1
        if self._pending[host] <= 0:
            del self._pending[host]

    def _registered_address(self, host: str) -> bool:
        with contextlib.suppress(Unavailable):
            return self.archive.remote_aes.registered_address(host)
        return False

    def prepare(self, assoc: Association) -> None:
        """ARTIM for a connection just accepted: to send its A-ASSOCIATE-RQ, and each PDU."""
        assoc.acse_timeout = self.artim
        dul = assoc.dul
        dul._read_pdu_data = GarbageGuard(dul, dul._read_pdu_data)  # type: ignore[method-assign]
        sock = dul.socket
        if sock is None:
            return
        if hasattr(sock, "read_timeout"):  # the fast path's socket: a deadline per read
            sock.read_timeout = self.artim
        elif sock.socket is not None:
            # Stock pynetdicom reads only once data is waiting, and closes the connection
            # when a read times out: each read is bounded, not the whole PDU.
            sock.socket.settimeout(self.artim)
            sock.recv = BoundedReads(dul, sock.recv)  # type: ignore[method-assign]

    def on_requested(self, event: Event) -> None:
        """EVT_REQUESTED: reject an unregistered caller when only reserved slots are left."""
        assoc = event.assoc
        if assoc.is_rejected or assoc.is_aborted or not assoc.is_acceptor:
            return  # refused already (the admission check)
        established = sum(
            1
            for a in assoc.ae.active_associations
            if a is not assoc and a.is_acceptor and a.is_established
        )
        if established < self.total - self.reserved:
            return
        if established < self.total and self._registered(event):
            return
        caller = caller_of(event)
        reason = f"{established} of {self.total} associations in use" + (
            f", the last {self.reserved} kept for registered peers" if self.reserved else ""
        )
        log.warning(
            "DICOM association refused: %s from %s: %s", caller.ae_title, caller.address, reason
        )
        assoc.acse.send_reject(*REJECT_BUSY)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    def _registered(self, event: Event) -> bool:
        with contextlib.suppress(Unavailable):
            return self.archive.remote_aes.admit(caller_of(event)).peer is not None
        return False


def _host(assoc: Association) -> str | None:
    with contextlib.suppress(AttributeError, TypeError):
        return str(assoc.requestor.address)
    return None


def _peer(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername()[0])
    except (OSError, IndexError):
        return "?"
