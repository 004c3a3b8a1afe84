"""P-DATA-TF PDUs of an established association, read without pynetdicom's copies.

Between the socket and the spool file pynetdicom copies every byte of a
C-STORE's dataset five times (the PDU into a bytearray, ``bytes()`` of it for
the data-received event, each PDV out of the PDU, the fragment without its
control byte, the write), and builds a PDU object, a state machine event and a
P-DATA primitive on the way. For a 512 KiB CT slice that was 3.5 ms of the DUL
thread's time here, more than our whole ingest of the slice.

:class:`PDataReader` takes over only what it can do exactly as pynetdicom
would: a P-DATA-TF PDU in state Sta6 (association established, where the
state machine's only action is to hand the PDU to DIMSE), with no other event
waiting for the state machine and nobody bound to the raw PDU events. There:

- a plain C-STORE-RQ command set is read by :mod:`pacs.dimse.store_request`,
  and the fragments of its dataset go from the receive buffer straight into
  its spool file;
- a dataset fragment of a message pynetdicom is spooling goes into its file
  the same way;
- every other PDV (other commands, datasets kept in memory, the end of a
  message of pynetdicom's) goes to pynetdicom's DIMSE provider as a P-DATA
  primitive of its own, so their assembly, decoding and dispatch stay
  pynetdicom's.

Any other PDU is read by pynetdicom: the six header bytes already read are
pushed back into the socket for it.

A C-STORE request completed either way is served on this (the DUL) thread
instead of being queued for the association thread, which would hand the
response back: the peer waits for the response anyway, and the two handovers
cost more than they overlapped. A request we assembled ourselves goes
straight to our :class:`~pacs.dimse.store.StoreService` and its response
straight to the socket, when nothing else would see either (no other C-STORE
handler, nobody bound to DIMSE or PDU events, nothing queued to send):
pynetdicom's service class, event and response primitives cost a tenth of an
instance. Otherwise pynetdicom's own ``_serve_request`` serves it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pynetdicom import _config, evt
from pynetdicom import pdu as pdus
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from pacs.archive.ingest import Spool
from pacs.dicom import status as st
from pacs.dimse.registry import Dispatcher
from pacs.dimse.store import StoreService
from pacs.dimse.store_request import IncomingStore, begin_store
from pacs.dimse.store_response import COMMAND_LAST_FRAGMENT, encode_store_rsp

if TYPE_CHECKING:
    from pynetdicom.association import Association
    from pynetdicom.dul import DULServiceProvider

    from pacs.dimse.reactor import BulkReceiveSocket

log = logging.getLogger(__name__)

P_DATA_TF = 0x04
ESTABLISHED = "Sta6"
AWAITING_REQUEST = "Sta2"
# Larger PDUs (a peer ignoring our maximum length) are left to pynetdicom,
# which reads them as they arrive instead of into one buffer of the declared size.
LARGEST_BUFFERED_PDU = 4 << 20
# The longest any other PDU may be: an A-ASSOCIATE-RQ of 128 contexts of 40 transfer
# syntaxes each is under 200 kB; release and abort PDUs are 10 bytes.
LARGEST_CONTROL_PDU = 1 << 20
_HEADER = struct.Struct(">BBL")
_ITEM_LENGTH = struct.Struct(">L")
# Whoever is bound to these would miss a request served directly, or its response.
_OBSERVERS = (evt.EVT_DIMSE_RECV, evt.EVT_DIMSE_SENT, evt.EVT_PDU_SENT, evt.EVT_DATA_SENT)


class MalformedPDU(ValueError):
    """The PDV items of a P-DATA-TF PDU do not add up to its length."""


class PDataReader:
    """Replacement for ``DULServiceProvider._read_pdu_data`` on one association."""

    def __init__(self, dul: DULServiceProvider, fallback: Callable[[], None]) -> None:
        self.dul = dul
        self.fallback = fallback
        self.buffer = bytearray()
        self.incoming: IncomingStore | None = None  # a C-STORE we assemble ourselves

    def __call__(self) -> None:
        socket: BulkReceiveSocket = self.dul.socket  # type: ignore[assignment]
        header = socket.recv(6)
        if len(header) < 6:
            socket.push_back(header)  # pynetdicom reports the closed connection
            self.fallback()
            return
        pdu_type, _, length = _HEADER.unpack(header)
        if length > self._longest(pdu_type):
            self._refuse(socket, pdu_type, length)
            return
        if pdu_type != P_DATA_TF or length > LARGEST_BUFFERED_PDU or not self._plain():
            socket.push_back(header)
            self.fallback()
            return
        body = self._read(socket, length)
        if body is None:
            log.error("Connection closed before the entire PDU was received")
            self.dul.event_queue.put("Evt17")  # transport connection closed
            return
        try:
            items = list(pdv_items(body))
        except MalformedPDU as exc:
            log.error("Invalid P-DATA-TF PDU: %s", exc)
            self.dul.event_queue.put("Evt19")  # invalid PDU: the state machine aborts
            return
        for context_id, control, data in items:
            self._deliver(context_id, control, data)

    def _longest(self, pdu_type: int) -> int | None:
        """The longest PDU of this type we read (None: any; the acceptor announced no limit).

        A declared length is the peer's word: pynetdicom read a PDU into memory as its
        bytes arrived, up to 4 GiB, and ARTIM bounds each read, not the PDU. An
        unauthenticated peer declaring an A-ASSOCIATE-RQ of 4 GiB grew the process by
        400 MB in a second on loopback. A P-DATA-TF may not exceed the maximum length
        we announced (PS3.8 9.3.5; at least :data:`LARGEST_BUFFERED_PDU` is allowed to
        peers that overshoot it a little).
        """
        if pdu_type != P_DATA_TF:
            return LARGEST_CONTROL_PDU
        announced = int(self.dul.assoc.acceptor.maximum_length or 0)
        return max(announced, LARGEST_BUFFERED_PDU) if announced else None

    def _refuse(self, socket: BulkReceiveSocket, pdu_type: int, length: int) -> None:
        """An invalid PDU (PS3.8 9.3.1, AA-1): A-ABORT, and nothing more is read from the peer."""
        log.warning(
            "DICOM peer declared a PDU of type %#04x and %d bytes: A-ABORT, connection closed",
            pdu_type,
            length,
        )
        socket.refuse_reads()
        self.dul.event_queue.put("Evt19")
        if self.dul.state_machine.current_state == AWAITING_REQUEST:
            # The association thread waits for this very A-ASSOCIATE-RQ (ARTIM); no
            # primitive is its "timed out": it closes the connection once the DUL is done.
            self.dul.to_user_queue.put(None)

    def _plain(self) -> bool:
        """Whether pynetdicom would do nothing with this PDU but hand it to DIMSE."""
        dul = self.dul
        assoc = dul.assoc
        return (
            dul.state_machine.current_state == ESTABLISHED
            and dul.event_queue.empty()
            and not assoc.get_handlers(evt.EVT_DATA_RECV)
            and not assoc.get_handlers(evt.EVT_PDU_RECV)
        )

    def _read(self, socket: BulkReceiveSocket, length: int) -> memoryview | None:
        if len(self.buffer) < length:
            self.buffer = bytearray(length)
        view = memoryview(self.buffer)[:length]
        return view if socket.recv_exactly(view) else None

    def _deliver(self, context_id: int, control: int, data: memoryview) -> None:
        """One PDV: a spooled dataset fragment to its file, anything else to DIMSE."""
        if self.incoming is not None or (control == 0x03 and self._may_begin_store()):
            self._assemble_store(context_id, control, data)
            return
        dimse = self.dul.assoc.dimse
        message = dimse.message
        spool = getattr(message, "_data_set_file", None) if message is not None else None
        if control & 1 or spool is None:
            dimse.receive_primitive(_p_data(context_id, bytes([control]) + data))
            return
        spool.write(data)
        if control & 2:  # the last fragment: DIMSE completes the message
            spool.flush()
            self._complete(_p_data(context_id, bytes([control])))

    def _may_begin_store(self) -> bool:
        """Whether a whole command set in one PDV may be read by :func:`begin_store`."""
        assoc = self.dul.assoc
        return (
            assoc.dimse.message is None  # no message of pynetdicom's half received
            and not assoc.get_handlers(evt.EVT_DIMSE_RECV)
        )

    def _assemble_store(self, context_id: int, control: int, data: memoryview) -> None:
        """A C-STORE-RQ of our own: its command set, then its dataset into the spool."""
        incoming = self.incoming
        if incoming is None:  # a command set: ours if it is a plain C-STORE-RQ
            self.incoming = begin_store(self.dul.assoc, context_id, data)
            if self.incoming is None:
                self.dul.assoc.dimse.receive_primitive(_p_data(context_id, bytes([control]) + data))
            return
        if control & 1 or context_id != incoming.context_id:
            # A command before the dataset ended: what pynetdicom's decoder would
            # mangle, the state machine answers with an abort.
            log.error("P-DATA out of sequence inside a C-STORE dataset")
            self.incoming = None
            self.dul.event_queue.put("Evt19")
            return
        incoming.write(data)
        if control & 2:
            self.incoming = None
            assoc = self.dul.assoc
            if not incoming.finish():
                self._refuse_unspooled(incoming)
                return
            service = self._direct_service(incoming)
            if service is not None:
                self._serve_directly(service, incoming)
            elif assoc._reactor_checkpoint.is_set():
                assoc._serve_request(incoming.handed_over(), context_id)
            else:  # pynetdicom holds the reactor: the association thread serves it later
                assoc.dimse.msg_queue.put((context_id, incoming.handed_over()))

    def _direct_service(self, incoming: IncomingStore) -> StoreService | None:
        """Our C-STORE service, if serving ``incoming`` past pynetdicom changes nothing."""
        assoc = self.dul.assoc
        if not (
            assoc._reactor_checkpoint.is_set()
            and assoc.is_established
            and not assoc._sent_release
            and self.dul.to_provider_queue.empty()
        ):
            return None
        uid = incoming.sop_class_uid
        handler = store_handler(assoc, uid)
        if not isinstance(handler, StoreService) or any(map(assoc.get_handlers, _OBSERVERS)):
            return None
        if _config.UNRESTRICTED_STORAGE_SERVICE or uid in assoc.acceptor._common_ext:
            return None
        return handler if _is_storage(uid) else None

    def _serve_directly(self, service: StoreService, incoming: IncomingStore) -> None:
        """Store the request's object and send its response, as pynetdicom's service would."""
        spool = incoming.taken()
        path = spool.name
        try:
            code, comment = service.store(
                self.dul.assoc,
                incoming.sop_class_uid,
                incoming.sop_instance_uid,
                Spool(Path(path), spool.sha256.hexdigest(), spool.header()),
            )
        finally:
            spool.close()
            with contextlib.suppress(OSError):
                os.unlink(path)  # the blob, if it became one, has its own link
        self._answer(incoming, code, comment)

    def _refuse_unspooled(self, incoming: IncomingStore) -> None:
        """Answer a request whose dataset the spool could not take (a full disk): retry later."""
        assoc = self.dul.assoc
        handler = store_handler(assoc, incoming.sop_class_uid)
        if isinstance(handler, StoreService):
            code, comment = handler.unspooled(assoc, incoming.failure)
        else:
            code, comment = st.OUT_OF_RESOURCES, incoming.failure
        self._answer(incoming, code, comment)

    def _answer(self, incoming: IncomingStore, code: int, comment: str) -> None:
        """Send the C-STORE response, as pynetdicom's service would."""
        assoc = self.dul.assoc
        if not assoc.is_established:  # aborted meanwhile: nobody to answer
            return
        comment = st.error_comment(comment) if comment else ""
        command = encode_store_rsp(
            incoming.message_id, incoming.sop_class_uid, incoming.sop_instance_uid, code, comment
        )
        if (
            command is None
            or not self.dul.to_provider_queue.empty()
            or any(map(assoc.get_handlers, _OBSERVERS))
        ):
            assoc.dimse.send_msg(_response(incoming, code, comment), incoming.context_id)
            return
        # We are the DUL thread, in Sta6, with nothing queued: sending the P-DATA-TF
        # here is what the state machine's DT-1 action would do.
        pdu = pdus.P_DATA_TF()
        pdu.from_primitive(_p_data(incoming.context_id, bytes([COMMAND_LAST_FRAGMENT]) + command))
        self.dul.socket.send(pdu.encode())  # type: ignore[union-attr]

    def _complete(self, last: P_DATA) -> None:
        """Hand the last fragment to DIMSE, and serve the C-STORE it completes here.

        The association thread would otherwise take the request from the DIMSE
        queue and hand the response back to this thread: two wake-ups and two
        handovers of the GIL per instance, for a peer that waits for the
        response before it sends anything else. Not while the association's
        reactor is held (pynetdicom holds it while it sends requests of its own).
        """
        assoc = self.dul.assoc
        messages = assoc.dimse.msg_queue
        claiming = getattr(messages, "claiming", None)
        if claiming is None or not assoc._reactor_checkpoint.is_set():
            assoc.dimse.receive_primitive(last)
            return
        with claiming() as claimed:
            assoc.dimse.receive_primitive(last)
        for context_id, request in claimed:
            assoc._serve_request(request, context_id)


