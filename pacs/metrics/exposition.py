"""The text a Prometheus server scrapes: the counters of every process, gauges read now.

The gauges are not kept up to date by anyone: jobs per state come from the
job table through the facade, and the audit queue depth from this process's
audit writer, when the scrape asks (a scrape every 15 s costs one GROUP BY).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from pacs.metrics import multiprocess
from pacs.metrics.instruments import instruments

CONTENT_TYPE = CONTENT_TYPE_LATEST
log = logging.getLogger(__name__)


class ScrapeTimeGauges(Collector):
    """``pacs_jobs`` by state and ``pacs_audit_queue_depth``, read at each scrape."""

    def __init__(self, job_counts: Callable[[], dict[str, int]], audit_depth: Callable[[], int]):
        self._job_counts = job_counts
        self._audit_depth = audit_depth

    def collect(self) -> Iterable[Metric]:
        # The scrape must answer while the index is down: that is when IT looks.
        try:
            counts = self._job_counts()
        except Exception as exc:
            log.warning("pacs_jobs left out of this scrape: %s", exc)
        else:
            jobs = GaugeMetricFamily("pacs_jobs", "Jobs in the queue by state", labels=["state"])
            for state, count in sorted(counts.items()):
                jobs.add_metric([state], count)
            yield jobs
        yield GaugeMetricFamily(
            "pacs_audit_queue_depth",
            "Audit records waiting to be written (this HTTP process)",
            value=self._audit_depth(),
        )


def render(gauges: ScrapeTimeGauges) -> bytes:
    """Every metric in Prometheus' text format (all processes' counters added up)."""
    instruments()  # a scrape before any store still lists the metric names
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess.folder() is not None:
        MultiProcessCollector(registry)
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(gauges)
    return generate_latest(registry)


class _Forward(Collector):
    """The default registry's metrics, when this process counts alone (tests, ``pacs import``)."""

    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        return self._source.collect()
