"""MPPS SCP (PS3.4 F.7): N-CREATE and N-SET of Modality Performed Procedure Steps.

Registered in the DIMSE service registry. Statuses (PS3.4 F.7.2.1.2, F.7.2.2.2,
PS3.7 C.5): 0x0111 duplicate SOP instance, 0x0112 no such instance, 0x0106
invalid attribute value (a status that is not IN PROGRESS at creation, or not a
step status), 0x0110 processing failure once the step is completed or
discontinued ("may no longer be updated"), 0xA700 when the index is down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.dimse_primitives import N_CREATE, N_SET
from pynetdicom.events import Event
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.archive.errors import InvalidRequest, NotFound, Unavailable
from pacs.dicom import status as st
from pacs.dimse.identity import principal_of
from pacs.workflow.mpps import StepClosed, StepExists, StepReport

log = logging.getLogger(__name__)

MPPS_CLASSES = (ModalityPerformedProcedureStep,)
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_INSTANCE = 0x0111
NO_SUCH_INSTANCE = 0x0112

Answer = tuple[int | Dataset, Dataset | None]


def _report(ds: Dataset, station: str) -> StepReport:
    scheduled = ds.get("ScheduledStepAttributesSequence") or []
    first = scheduled[0] if len(scheduled) else Dataset()
    series = ds.get("PerformedSeriesSequence")
    return StepReport(
        status=str(ds.get("PerformedProcedureStepStatus", "") or "").strip().upper(),
        accession_number=str(first.get("AccessionNumber", "") or ""),
        study_uid=str(first.get("StudyInstanceUID", "") or ""),
        station_ae=station,
        performed_series=(
            tuple(str(item.get("SeriesInstanceUID", "")) for item in series)
            if series is not None
            else None
        ),
    )


def _status(code: int, comment: str) -> Dataset:
    return st.status(code, comment[:64])


def make_mpps_handlers(
    archive: Archive,
) -> tuple[Callable[[Event], Answer], Callable[[Event], Answer]]:
    """(N-CREATE handler, N-SET handler) bound to ``archive``."""
    steps = archive.workflow.performed

    def audit(event: Event, action: str, uid: str, outcome: str = "success") -> Any:
        archive.audit.record(principal_of(event), action, outcome, detail=f"mpps {uid}")

    def create(event: Event) -> Answer:
        request = cast(N_CREATE, event.request)
        uid = str(request.AffectedSOPInstanceUID or generate_uid())
        try:
            attributes = event.attribute_list
            steps.create(uid, _report(attributes, event.assoc.requestor.ae_title.strip()))
        except StepExists as exc:
            audit(event, "mpps-create", uid, f"failure: {exc}")
            return _status(DUPLICATE_INSTANCE, str(exc)), None
        except InvalidRequest as exc:
            audit(event, "mpps-create", uid, f"failure: {exc}")
            return _status(INVALID_ATTRIBUTE_VALUE, str(exc)), None
        except Unavailable:
            return _status(st.OUT_OF_RESOURCES, "index unavailable, retry later"), None
        audit(event, "mpps-create", uid)
        if request.AffectedSOPInstanceUID is None:
            attributes.AffectedSOPInstanceUID = uid  # pynetdicom sends it back
        return 0x0000, attributes

    def update(event: Event) -> Answer:
        uid = str(cast(N_SET, event.request).RequestedSOPInstanceUID or "")
        try:
            changes = event.modification_list
            steps.update(uid, _report(changes, ""))
        except NotFound as exc:
            return _status(NO_SUCH_INSTANCE, str(exc)), None
        except StepClosed as exc:
            audit(event, "mpps-set", uid, f"failure: {exc}")
            return _status(PROCESSING_FAILURE, "may no longer be updated"), None
        except InvalidRequest as exc:
            return _status(INVALID_ATTRIBUTE_VALUE, str(exc)), None
        except Unavailable:
            return _status(st.OUT_OF_RESOURCES, "index unavailable, retry later"), None
        audit(event, "mpps-set", uid)
        return 0x0000, changes

    return create, update
