"""C-STORE SCU: send stored instances to a remote AE over pooled associations.

An association proposes one presentation context per stored (SOP class,
transfer syntax) pair of what it is about to send, plus native fallbacks, and
each instance goes out from its stored file (:mod:`pacs.routing.sending`, the
code C-MOVE and C-GET use): the stored bytes when the peer accepted the stored
syntax, converted otherwise. Associations are kept open per destination for a
short while (:class:`AssociationPool`), so a stream of per-instance sends or a
destination's next study does not pay for a new association each time.

A failure of the destination itself (refused connection, rejected or aborted
association, no answer) raises :class:`DestinationUnavailable`: the caller
keeps the work and retries later. A status refusing one instance is that
instance's failure, counted in the :class:`Delivery`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import Event

from pacs.routing.sending import contexts_for, send_from_files, stored_file

if TYPE_CHECKING:
    from pacs.archive.retrieve import StoredInstance
    from pacs.config import RemoteAE

log = logging.getLogger(__name__)

IDLE_S = 30.0  # an idle pooled association is released after this


class DestinationUnavailable(Exception):
    """The destination cannot take anything now (down, refusing, aborting): retry later."""


@dataclass
class Delivery:
    """What one send achieved: instances the peer took, and those it refused (with why)."""

    sent: int = 0
    failed: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, other: Delivery) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.reasons += other.reasons


Progress = Callable[[int, int], None]  # (sent so far, failed so far)


def without_nagle(event: Event) -> None:
    """Each C-STORE request would otherwise wait ~40 ms for the peer's delayed ACK; and
    every read is followed by :func:`ack_at_once`."""
    sock = event.assoc.dul.socket
    if sock is not None and sock.socket is not None:
        with contextlib.suppress(OSError):
            sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        original = sock.recv

        def recv(nr_bytes: int) -> bytearray:
            data = original(nr_bytes)
            ack_at_once(event)
            return data

        sock.recv = recv  # type: ignore[method-assign]


def ack_at_once(event: Event) -> None:
    """Acknowledge the peer's next segment at once, not after the delayed-ACK timer.

    A peer with Nagle on (DCMTK without ``TCP_NODELAY=1``, many PACS) writes a
    C-STORE response as two small segments and holds the second until the
    first is acknowledged; we have nothing to send meanwhile, so Linux waited
    ~40 ms per instance (17 instead of 113 instances/s to storescp here).
    ``TCP_QUICKACK`` does not stick, so it is set again after each PDU.
    """
    sock = event.assoc.dul.socket
    if _QUICKACK is not None and sock is not None and sock.socket is not None:
        with contextlib.suppress(OSError):
            sock.socket.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
HANDLERS: list[Any] = [
    (evt.EVT_CONN_OPEN, without_nagle),
    (evt.EVT_PDU_SENT, ack_at_once),
    (evt.EVT_PDU_RECV, ack_at_once),
]


@dataclass
class _Pooled:
    assoc: Association
    ae: AE
    peer: tuple[str, str, int]
    pairs: frozenset[tuple[str, str]]  # (class, syntax) accepted
    idle_since: float


class AssociationPool:
    """Open associations per destination, each used by one sender at a time."""

    def __init__(self, calling_ae: str, *, timeout: float = 30.0, max_pdu: int = 0) -> None:
        self.calling_ae = calling_ae
        self.timeout = timeout
        self.max_pdu = max_pdu
        self._idle: dict[tuple[str, str, int], list[_Pooled]] = {}
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None
        self._closed = threading.Event()

    @contextlib.contextmanager
    def association(
        self,
        peer: RemoteAE,
        instances: Sequence[StoredInstance],
        tls: ssl.SSLContext | None = None,
    ) -> Iterator[Association]:
        """An association to ``peer`` able to carry every class of ``instances``.

        Reuses an idle one that accepted a context for each (class, stored syntax)
        or a native fallback of it; else opens a new one. Given back to the pool
        when the block ends normally, released when it ends with an error.
        """
        key = (peer.ae_title, peer.host, peer.port)
        wanted = {(i.sop_class_uid, i.transfer_syntax_uid) for i in instances}
        pooled = self._take(key, wanted)
        if pooled is None:
            pooled = self._open(peer, instances, tls)
        try:
            yield pooled.assoc
        except BaseException:
            _close(pooled)
            raise
        if pooled.assoc.is_established and not self._closed.is_set():
            pooled.idle_since = time.monotonic()
            with self._lock:
                self._idle.setdefault(key, []).append(pooled)
                if self._reaper is None:
                    self._reaper = threading.Thread(
                        target=self._reap, name="association-pool", daemon=True
                    )
                    self._reaper.start()
        else:
            _close(pooled)

    def _reap(self) -> None:
        """Release associations idle for :data:`IDLE_S` (before the peer's own timeout)."""
        while not self._closed.wait(IDLE_S / 4):
            now = time.monotonic()
            with self._lock:
                stale = [
                    p
                    for pooled in self._idle.values()
                    for p in pooled
                    if now - p.idle_since > IDLE_S or not p.assoc.is_established
                ]
                for key in self._idle:
                    self._idle[key] = [p for p in self._idle[key] if p not in stale]
            for pooled in stale:
                _close(pooled)

    def _take(self, key: tuple[str, str, int], wanted: set[tuple[str, str]]) -> _Pooled | None:
        now = time.monotonic()
        stale: list[_Pooled] = []
        found = None
        with self._lock:
            for pooled in list(self._idle.get(key, [])):
                if not pooled.assoc.is_established or now - pooled.idle_since > IDLE_S:
                    self._idle[key].remove(pooled)
                    stale.append(pooled)
                elif found is None and _carries(pooled.pairs, wanted):
                    self._idle[key].remove(pooled)
                    found = pooled
        for pooled in stale:
            _close(pooled)
        return found

    def _open(
        self, peer: RemoteAE, instances: Sequence[StoredInstance], tls: ssl.SSLContext | None
    ) -> _Pooled:
        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = self.timeout
        ae.network_timeout = IDLE_S * 2  # the pool releases an idle association before
        ae.connection_timeout = min(self.timeout, 10.0)
        ae.maximum_pdu_size = self.max_pdu
        ae.requested_contexts = contexts_for(instances)
        tls_args = (tls, peer.host) if tls is not None else None
        try:
            assoc = ae.associate(
                peer.host,
                peer.port,
                ae_title=peer.ae_title,
                tls_args=tls_args,
                evt_handlers=HANDLERS,
            )
        except (OSError, ssl.SSLError) as exc:
            ae.shutdown()
            raise DestinationUnavailable(f"{peer.ae_title}: {exc}") from exc
        if not assoc.is_established:
            ae.shutdown()
            if assoc.is_rejected and assoc.acceptor.primitive is not None:
                why = f"association rejected: {assoc.acceptor.primitive.reason_str}"
            else:
                why = f"no association with {peer.host}:{peer.port} (down or not DICOM)"
            raise DestinationUnavailable(f"{peer.ae_title}: {why}")
        pairs = frozenset(
            (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
            for cx in assoc.accepted_contexts
            if cx.as_scu
        )
        return _Pooled(assoc, ae, (peer.ae_title, peer.host, peer.port), pairs, time.monotonic())

    def close(self) -> None:
        """Release every idle association (at shutdown)."""
        self._closed.set()
        with self._lock:
            everything = [p for pooled in self._idle.values() for p in pooled]
            self._idle.clear()
        for pooled in everything:
            _close(pooled)


def _carries(accepted: frozenset[tuple[str, str]], wanted: set[tuple[str, str]]) -> bool:
    """Every wanted pair goes as stored, or converted to a native syntax the peer took."""
    native = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
    return all(
        pair in accepted or any((pair[0], syntax) in accepted for syntax in native)
        for pair in wanted
    )


def _close(pooled: _Pooled) -> None:
    with contextlib.suppress(Exception):
        if pooled.assoc.is_established:
            pooled.assoc.release()
    pooled.ae.shutdown()


class StoreSCU:
    """Sends instances to remote AEs through one :class:`AssociationPool`."""

    def __init__(
        self,
        pool: AssociationPool,
        open_blob: Callable[[str], BinaryIO],
        spool_dir: Path,
        convert_max_bytes: int,
    ) -> None:
        self.pool = pool
        self.open_blob = open_blob
        self.spool_dir = spool_dir
        self.convert_max_bytes = convert_max_bytes

    def send(
        self,
        peer: RemoteAE,
        instances: Sequence[StoredInstance],
        *,
        associations: int = 1,
        tls: ssl.SSLContext | None = None,
        progress: Progress | None = None,
    ) -> Delivery:
        """Send ``instances`` over up to ``associations`` associations at once.

        Raises :class:`DestinationUnavailable` when the destination failed
        (whatever was delivered before stays delivered: a resend is a duplicate
        the peer accepts).
        """
        parts = max(1, min(associations, len(instances)))
        if parts == 1:
            return self._send_one(peer, instances, tls, progress)
        chunks = [list(instances[n::parts]) for n in range(parts)]
        results: list[Delivery | BaseException] = [Delivery() for _ in chunks]
        counted = _Counter(progress)

        def run(index: int) -> None:
            try:
                results[index] = self._send_one(peer, chunks[index], tls, counted)
            except BaseException as exc:
                results[index] = exc

        threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(parts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = Delivery()
        for result in results:
            if isinstance(result, BaseException):
                raise result
            total.add(result)
        return total

    def _send_one(
        self,
        peer: RemoteAE,
        instances: Sequence[StoredInstance],
        tls: ssl.SSLContext | None,
        progress: Progress | None,
    ) -> Delivery:
        delivery = Delivery()
        if not instances:
            return delivery
        with self.pool.association(peer, instances, tls) as assoc:
            send_from_files(assoc, self.convert_max_bytes)
            for instance in instances:
                self._store(assoc, peer, instance, delivery)
                if progress is not None:
                    progress(delivery.sent, len(delivery.failed))
        return delivery

    def _store(
        self, assoc: Association, peer: RemoteAE, instance: StoredInstance, delivery: Delivery
    ) -> None:
        uid = instance.sop_instance_uid
        with stored_file(self.open_blob, self.spool_dir, instance) as item:
            if item is None:
                delivery.failed.append(uid)
                delivery.reasons.append(f"{uid}: stored blob unreadable")
                return
            try:
                answer = assoc.send_c_store(item)
            except ValueError as exc:  # no syntax the peer took that we can convert to
                delivery.failed.append(uid)
                delivery.reasons.append(f"{uid}: {exc}")
                return
            except (RuntimeError, OSError) as exc:
                raise DestinationUnavailable(f"{peer.ae_title}: {exc}") from exc
        status = _status(answer)
        if status is None:
            raise DestinationUnavailable(
                f"{peer.ae_title}: no C-STORE response (association aborted or timed out)"
            )
        if status == 0 or 0xB000 <= status <= 0xBFFF:
            delivery.sent += 1
        else:
            delivery.failed.append(uid)
            delivery.reasons.append(f"{uid}: C-STORE status 0x{status:04X}")


class _Counter:
    """Sums per-association progress into one callback (several threads report)."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self._lock = threading.Lock()
        self._by_thread: dict[int, tuple[int, int]] = {}

    def __call__(self, sent: int, failed: int) -> None:
        if self.progress is None:
            return
        with self._lock:
            self._by_thread[threading.get_ident()] = (sent, failed)
            total_sent = sum(s for s, _ in self._by_thread.values())
            total_failed = sum(f for _, f in self._by_thread.values())
        self.progress(total_sent, total_failed)


def _status(answer: Any) -> int | None:
    try:
        return int(answer.Status) if answer is not None and "Status" in answer else None
    except (TypeError, ValueError):
        return None
