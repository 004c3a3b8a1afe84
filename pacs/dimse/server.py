"""The DIMSE server: presentation contexts, limits, and sockets without Nagle.

Nagle's algorithm holds each small C-STORE response until the peer's delayed
ACK arrives (~40 ms), which costs about 5x in ingest throughput with peers that
do not disable it themselves; every accepted socket gets TCP_NODELAY.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import ssl
import threading
import time
from typing import Any, cast

from pydicom.uid import (
    UID,
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from pacs.archive import Archive
from pacs.dimse import fastpath, proxy_protocol, reactor, responses, spool
from pacs.dimse.commitment import COMMITMENT_CLASSES, make_commitment_handler
from pacs.dimse.find import FIND_MODELS, make_find_handler, negotiate_find_extended
from pacs.dimse.get import make_get_handler
from pacs.dimse.identity import make_admission_handler
from pacs.dimse.move import make_move_handler
from pacs.dimse.mpps import MPPS_CLASSES, make_mpps_handlers
from pacs.dimse.registry import ServiceRegistry
from pacs.dimse.slots import CONNECTIONS_PER_SLOT, SlotPolicy
from pacs.dimse.storage_classes import storage_sop_classes
from pacs.dimse.store import StoreService
from pacs.dimse.store_audit import StoreAudit
from pacs.dimse.store_response import send_store_responses_directly
from pacs.dimse.worklist import WORKLIST_MODELS, make_worklist_handler
from pacs.metrics import instruments
from pacs.settings import Settings

log = logging.getLogger(__name__)

# Spool each received dataset to a temporary file instead of memory, so a
# multi-GB object or many parallel associations cannot exhaust RAM.
_config.STORE_RECV_CHUNKED_DATASET = True
# Identifiers are patient data; keep them out of the debug log.
_config.LOG_REQUEST_IDENTIFIERS = False
responses.install()  # a correction, not a fast path: always on

Handler = Any  # (event, handler) as pynetdicom takes them


# Per association at work in the process (established), at most 10 of them: counted
# by open connections, 100 hostile ones held for ARTIM made every accept wait 0.3 s,
# a burst of 200 took 15 s to accept, and a registered modality's connection waited
# behind them in the backlog.
ACCEPT_DELAY_PER_ASSOCIATION_S = 0.003
ACCEPT_DELAY_MAX_S = 0.03
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class EventDrivenRequestHandler(RequestHandler):
    """Accepted associations whose reactors wake on work, not on a 1 ms poll (see reactor).

    They also encode their C-STORE responses directly (see store_response).
    With the fast path off (see :mod:`pacs.dimse.fastpath`) they are pynetdicom's own.
    """

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        if fastpath.active():
            reactor.make_event_driven(assoc)
            send_store_responses_directly(assoc)
        slots: SlotPolicy | None = getattr(self.server, "slots", None)
        if slots is not None:
            slots.prepare(assoc)
        return assoc

    def handle(self) -> None:
        slots: SlotPolicy | None = getattr(self.server, "slots", None)
        if slots is None:
            super().handle()
            return
        with slots.starting(str(self.client_address[0])):
            super().handle()  # starts the association thread, which counts itself


class SharedContexts(list[PresentationContext]):
    """The server's supported presentation contexts, handed to each association uncopied.

    pynetdicom deep-copies them for every connection it accepts, before anything
    is read from it: our 199 abstract syntaxes with their transfer syntaxes are
    7,411 UIDs, each validated again as it is copied, 145 ms of CPU and 1.3 MB
    per connection. 200 hostile connections cost 29 s of CPU spent before the
    next connection was looked at (a registered modality's C-ECHO waited 11-20
    s behind them) and +90-120 MB in each DIMSE process while they were open.
    Negotiation only reads them (``negotiate_as_acceptor`` builds new contexts
    for its answer), so every association can share the one list.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedContexts:
        return self


