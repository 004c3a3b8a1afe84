"""Storage Commitment Push Model SCP (PS3.4 J.3): the N-ACTION side.

The request is answered at once (it is accepted, not yet verified) and handed
to the facade, which verifies every referenced instance and reports with
N-EVENT-REPORT on a new association, as a job with retries
(:mod:`pacs.workflow.commitment`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

from pydicom.dataset import Dataset
from pynetdicom.dimse_primitives import N_ACTION
from pynetdicom.events import Event
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.archive.errors import Unavailable
from pacs.dicom import status as st
from pacs.dimse.identity import principal_of

log = logging.getLogger(__name__)

COMMITMENT_CLASSES = (StorageCommitmentPushModel,)
NO_SUCH_ACTION_TYPE = 0x0123
INVALID_ARGUMENT_VALUE = 0x0115

Answer = tuple[int | Dataset, Dataset | None]


def make_commitment_handler(archive: Archive) -> Callable[[Event], Answer]:
    def handle(event: Event) -> Answer:
        request = cast(N_ACTION, event.request)
        if request.ActionTypeID != 1:
            return st.status(NO_SUCH_ACTION_TYPE, "only action type 1 (commit)"), None
        calling = event.assoc.requestor.ae_title.strip()
        try:
            info = event.action_information
            transaction = str(info.TransactionUID)
            refs = [
                (str(item.ReferencedSOPClassUID), str(item.ReferencedSOPInstanceUID))
                for item in info.ReferencedSOPSequence
            ]
        except (AttributeError, KeyError, ValueError, TypeError) as exc:
            return st.status(INVALID_ARGUMENT_VALUE, f"bad request: {exc}"[:64]), None
        try:
            archive.commitments.request(calling, transaction, refs)
        except ValueError as exc:
            return st.status(INVALID_ARGUMENT_VALUE, str(exc)[:64]), None
        except Unavailable:
            return st.status(st.OUT_OF_RESOURCES, "index unavailable, retry later"), None
        archive.audit.record(
            principal_of(event),
            "storage-commitment",
            detail=f"transaction {transaction}: {len(refs)} instances",
        )
        return 0x0000, None

    return handle
