"""Modality Worklist C-FIND SCP (PS3.4 K): the day's scheduled steps for the modalities.

A registration in the DIMSE service registry (see ``archive_services``). The
matching keys are read from the identifier (top level and the first item of the
Scheduled Procedure Step Sequence) and handed to the facade
(``archive.workflow.worklist``); each answer carries the keys asked (an empty
sequence asks for its whole item), in the calling AE's character-set profile
(utf8, ascii folded, latin1) like study C-FIND. With
``PACS_WORKLIST_CALLING_AE_ONLY`` a modality sees only the steps scheduled for
its own AE title.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.events import Event
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.archive.errors import InvalidRequest, Unavailable
from pacs.dicom import status as st
from pacs.dicom.status import CANCELLED, PENDING, UNABLE_TO_PROCESS
from pacs.dimse.identity import principal_of, why_refused
from pacs.dimse.output_charset import apply_profile
from pacs.workflow.worklist import WorklistQuery

log = logging.getLogger(__name__)

WORKLIST_MODELS = (ModalityWorklistInformationFind,)
FindResponse = tuple[int | Dataset, Dataset | None]
SPS = "ScheduledProcedureStepSequence"


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return str(value).strip() if value not in (None, "") else ""


def _query(keys: Dataset, calling: str, calling_only: bool) -> WorklistQuery:
    items = keys.get(SPS) or []
    item = items[0] if len(items) else Dataset()
    date = _text(item, "ScheduledProcedureStepStartDate")
    station = calling if calling_only else _text(item, "ScheduledStationAETitle")
    return WorklistQuery(
        station_ae=station,
        modality=_text(item, "Modality"),
        start_date=date,
        patient_name=_text(keys, "PatientName"),
        patient_id=_text(keys, "PatientID"),
        accession_number=_text(keys, "AccessionNumber"),
    )


def _answer(match: Dataset, keys: Dataset) -> Dataset:
    """``match`` cut down to the keys asked (plus the character set)."""
    out = Dataset()
    for elem in keys:
        if elem.keyword == "SpecificCharacterSet":
            continue
        if elem.keyword == SPS:
            asked = elem.value[0] if len(elem.value) else None
            items = []
            for item in match.get(SPS, []):
                if asked is None:
                    items.append(item)
                    continue
                kept = Dataset()
                for sub in asked:
                    kept.add(item[sub.tag] if sub.tag in item else sub)  # noqa: SIM401 (a tag, not a keyword)
                items.append(kept)
            out.ScheduledProcedureStepSequence = Sequence(items)
        elif elem.tag in match:
            out.add(match[elem.tag])
        else:
            out.add_new(elem.tag, elem.VR, None)
    out.SpecificCharacterSet = match.SpecificCharacterSet
    return out


def make_worklist_handler(archive: Archive) -> Callable[[Event], Iterator[FindResponse]]:
    """An EVT_C_FIND handler for the Modality Worklist information model."""

    def handle(event: Event) -> Iterator[FindResponse]:
        principal = principal_of(event)
        try:
            refused = why_refused(archive, event, "find")
            if refused is not None:
                archive.audit.record(principal, "worklist-find", f"failure: {refused}")
                yield st.status(UNABLE_TO_PROCESS, refused), None
                return
            calling = event.assoc.requestor.ae_title.strip()
            identifier = event.identifier
            if "SpecificCharacterSet" not in identifier:
                identifier.SpecificCharacterSet = archive.remote_aes.charset_fallback_for(calling)
            identifier.decode()
            query = _query(identifier, calling, archive.settings.worklist_calling_ae_only)
            items = archive.workflow.worklist(query)
        except Unavailable as exc:
            log.error("worklist C-FIND from %s: index unavailable: %s", principal.name, exc)
            yield st.status(st.OUT_OF_RESOURCES, "index unavailable, retry later"), None
            return
        except (InvalidRequest, ValueError, KeyError, IndexError, TypeError) as exc:
            archive.audit.record(principal, "worklist-find", f"failure: {exc}")
            yield st.status(UNABLE_TO_PROCESS, f"cannot match: {exc}"[:64]), None
            return
        archive.audit.record(
            principal,
            "worklist-find",
            patient_id=query.patient_id or None,
            detail=f"{len(items)} scheduled steps",
            patients=sorted({str(item.PatientID) for item in items}),
        )
        profile = archive.remote_aes.charset_profile_for(principal.name)
        for item in items:
            time.sleep(0)  # let the reader thread see a C-CANCEL
            if event.is_cancelled:
                yield CANCELLED, None
                return
            yield PENDING, apply_profile(_answer(item, identifier), profile)

    return handle
