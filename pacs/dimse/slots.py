"""Who may hold the DICOM port's association slots, and how long a silent connection may.

Before this, 45 connections that each sent 10 bytes of an A-ASSOCIATE-RQ held
every slot for as long as they liked (the DUL thread blocked reading a PDU that
never completed), and 40 idle associations from anyone kept everyone else out.
Three rules close that:

- **ARTIM** (PS3.8 9.1.5): a connection must send its A-ASSOCIATE-RQ within
  ``dicom_artim_timeout`` (pynetdicom's ARTIM timer, which it calls the ACSE
  timeout), and every PDU it starts must arrive whole within that time (see
  :class:`~pacs.dimse.reactor.BulkReceiveSocket`); otherwise it is closed.
  An unrecognised PDU type before association is answered with an A-ABORT and the
  connection closed at once (:class:`GarbageGuard`), as soon as its first byte shows it.
- **Per address**: one peer address holds at most
  ``dicom_max_associations_per_address`` connections per process; more are
  closed as soon as they are accepted.
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
from collections.abc import Callable
from dataclasses import dataclass

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.events import Event

from pacs.archive import Archive
from pacs.archive.errors import Unavailable
from pacs.dimse.identity import caller_of

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


@dataclass(frozen=True)
class SlotPolicy:
    archive: Archive
    total: int
    reserved: int
    per_address: int
    artim: float

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

    def admits_connection(self, ae: AE, host: str) -> bool:
        """Whether a new connection from ``host`` may be served (else close it at once)."""
        held = sum(1 for a in ae.active_associations if a.is_acceptor and _host(a) == host)
        if held < self.per_address:
            return True
        log.warning("DICOM connection from %s closed: it already holds %d", host, held)
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
