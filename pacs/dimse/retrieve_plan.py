"""What a C-MOVE or C-GET identifier asks for, and how each instance goes out.

Shared by both services: the identifier's level and unique keys (each may be a
UID list) become a list of stored instances; each is read back from storage
for its storage sub-operation, one at a time, so memory holds one instance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.presentation import PresentationContext, build_context

from pacs.archive import Archive
from pacs.blobfile import seekable_blob
from pacs.retrieve import StoredInstance, locate_many
from storage import StorageError

log = logging.getLogger(__name__)

UNIQUE_KEYS = {
    "PATIENT": ("PatientID",),
    "STUDY": ("StudyInstanceUID",),
    "SERIES": ("SeriesInstanceUID",),
    "IMAGE": ("SOPInstanceUID",),
}
NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
MAX_CONTEXTS = 128


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
    return Plan(locate_many(archive.sessions, **keys))


def contexts_for(plan: Plan) -> list[PresentationContext]:
    """One context per SOP class offering every stored syntax of that class.

    Stored bytes go out unchanged, so only a native stored syntax gets the other
    native one as a fallback (pynetdicom re-encodes between those losslessly);
    a compressed object can only travel in its own syntax.
    """
    syntaxes: dict[str, list[str]] = {}
    for instance in plan.instances:
        offered = syntaxes.setdefault(instance.sop_class_uid, [])
        stored = instance.transfer_syntax_uid
        for syntax in (stored, *NATIVE) if stored in NATIVE else (stored,):
            if syntax not in offered:
                offered.append(syntax)
    return [build_context(sop_class, ts) for sop_class, ts in list(syntaxes.items())[:MAX_CONTEXTS]]


def load(archive: Archive, instance: StoredInstance) -> Dataset | None:
    """The stored instance as a dataset for pynetdicom to send, or ``None`` when unreadable."""
    try:
        with seekable_blob(archive.store, instance.blob_key) as fp:
            return dcmread(fp)
    except (StorageError, OSError, ValueError) as exc:
        log.error("cannot read %s for retrieval: %s", instance.sop_instance_uid, exc)
        return None