class NoDelayAssociationServer(ThreadedAssociationServer):
    """pynetdicom's threaded server: TCP_NODELAY on every accepted socket, event-driven reactors.

    ``listen_fd`` adopts a listening socket another process opened (a DIMSE
    worker, see :mod:`pacs.dimse.workers`) instead of binding one.
    """

    # socketserver's default backlog is 5: a burst of connections (a modality's
    # parallel senders, or 200 hostile ones) overflowed the accept queue, their SYNs
    # were dropped and retried for seconds, so they were accepted late and their
    # ARTIM clock started late. The kernel caps this at net.core.somaxconn.
    request_queue_size = 1024

    def __init__(self, *args: Any, listen_fd: int | None = None, **kwargs: Any) -> None:
        self._listen_fd = listen_fd
        self.slots: SlotPolicy | None = None  # set by DimseServer (see pacs.dimse.slots)
        # Set by DimseServer: the load balancers that begin each connection with a PROXY
        # line (see pacs.dimse.proxy_protocol); never on the TLS port.
        self.proxy_from: list[str] = []
        self.shared = listen_fd is not None  # set too by DimseServer.share_listeners
        kwargs.setdefault("request_handler", EventDrivenRequestHandler)
        super().__init__(*args, **kwargs)
        self.contexts = SharedContexts(self.contexts)

    def server_bind(self) -> None:
        if self._listen_fd is None:
            super().server_bind()
            return
        if self.socket is not None:
            self.socket.close()  # the one TCPServer made, unbound
        self.socket = socket.socket(fileno=self._listen_fd)
        self.socket.setblocking(False)  # see DimseServer.share_listeners
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        if self._listen_fd is None:
            super().server_activate()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        if self.shared:
            # Every process sharing the port woke for this connection: a busy one
            # waits a little, so that an idler one takes it.
            working = sum(
                1 for a in self.ae.active_associations if a.is_acceptor and a.is_established
            )
            time.sleep(min(ACCEPT_DELAY_MAX_S, ACCEPT_DELAY_PER_ASSOCIATION_S * working))
        client, address = super().get_request()
        set_nodelay(client)
        if self.proxy_from and proxy_protocol.from_balancer(str(address[0]), self.proxy_from):
            try:
                address = proxy_protocol.read_source(client, address)
            except OSError as exc:  # socketserver drops a request whose accept failed
                log.warning("DICOM connection from %s closed: %s", address[0], exc)
                client.close()
                raise
        return client, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Close a connection beyond its address's share or the process's (see slots)."""
        if self.slots is None:
            return True
        return self.slots.admits_connection(self.ae, str(client_address[0]))

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:
            if self.slots is not None:  # no handler will say it started
                self.slots.abandon(str(client_address[0]))
            raise


def set_nodelay(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def quick_ack(event: Any) -> None:
    """EVT_DATA_SENT / EVT_DATA_RECV on the stock path: acknowledge the peer's segments at once.

    A peer that keeps Nagle's algorithm on (DCMTK's storescp unless
    ``TCP_NODELAY=1``, many modalities) writes a PDU's header and body as two
    segments and holds the second until the first is acknowledged; Linux delays
    that acknowledgement by up to 40 ms while we send nothing (we wait for that
    very PDU). Every C-STORE of a C-MOVE to storescp paid it: about 50 ms per
    instance on stock pynetdicom, 10 times the fast path, which leaves the
    delayed-ACK mode inside its own reads (:func:`pacs.dimse.reactor._ack_at_once`).
    Set after each send and each PDU read, ``TCP_QUICKACK`` keeps the kernel
    out of that mode (sending data shortly after receiving is what re-enters it).
    """
    sock = event.assoc.dul.socket
    raw = getattr(sock, "socket", None)
    if QUICKACK is not None and raw is not None:
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)


def stock_path_handlers() -> list[Handler]:
    """What every association needs when pynetdicom's own receive path serves it."""
    if fastpath.active():
        return []
    return [(evt.EVT_DATA_SENT, quick_ack), (evt.EVT_DATA_RECV, quick_ack)]


# Lossless compressions: accepting one of these never costs image quality.
LOSSLESS_COMPRESSED = (
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.92",  # JPEG 2000 Part 2 lossless
    "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K RPCL lossless
    "1.2.840.10008.1.2.5",  # RLE lossless
)


def _storage_syntaxes() -> list[UID]:
    """Every syntax, in the order we prefer when a sender offers several for one context.

    pynetdicom picks the first of *our* list that the sender proposed, and the
    sender converts its object to it. Lossless compressed forms come first (a
    lossless image is kept as the modality encoded it), then the native
    encodings, deflated and big endian; lossy forms (JPEG baseline/extended,
    JPEG-LS near-lossless, JPEG 2000, video) come last. Preferring a lossy form
    would make a sender that offers it beside an uncompressed one (DCMTK
    ``storescu -xy +C``) compress an uncompressed image lossily for us.
    """
    lossless = [UID(uid) for uid in LOSSLESS_COMPRESSED]
    native = [
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        ExplicitVRBigEndian,
    ]
    preferred = lossless + native
    return preferred + [uid for uid in AllTransferSyntaxes if uid not in preferred]


