"""C-STORE SCP: hand each received object to the archive and map the outcome to a status."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

from pydicom.dataset import Dataset
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event

from pacs.archive import Archive
from pacs.dimse import status as st
from pacs.dimse.spool import SpoolFile
from pacs.dimse.store_audit import StoreAudit
from pacs.ingest import InvalidObject, Origin, Outcome, Rejected, Spool, Unavailable

log = logging.getLogger(__name__)


def origin_of(event: Event) -> Origin:
    requestor = event.assoc.requestor
    return Origin(
        door="dimse",
        calling_ae=requestor.ae_title.strip(),
        address=f"{requestor.address}:{requestor.port}",
    )


def spool_of(event: Event) -> Spool:
    """The request's spool file, with its hash and head when our spool wrote them."""
    spooled = getattr(event.request, "_dataset_file", None)
    if isinstance(spooled, SpoolFile):
        return Spool(event.dataset_path, spooled.sha256.hexdigest(), spooled.header())
    return Spool(event.dataset_path)


def make_store_handler(
    archive: Archive, audit: StoreAudit | None = None
) -> Callable[[Event], Dataset]:
    """An EVT_C_STORE handler bound to ``archive``.

    pynetdicom has already spooled the dataset to a file in the DICOM File
    Format (``STORE_RECV_CHUNKED_DATASET``), so memory stays bounded whatever
    the size of the object; on the store's filesystem that file becomes the
    blob by a hard link (pynetdicom removes only its own name afterwards).
    Every failure is turned into a status here: an exception escaping a
    handler would only give the peer a bare 0xC211.
    """

    def handle_store(event: Event) -> Dataset:
        request = cast(C_STORE, event.request)
        origin = origin_of(event)
        try:
            with event.dataset_path.open("rb") as fp:
                result = archive.ingest(
                    fp,
                    origin,
                    expect_sop_class_uid=str(request.AffectedSOPClassUID or ""),
                    expect_sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
                    spool=spool_of(event),  # ours alone: may become the blob
                )
        except Unavailable as exc:
            log.error("C-STORE from %s refused, archive unavailable: %s", origin.calling_ae, exc)
            if audit:
                audit.failed(event, f"unavailable: {exc}")
            return st.status(st.OUT_OF_RESOURCES, str(exc))
        except Rejected as exc:
            if audit:
                audit.failed(event, f"duplicate refused: {exc}")
            return st.status(st.DUPLICATE_REFUSED, str(exc))
        except InvalidObject as exc:
            log.warning("C-STORE from %s rejected: %s", origin.calling_ae, exc)
            if audit:
                audit.failed(event, f"invalid: {exc}")
            code = st.DATASET_DOES_NOT_MATCH if exc.mismatch else st.CANNOT_UNDERSTAND
            return st.status(code, str(exc))
        except Exception as exc:  # a bug must not take the association down silently
            log.exception("C-STORE from %s failed", origin.calling_ae)
            return st.status(st.OUT_OF_RESOURCES, f"internal error: {exc.__class__.__name__}")
        if audit:
            audit.stored(event, result)
        if result.outcome is Outcome.CONFLICT_KEPT:
            return st.status(st.WARNING_DUPLICATE_KEPT, "duplicate SOP Instance UID; original kept")
        return st.status(st.SUCCESS)

    return handle_store
