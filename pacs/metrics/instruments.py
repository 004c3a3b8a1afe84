"""The counters and histograms, made once per process on first use.

Made lazily (not at import) so that ``pacs serve`` can switch on the
multiprocess mode first (see :mod:`pacs.metrics.multiprocess`). Label values
are small closed sets (door, outcome, route template, status class): never a
UID, a path or an AE title, which would grow without bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Instruments:
    associations: Counter
    instances_stored: Counter
    stored_bytes: Counter
    ingest_seconds: Histogram
    http_request_seconds: Histogram
    job_failures: Counter
    index_errors: Counter
    storage_errors: Counter

    def stored(self, door: str, size: int, seconds: float) -> None:
        """One object stored through ``door`` (dimse, stow, import): ``size`` bytes."""
        self.instances_stored.labels(door).inc()
        self.stored_bytes.labels(door).inc(size)
        self.ingest_seconds.labels(door).observe(seconds)

    def outage(self, kind: str) -> None:
        """An index (``kind`` "index") or storage ("storage") outage refused a request."""
        (self.index_errors if kind == "index" else self.storage_errors).inc()


@lru_cache(maxsize=1)
def instruments() -> Instruments:
    """This process's instruments (registered once in prometheus-client's default registry)."""
    return Instruments(
        associations=Counter("pacs_associations", "DICOM associations by outcome", ["outcome"]),
        instances_stored=Counter(
            "pacs_instances_stored", "DICOM objects stored, by door", ["door"]
        ),
        stored_bytes=Counter(
            "pacs_stored_bytes", "Bytes of DICOM objects stored, by door", ["door"]
        ),
        ingest_seconds=Histogram(
            "pacs_ingest_seconds",
            "Time to store one object (parse, blob, index), by door",
            ["door"],
            buckets=LATENCY_BUCKETS,
        ),
        http_request_seconds=Histogram(
            "pacs_http_request_seconds",
            "HTTP request time by route template, method and status class",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
        ),
        job_failures=Counter(
            "pacs_job_failures", "Failed job attempts, by kind and result", ["kind", "state"]
        ),
        index_errors=Counter("pacs_index_errors", "Requests refused because the index was down"),
        storage_errors=Counter(
            "pacs_storage_errors", "Requests refused because the blob store was down"
        ),
    )
