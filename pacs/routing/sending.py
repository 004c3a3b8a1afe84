"""Sending stored instances over DICOM: what C-MOVE, C-GET and routing's C-STORE SCU share.

Each instance goes out as the stored file's bytes, read from disk in PDU-sized
pieces (a filesystem blob in place, any other blob spooled to a temporary file
first), so a 1 GB multi-frame instance never sits in memory. The association
proposes one presentation context per stored (SOP class, transfer syntax) pair
and native fallbacks (:func:`contexts_for`). An instance whose stored syntax the
peer did not accept is converted (:mod:`pacs.transcode`) to a syntax the peer
accepted for its class, which holds it in memory: only up to
``convert_max_bytes`` (stored and decoded), and never from a lossless syntax to a
lossy one.

The C-MOVE and C-GET doors (:mod:`pacs.dimse`) and routing's sender
(:mod:`pacs.routing.store_scu`) all call :func:`send_from_files` on their
association and hand it :class:`StoredFile` items.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import _config
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import P_DATA, MaximumLengthNotification
from pynetdicom.presentation import PresentationContext, build_context

from pacs.transcode import LOSSY, CannotTranscode, supported_targets, transcode_dataset
from storage import StorageError

if TYPE_CHECKING:  # pacs.archive builds the routing service: no import back at run time
    from pacs.archive.retrieve import StoredInstance

log = logging.getLogger(__name__)

NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
MAX_CONTEXTS = 128  # presentation context IDs are the odd numbers 1-255 (PS3.8 9.3.2.2)
# Stored syntaxes that lose nothing: converting one of these never yields a lossy syntax.
LOSSLESS_SOURCES = frozenset(
    {
        *NATIVE,
        "1.2.840.10008.1.2.1.99",  # deflated explicit VR little endian
        "1.2.840.10008.1.2.2",  # explicit VR big endian (retired)
        "1.2.840.10008.1.2.4.57",  # JPEG lossless
        "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
        "1.2.840.10008.1.2.4.92",  # JPEG 2000 Part 2 lossless
        "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K RPCL lossless
        "1.2.840.10008.1.2.5",  # RLE lossless
    }
)
COPY_CHUNK = 1 << 20
# pynetdicom queues every outgoing PDU without limit, and reading a file is faster than a
# socket drains: past HIGH queued PDUs the sender waits until the queue is down to LOW.
QUEUED_PDUS_HIGH = 64
QUEUED_PDUS_LOW = 16
QUEUE_POLL = 0.0005
# The largest PDU we send. A peer announcing no limit (0) would otherwise get the whole
# file read into a single PDU; smaller PDUs than the peer's maximum are always allowed.
MAX_SEND_PDU = 256 << 10

# send_c_store(path) then sends the file's dataset bytes in PDU-sized reads instead of
# parsing and re-encoding them; it only ever receives paths from this module.
_config.STORE_SEND_CHUNKED_DATASET = True


def contexts_for(instances: Iterable[StoredInstance]) -> list[PresentationContext]:
    """A context for every SOP class and stored syntax of the plan, then native fallbacks.

    Each (class, stored syntax) pair gets a context proposing that syntax alone,
    so a peer accepting it receives the stored bytes unchanged; pairs sharing one
    context would get only the one syntax the peer picks for it. Each class also
    gets a context per native syntax, into which an instance whose own syntax the
    peer refused is converted. Stored pairs come first: if the plan needs more
    than 128 contexts, fallbacks are what is left out.
    """
    pairs: dict[tuple[str, str], None] = {}
    for instance in instances:
        pairs.setdefault((instance.sop_class_uid, instance.transfer_syntax_uid), None)
    fallbacks = {(sop_class, syntax): None for sop_class, _ in pairs for syntax in NATIVE}
    wanted = [*pairs, *(pair for pair in fallbacks if pair not in pairs)]
    return [build_context(sop_class, syntax) for sop_class, syntax in wanted[:MAX_CONTEXTS]]


class StoredFile(Dataset):
    """What a handler yields for one sub-operation: a Part 10 file on disk, not its content.

    pynetdicom's Q/R service only passes a ``Dataset`` on to ``send_c_store``, so
    this is one, carrying just the UIDs it reports (Failed SOP Instance UID List);
    :func:`send_from_files` turns it back into the path when the C-STORE goes out.
    """

    def __init__(self, instance: StoredInstance, path: Path) -> None:
        super().__init__()
        self.SOPClassUID = instance.sop_class_uid
        self.SOPInstanceUID = instance.sop_instance_uid
        self.stored_instance = instance
        self.stored_path = path
        self.delivered = False  # set once the peer answered its C-STORE with success or warning


@contextlib.contextmanager
def stored_file(
    open_blob: Callable[[str], BinaryIO], spool_dir: Path, instance: StoredInstance
) -> Iterator[StoredFile | None]:
    """The instance as a file pynetdicom can send, or ``None`` when its blob is unreadable.

    ``open_blob`` is the archive's (a stream over a stored object); a blob that is
    not a local file is spooled into ``spool_dir``. A spooled copy is deleted when
    the block ends, that is once the C-STORE is answered.
    """
    try:
        blob = open_blob(instance.blob_key)
    except (StorageError, OSError) as exc:
        log.error("cannot read %s for sending: %s", instance.sop_instance_uid, exc)
        yield None
        return
    with blob:
        path = spooled = None
        try:
            spool_dir.mkdir(parents=True, exist_ok=True)
            path = _local_path(blob) or (spooled := _spool(blob, spool_dir))
        except (StorageError, OSError) as exc:
            log.error("cannot spool %s for sending: %s", instance.sop_instance_uid, exc)
        try:
            yield None if path is None else StoredFile(instance, path)
        finally:
            if spooled is not None:
                spooled.unlink(missing_ok=True)


def _local_path(blob: BinaryIO) -> Path | None:
    """A path to the open blob when it is a plain local file (the filesystem store).

    ``/proc/self/fd`` names the inode we hold open, so the send still reads the
    same bytes if the blob is replaced or deleted meanwhile.
    """
    name = getattr(blob, "name", None)
    if not isinstance(name, str) or not os.path.isabs(name):
        return None
    try:
        pinned = Path(f"/proc/self/fd/{blob.fileno()}")
    except (OSError, ValueError):
        return Path(name)
    return pinned if pinned.exists() else Path(name)


def _spool(blob: BinaryIO, folder: Path) -> Path:
    """Copy a stream (an S3 object) to a temporary file in chunks; the caller deletes it."""
    with tempfile.NamedTemporaryFile(
        dir=folder, prefix="retrieve-", suffix=".dcm", delete=False
    ) as out:
        try:
            shutil.copyfileobj(blob, out, COPY_CHUNK)
        except BaseException:
            out.close()
            Path(out.name).unlink(missing_ok=True)
            raise
    return Path(out.name)


def send_from_files(assoc: Association, convert_max_bytes: int) -> None:
    """Make ``assoc.send_c_store`` accept a :class:`StoredFile` (idempotent per association).

    ``convert_max_bytes`` bounds an instance converted for a peer that did not
    accept its stored syntax (see :func:`_sendable`).

    The C-GET association is the caller's, the C-MOVE one is opened by pynetdicom;
    either way this is the only point that sees the accepted contexts and the
    file together, just before the C-STORE goes out.
    """
    if getattr(assoc, "_pacs_sends_files", False):
        return
    original: Callable[..., Dataset] = assoc.send_c_store

    def send_c_store(dataset: Any, *args: Any, **kwargs: Any) -> Dataset:
        if not isinstance(dataset, StoredFile):
            return original(dataset, *args, **kwargs)
        answer = original(_sendable(assoc, dataset, convert_max_bytes), *args, **kwargs)
        code = int(getattr(answer, "Status", -1))
        dataset.delivered = code == 0 or 0xB000 <= code <= 0xBFFF
        return answer

    assoc.send_c_store = send_c_store  # type: ignore[method-assign]
    _bound_pdus(assoc)
    _throttle(assoc)
    assoc._pacs_sends_files = True  # type: ignore[attr-defined]


def _bound_pdus(assoc: Association) -> None:
    """Send PDUs of at most :data:`MAX_SEND_PDU`, whatever (or nothing) the peer announced."""
    peer = assoc.acceptor if assoc.is_requestor else assoc.requestor
    for item in peer.user_information:
        if isinstance(item, MaximumLengthNotification):
            announced = item.maximum_length_received or 0
            if not 0 < announced <= MAX_SEND_PDU:
                item.maximum_length_received = MAX_SEND_PDU


def _throttle(assoc: Association) -> None:
    """Give the association's outgoing PDU queue back-pressure, so memory holds a few PDUs.

    Without it a 1 GB file is read into pynetdicom's unbounded queue faster than
    a slow peer takes it. The wait ends as soon as the DUL stops (abort, release).
    """
    dul = assoc.dul
    original = dul.send_pdu

    def send_pdu(primitive: Any) -> None:
        queue = dul.to_provider_queue
        if isinstance(primitive, P_DATA) and queue.qsize() >= QUEUED_PDUS_HIGH:
            while queue.qsize() > QUEUED_PDUS_LOW and dul.is_alive() and not dul._kill_thread:
                time.sleep(QUEUE_POLL)
        original(primitive)

    dul.send_pdu = send_pdu  # type: ignore[method-assign]


def _sendable(assoc: Association, item: StoredFile, limit: int) -> Path | Dataset:
    """The path when the peer accepted the stored syntax, else the instance converted.

    Raising counts a failed sub-operation (pynetdicom lists the UID); the reason
    goes to the log.
    """
    stored = item.stored_instance
    if _accepts(assoc, stored.sop_class_uid, stored.transfer_syntax_uid):
        return item.stored_path
    try:
        return _converted(assoc, item, limit)
    except CannotTranscode as exc:
        reason = f"not sent: {exc}"
        log.error("retrieval of %s %s", stored.sop_instance_uid, reason)
        raise ValueError(reason) from exc


def _converted(assoc: Association, item: StoredFile, limit: int) -> Dataset:
    stored = item.stored_instance
    targets = _targets(assoc, stored)
    if not targets:
        raise CannotTranscode(
            f"the peer accepted no transfer syntax this archive can produce for "
            f"{stored.sop_class_uid} (stored as {stored.transfer_syntax_uid})"
        )
    header = dcmread(item.stored_path, stop_before_pixels=True)
    size = max(stored.size, _decoded_size(header))
    if size > limit:
        raise CannotTranscode(
            f"converting it from {stored.transfer_syntax_uid} needs {size} bytes in memory, "
            f"over the limit of {limit} (PACS_RETRIEVE_CONVERT_MAX_BYTES)"
        )
    if any(target in NATIVE for target in targets):
        # pynetdicom re-encodes a dataset between the native syntaxes itself, from the
        # encoding it was read in: only a compressed one is decompressed here first.
        if stored.transfer_syntax_uid in NATIVE:
            return dcmread(item.stored_path)
        targets = [ExplicitVRLittleEndian]
    reasons = []
    for target in targets:
        try:
            return transcode_dataset(dcmread(item.stored_path), target)
        except CannotTranscode as exc:
            reasons.append(str(exc))
    raise CannotTranscode("; ".join(reasons))


def _targets(assoc: Association, stored: StoredInstance) -> list[str]:
    """Syntaxes the peer accepted for the class that we can produce, best first.

    Native first (nothing lost, any peer decodes it), then compressed ones; a
    lossy syntax only for an instance that is lossy already.
    """
    accepted = {
        str(cx.transfer_syntax[0])
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == stored.sop_class_uid and cx.as_scu
    }
    lossy_source = stored.transfer_syntax_uid not in LOSSLESS_SOURCES
    return [
        syntax
        for syntax in supported_targets()
        if syntax in accepted and (lossy_source or syntax not in LOSSY)
    ]


def _decoded_size(header: Dataset) -> int:
    """Bytes of the pixel data once decoded, from the header (0 without an image)."""
    try:
        rows, columns = int(header.get("Rows", 0)), int(header.get("Columns", 0))
        samples = int(header.get("SamplesPerPixel", 1))
        bits = int(header.get("BitsAllocated", 8))
        frames = int(header.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 0
    return rows * columns * samples * max(bits, 8) // 8 * frames


def _accepts(assoc: Association, sop_class: str, syntax: str) -> bool:
    return any(
        cx.abstract_syntax == sop_class and cx.as_scu and cx.transfer_syntax[0] == syntax
        for cx in assoc.accepted_contexts
    )
