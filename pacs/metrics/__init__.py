"""Prometheus metrics: what IT's monitoring scrapes at ``/metrics``.

``instruments`` holds the counters and histograms the archive bumps (one
increment on the hot path, nothing else); ``multiprocess`` makes them add up
across the DIMSE worker processes of one ``pacs serve``; ``exposition``
renders them, with the gauges read at scrape time (jobs per state, audit
queue depth), in Prometheus' text format.
"""

from pacs.metrics.instruments import Instruments, instruments

__all__ = ["Instruments", "instruments"]