STORAGE_SYNTAXES = _storage_syntaxes()


RETRIEVE_MODELS = (
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelGet,
)


def echo(_event: Any) -> int:
    """C-ECHO: the association is up, nothing else to check."""
    return 0x0000


def archive_services(archive: Archive, store_audit: StoreAudit | None = None) -> ServiceRegistry:
    """The DIMSE services of the archive, by SOP class (handlers and contexts come from here).

    A new service (Modality Worklist, MPPS, storage commitment) is one more
    registration here; the server binds and negotiates whatever is registered.
    """
    registry = ServiceRegistry()
    registry.register(evt.EVT_C_ECHO, [Verification], echo)
    registry.register(
        evt.EVT_C_STORE,
        storage_sop_classes(archive.settings.extra_storage_sop_classes),
        StoreService(archive, store_audit),
        transfer_syntaxes=STORAGE_SYNTAXES,
        # a C-GET caller may take the Storage SCP role on its association
        scu_role=False,
        scp_role=True,
    )
    registry.register(
        evt.EVT_C_FIND,
        FIND_MODELS,
        make_find_handler(archive),
        extended_negotiation=negotiate_find_extended,
    )
    registry.register(evt.EVT_C_FIND, WORKLIST_MODELS, make_worklist_handler(archive))
    mpps_create, mpps_set = make_mpps_handlers(archive)
    registry.register(evt.EVT_N_CREATE, MPPS_CLASSES, mpps_create)
    registry.register(evt.EVT_N_SET, MPPS_CLASSES, mpps_set)
    registry.register(evt.EVT_N_ACTION, COMMITMENT_CLASSES, make_commitment_handler(archive))
    registry.register(evt.EVT_C_MOVE, RETRIEVE_MODELS[:2], make_move_handler(archive))
    registry.register(evt.EVT_C_GET, RETRIEVE_MODELS[2:], make_get_handler(archive))
    return registry


def build_ae(archive: Archive, services: ServiceRegistry) -> AE:
    """Our acceptor: limits and timeouts from the settings, contexts from ``services``."""
    settings = archive.settings
    # pynetdicom's standard handlers describe every PDU and DIMSE message for its
    # log, building the text even when the logger drops it: a tenth of a C-STORE's
    # cost. They are bound (at association start) only when that log is read.
    verbose = logging.getLogger("pynetdicom").isEnabledFor(logging.INFO)
    _config.LOG_HANDLER_LEVEL = "standard" if verbose else "none"
    ae = AE(ae_title=settings.ae_title)
    # Our own limits are SlotPolicy's (connections at accept, established associations,
    # some of each kept for registered peers). pynetdicom counts every connection at
    # negotiation; SlotPolicy never admits more than this, so it never refuses first.
    ae.maximum_associations = settings.max_associations * CONNECTIONS_PER_SLOT
    ae.acse_timeout = settings.acse_timeout
    ae.dimse_timeout = settings.dimse_timeout
    ae.network_timeout = settings.network_timeout
    ae.maximum_pdu_size = settings.maximum_pdu_size
    # Who may associate is decided per association from the database's peer
    # configuration (identity.make_admission_handler), not fixed here at start.
    services.add_contexts(ae)
    return ae


