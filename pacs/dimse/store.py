"""C-STORE SCP: hand each received object to the archive and map the outcome to a status."""

from __future__ import annotations

import logging
from typing import cast

from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event

from pacs.archive import Archive
from pacs.archive.errors import IndexUnavailable, Unavailable
from pacs.archive.ingest import InvalidObject, Origin, Outcome, Rejected, Spool
from pacs.dicom import status as st
from pacs.dimse.spool import SpoolFile
from pacs.dimse.store_audit import StoreAudit
from pacs.metrics import instruments

log = logging.getLogger(__name__)


def origin_of(assoc: Association) -> Origin:
    requestor = assoc.requestor
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


class StoreService:
    """The C-STORE SCP of one archive.

    pynetdicom calls it as the ``EVT_C_STORE`` handler, after spooling the
    dataset to a file in the DICOM File Format (``STORE_RECV_CHUNKED_DATASET``),
    so memory stays bounded whatever the size of the object; on the store's
    filesystem that file becomes the blob by a hard link. The requests our
    own receive path assembles are served through :meth:`store` directly
    (see :mod:`pacs.dimse.pdata`). Every failure is turned into a status here:
    an exception escaping a handler would only give the peer a bare 0xC211.
    """

    def __init__(self, archive: Archive, audit: StoreAudit | None = None) -> None:
        self.archive = archive
        self.audit = audit

    def __call__(self, event: Event) -> Dataset:
        request = cast(C_STORE, event.request)
        code, comment = self.store(
            event.assoc,
            str(request.AffectedSOPClassUID or ""),
            str(request.AffectedSOPInstanceUID or ""),
            spool_of(event),  # ours alone: may become the blob
        )
        return st.status(code, comment)

    def store(
        self, assoc: Association, sop_class_uid: str, sop_instance_uid: str, spool: Spool
    ) -> tuple[int, str]:
        """Ingest the spooled object the request announced; its status code and comment."""
        origin = origin_of(assoc)
        audit = self.audit
        try:
            with spool.path.open("rb") as fp:
                result = self.archive.ingest(
                    fp,
                    origin,
                    expect_sop_class_uid=sop_class_uid,
                    expect_sop_instance_uid=sop_instance_uid,
                    spool=spool,
                )
        except Unavailable as exc:
            log.error("C-STORE from %s refused, archive unavailable: %s", origin.calling_ae, exc)
            instruments().outage("index" if isinstance(exc, IndexUnavailable) else "storage")
            if audit:
                audit.failed(assoc, f"unavailable: {exc}")
            return st.OUT_OF_RESOURCES, str(exc)
        except Rejected as exc:
            if audit:
                audit.failed(assoc, f"duplicate refused: {exc}")
            return st.DUPLICATE_REFUSED, str(exc)
        except InvalidObject as exc:
            log.warning("C-STORE from %s rejected: %s", origin.calling_ae, exc)
            if audit:
                audit.failed(assoc, f"invalid: {exc}")
            code = st.DATASET_DOES_NOT_MATCH if exc.mismatch else st.CANNOT_UNDERSTAND
            return code, str(exc)
        except Exception as exc:  # a bug must not take the association down silently
            log.exception("C-STORE from %s failed", origin.calling_ae)
            return st.OUT_OF_RESOURCES, f"internal error: {exc.__class__.__name__}"
        if audit:
            audit.stored(assoc, result)
        if result.outcome is Outcome.CONFLICT_KEPT:
            return st.WARNING_DUPLICATE_KEPT, "duplicate SOP Instance UID; original kept"
        if result.warning:
            return st.WARNING_ELEMENTS_DISCARDED, result.warning
        return st.SUCCESS, ""

    def unspooled(self, assoc: Association, reason: str) -> tuple[int, str]:
        """Status for a request whose dataset never reached the spool (a full disk)."""
        calling_ae = assoc.requestor.ae_title.strip()
        log.error("C-STORE from %s refused, storage unavailable: %s", calling_ae, reason)
        if self.audit:
            self.audit.failed(assoc, f"unavailable: {reason}")
        return st.OUT_OF_RESOURCES, f"storage unavailable: {reason}"
