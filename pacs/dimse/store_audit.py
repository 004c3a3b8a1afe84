"""Audit C-STORE per association and study, not per instance.

A CT sends hundreds of slices per association; one audit record per slice
would double the index writes of ingest and bury the trail. What a privacy
officer needs is "CT01 sent 312 instances of study X for patient P at 10:02",
so instances are counted while the association runs and written as one record
per study when it ends (released, aborted or dropped).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.events import Event

from pacs.archive import Archive
from pacs.archive.ingest import IngestResult
from pacs.dimse.identity import principal_of


@dataclass
class _Tally:
    stored: Counter[tuple[str, str]] = field(default_factory=Counter)  # (patient, study) -> n
    failures: Counter[str] = field(default_factory=Counter)  # reason -> n


class StoreAudit:
    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self._tallies: dict[int, _Tally] = {}
        self._lock = threading.Lock()

    def _tally(self, assoc: Association) -> _Tally:
        with self._lock:
            return self._tallies.setdefault(id(assoc), _Tally())

    def stored(self, assoc: Association, result: IngestResult) -> None:
        self._tally(assoc).stored[(result.patient_id, result.study_uid)] += 1

    def failed(self, assoc: Association, reason: str) -> None:
        self._tally(assoc).failures[reason[:120]] += 1

    def association_ended(self, event: Event) -> None:
        with self._lock:
            tally = self._tallies.pop(id(event.assoc), None)
        if tally is None:
            return
        principal = principal_of(event)
        for (patient_id, study_uid), count in tally.stored.items():
            self.archive.audit.record(
                principal,
                "c-store",
                patient_id=patient_id,
                study_uid=study_uid,
                detail=f"{count} instances",
            )
        if tally.failures:
            reasons = "; ".join(f"{n} x {reason}" for reason, n in tally.failures.items())
            self.archive.audit.record(principal, "c-store", f"failure: {reasons}"[:256])

    def handlers(self) -> list[tuple[evt.NotificationEvent, object]]:
        return [
            (evt.EVT_RELEASED, self.association_ended),
            (evt.EVT_ABORTED, self.association_ended),
            (evt.EVT_CONN_CLOSE, self.association_ended),
        ]
