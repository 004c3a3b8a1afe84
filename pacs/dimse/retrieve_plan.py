"""What a C-MOVE or C-GET identifier asks for, and how each instance goes out.

Shared by both services: the identifier's level and unique keys (each may be a
UID list) become a list of stored instances. How each goes out (the stored
file's bytes in PDU-sized pieces, converted only when the peer refused its
stored syntax) lives in :mod:`pacs.routing.sending`, which routing's C-STORE
SCU uses too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom.presentation import PresentationContext

from pacs.archive import Archive
from pacs.archive.retrieve import StoredInstance
from pacs.routing import sending
from pacs.routing.sending import StoredFile, send_from_files

__all__ = ["BadIdentifier", "Plan", "StoredFile", "contexts_for", "plan", "send_from_files"]

UNIQUE_KEYS = {
    "PATIENT": ("PatientID",),
    "STUDY": ("StudyInstanceUID",),
    "SERIES": ("SeriesInstanceUID",),
    "IMAGE": ("SOPInstanceUID",),
}


class BadIdentifier(ValueError):
    """The identifier does not name what to retrieve (PS3.4 C.4.2.1.4 / C.4.3.1.3)."""


@dataclass(frozen=True)
class Plan:
    instances: list[StoredInstance]

    @property
    def study_uids(self) -> list[str]:
        return list(dict.fromkeys(i.study_uid for i in self.instances))

    @property
    def patient_id(self) -> str:
        return self.instances[0].patient_id if self.instances else ""


def _values(identifier: Dataset, keyword: str) -> list[str]:
    value = identifier.get(keyword)
    if value is None or value == "":
        return []
    items = list(value) if isinstance(value, MultiValue) else str(value).split("\\")
    return [str(v).strip() for v in items if str(v).strip()]


def plan(archive: Archive, identifier: Dataset) -> Plan:
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    if level not in UNIQUE_KEYS:
        raise BadIdentifier(
            f"QueryRetrieveLevel {level[:16]!r} is not PATIENT, STUDY, SERIES or IMAGE"
        )
    keys = {
        "patient_ids": _values(identifier, "PatientID"),
        "study_uids": _values(identifier, "StudyInstanceUID"),
        "series_uids": _values(identifier, "SeriesInstanceUID"),
        "sop_instance_uids": _values(identifier, "SOPInstanceUID"),
    }
    required = {
        "PATIENT": "patient_ids",
        "STUDY": "study_uids",
        "SERIES": "series_uids",
        "IMAGE": "sop_instance_uids",
    }[level]
    if not keys[required]:
        raise BadIdentifier(f"a {level} level retrieve needs {UNIQUE_KEYS[level][0]}")
    return Plan(archive.locate_many(**keys))


def contexts_for(plan: Plan) -> list[PresentationContext]:
    """The plan's stored (class, syntax) pairs, then native fallbacks (see
    :func:`pacs.routing.sending.contexts_for`)."""
    return sending.contexts_for(plan.instances)


@contextlib.contextmanager
def stored_file(archive: Archive, instance: StoredInstance) -> Iterator[StoredFile | None]:
    """The instance as a file pynetdicom can send, or ``None`` when its blob is unreadable."""
    spool_dir = archive.settings.spool_dir
    assert spool_dir is not None  # Settings derives it from data_dir when unset
    with sending.stored_file(archive.open_blob, spool_dir, instance) as item:
        yield item