def dicom_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Server-side TLS for DICOM (PS3.15 B.1 secure transport), client certificates optional."""
    if not (settings.dicom_tls_cert_file and settings.dicom_tls_key_file):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.dicom_tls_cert_file, settings.dicom_tls_key_file)
    if settings.dicom_tls_ca_file:
        context.load_verify_locations(settings.dicom_tls_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _association_counters() -> list[Handler]:
    """Count associations by outcome (``pacs_associations_total``): one increment each."""
    counter = instruments().associations

    def counting(outcome: str) -> Any:
        child = counter.labels(outcome)
        return lambda event: child.inc()

    return [
        (evt.EVT_ACCEPTED, counting("accepted")),
        (evt.EVT_REJECTED, counting("rejected")),
        (evt.EVT_ABORTED, counting("aborted")),
    ]


class DimseServer:
    """Start, and gracefully stop, the DIMSE listener of one archive."""

    def __init__(
        self,
        archive: Archive,
        extra_handlers: list[Handler] | None = None,
        services: ServiceRegistry | None = None,
    ) -> None:
        """``services``: what to answer (default :func:`archive_services`)."""
        self.archive = archive
        self.fastpath = fastpath.apply(archive.settings)
        # A spool file becomes the blob by a hard link on a filesystem store: it
        # is not read again soon, so its body bypasses the page cache.
        spool.use_direct_io(archive.links_spool_files)
        self.store_audit = StoreAudit(archive)
        self.services = services or archive_services(archive, self.store_audit)
        self.ae = build_ae(archive, self.services)
        self.slots = SlotPolicy.of(archive)
        self.handlers: list[Handler] = [
            (evt.EVT_REQUESTED, make_admission_handler(archive)),
            (evt.EVT_REQUESTED, self.slots.on_requested),
            *self.services.handlers(),
            *self.store_audit.handlers(),
            *_association_counters(),
            *stock_path_handlers(),
        ]
        self.handlers.extend(extra_handlers or [])
        self.server: NoDelayAssociationServer | None = None
        self.tls_server: NoDelayAssociationServer | None = None
        self._thread: threading.Thread | None = None
        self._tls_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def bind(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        listen_fd: int | None = None,
        tls_listen_fd: int | None = None,
    ) -> None:
        """Open the listening sockets (or adopt a parent process's) without accepting yet.

        Connections that arrive before :meth:`start` wait in the socket's backlog.
        """
        settings = self.archive.settings
        address = (host or settings.dicom_host, settings.dicom_port if port is None else port)
        self.server = cast(
            NoDelayAssociationServer,
            self.ae.make_server(
                address,
                evt_handlers=self.handlers,
                server_class=NoDelayAssociationServer,
                listen_fd=listen_fd,
            ),
        )
        self.server.slots = self.slots
        self.server.proxy_from = list(settings.dicom_proxy_protocol_from)
        tls = dicom_tls_context(settings)
        if tls is not None and settings.dicom_tls_port is not None:
            self.tls_server = cast(
                NoDelayAssociationServer,
                self.ae.make_server(
                    (address[0], settings.dicom_tls_port),
                    evt_handlers=self.handlers,
                    server_class=NoDelayAssociationServer,
                    ssl_context=tls,
                    listen_fd=tls_listen_fd,
                ),
            )
            self.tls_server.slots = self.slots

    def start(self, host: str | None = None, port: int | None = None) -> None:
        """Accept associations, on the sockets :meth:`bind` opened or on a new bind."""
        if self.server is None:
            self.bind(host, port)
        assert self.server is not None
        host_name = self.server.server_address[0]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="dimse-acceptor", daemon=True
        )
        self._thread.start()
        ae_title = self.archive.settings.ae_title
        log.info("DICOM %s listening on %s:%s", ae_title, host_name, self.port)
        if self.tls_server is not None:
            self._tls_thread = threading.Thread(
                target=self.tls_server.serve_forever, name="dimse-tls-acceptor", daemon=True
            )
            self._tls_thread.start()
            log.info("DICOM TLS listening on %s:%s", host_name, self.tls_port)

    def share_listeners(self) -> list[int]:
        """The listening sockets' descriptors, made ready for other processes to accept on.

        Non-blocking: every process waits in ``select`` and all wake on a new
        connection; the losers' ``accept`` then fails at once (socketserver
        ignores that) instead of blocking their loop until the next connection.
        The process with a thread free first wins, which spreads the load.
        """
        fds = []
        for server in (self.server, self.tls_server):
            if server is not None and server.socket is not None:
                server.socket.setblocking(False)
                server.socket.set_inheritable(True)
                server.shared = True
                fds.append(server.socket.fileno())
        return fds

    @property
    def tls_port(self) -> int:
        assert self.tls_server is not None
        return int(self.tls_server.server_address[1])

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, let running associations finish (up to ``grace`` s), then abort them."""
        servers = [server for server in (self.server, self.tls_server) if server is not None]
        self.server = self.tls_server = None
        for server in servers:
            # Not server.shutdown(): pynetdicom's expects servers it started itself.
            socketserver.BaseServer.shutdown(server)
            server.server_close()
        deadline = time.monotonic() + grace
        while any(s.active_associations for s in servers) and time.monotonic() < deadline:
            time.sleep(0.05)
        for server in servers:
            for assoc in server.active_associations:
                assoc.abort()
        for thread in (self._thread, self._tls_thread):
            if thread is not None:
                thread.join(timeout=5)