def store_handler(assoc: Association, sop_class_uid: str) -> Any:
    """What answers a C-STORE of ``sop_class_uid`` here: the registry's choice, or the handler."""
    handler, _ = assoc.get_handlers(evt.EVT_C_STORE)
    if isinstance(handler, Dispatcher):
        return handler.handler_for(sop_class_uid)
    return handler


@functools.lru_cache(maxsize=256)  # the UIDs come from peers: bounded
def _is_storage(sop_class_uid: str) -> bool:
    return uid_to_service_class(sop_class_uid) is StorageServiceClass


def _response(incoming: IncomingStore, code: int, comment: str) -> C_STORE:
    """The response primitive, for what only pynetdicom encodes (a comment outside ASCII)."""
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = incoming.message_id
    rsp.AffectedSOPClassUID = incoming.sop_class_uid
    rsp.AffectedSOPInstanceUID = incoming.sop_instance_uid
    rsp.Status = code
    if comment:
        rsp.ErrorComment = comment  # type: ignore[assignment]
    return rsp


def pdv_items(body: memoryview) -> Iterator[tuple[int, int, memoryview]]:
    """``(context ID, message control header, fragment)`` of each PDV item (PS3.8 9.3.5)."""
    offset = 0
    end = len(body)
    while offset < end:
        if end - offset < 6:
            raise MalformedPDU(f"{end - offset} bytes left at {offset}, too few for a PDV item")
        (length,) = _ITEM_LENGTH.unpack_from(body, offset)
        if length < 2 or offset + 4 + length > end:
            raise MalformedPDU(f"PDV item at {offset} declares {length} bytes")
        yield body[offset + 4], body[offset + 5], body[offset + 6 : offset + 4 + length]
        offset += 4 + length


def _p_data(context_id: int, data: bytes) -> P_DATA:
    primitive = P_DATA()
    primitive.presentation_data_value_list.append((context_id, data))
    return primitive
