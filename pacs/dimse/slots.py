"""Who may hold the DICOM port's association slots, and how long a silent connection may.

Before this, 45 connections that each sent 10 bytes of an A-ASSOCIATE-RQ held
every slot for as long as they liked (the DUL thread blocked reading a PDU that
never completed), and 40 idle associations from anyone kept everyone else out.
Three rules close that:

- **ARTIM** (PS3.8 9.1.5): a connection must send its A-ASSOCIATE-RQ within
  ``dicom_artim_timeout`` (pynetdicom's ARTIM timer, which it calls the ACSE
  timeout), and every PDU it starts must arrive whole within that time (see
  :class:`~pacs.dimse.reactor.BulkReceiveSocket`); otherwise it is closed.
  An unrecognised PDU before association is answered with an A-ABORT and the
  connection closed (pynetdicom's state machine, AA-1, then ARTIM).
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
from dataclasses import dataclass

from pynetdicom import AE, evt
from pynetdicom.association import Association
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
        sock = assoc.dul.socket
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
