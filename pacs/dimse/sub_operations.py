"""What C-GET and C-MOVE share: the checks before the plan, the storage sub-operations after.

Both services refuse the same way (not authorized, a bad identifier, the index
down), send one C-STORE per planned instance with pending responses in
between, stop on cancel, and write one audit record. Only where the
sub-operations go differs: the caller's association (C-GET) or a new one to
the registered destination (C-MOVE).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from pacs.archive import Archive
from pacs.archive.errors import Unavailable
from pacs.auth.principal import Principal
from pacs.dicom import status as st
from pacs.dicom.status import CANCELLED, IDENTIFIER_DOES_NOT_MATCH, PENDING, UNABLE_TO_PROCESS
from pacs.dimse.identity import why_refused
from pacs.dimse.retrieve_plan import BadIdentifier, Plan, plan, stored_file

UNREADABLE = "blob unreadable"


def checked_plan(
    archive: Archive, event: Event, service: str, principal: Principal
) -> Plan | Dataset:
    """The instances the request names, or the failure status to answer (audited)."""
    try:
        reason = why_refused(archive, event, service)
        if reason is not None:
            archive.audit.record(principal, f"c-{service}", f"failure: {reason}")
            return st.status(UNABLE_TO_PROCESS, reason)
        return plan(archive, event.identifier)
    except BadIdentifier as exc:
        archive.audit.record(principal, f"c-{service}", f"failure: {exc}")
        return st.status(IDENTIFIER_DOES_NOT_MATCH, str(exc))
    except Unavailable:
        return st.status(st.OUT_OF_RESOURCES, "index unavailable, retry later")


def refusal(status: Dataset) -> Generator[Any, None, None]:
    """A failure answered the way pynetdicom needs it: with 0 sub-operations it would
    report success before reading our status, so one is announced."""
    yield 1
    yield status, None


def store_each(archive: Archive, event: Event, found: Plan) -> Generator[Any, None, int]:
    """Announce the sub-operations, then yield each instance as its stored file; return how
    many the peer took. pynetdicom sends the item before it resumes us, so by then we know
    its outcome, and a spooled copy can go."""
    yield len(found.instances)
    sent = 0
    for instance in found.instances:
        if event.is_cancelled:
            yield CANCELLED, None
            break
        with stored_file(archive, instance) as item:
            if item is None:
                yield PENDING, UNREADABLE  # pynetdicom counts a non-dataset as a failed sub-op
                continue
            yield PENDING, item
            sent += item.delivered
    return sent


def audit_sent(
    archive: Archive, principal: Principal, service: str, found: Plan, sent: int, where: str = ""
) -> None:
    archive.audit.record(
        principal,
        f"c-{service}",
        patient_id=found.patient_id,
        study_uid=",".join(found.study_uids)[:64],
        detail=f"{where}{sent} of {len(found.instances)} instances",
    )
