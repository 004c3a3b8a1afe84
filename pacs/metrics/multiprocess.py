"""Several processes, one set of numbers (prometheus-client's multiprocess mode).

``pacs serve`` answers DICOM from several processes on one port: a C-STORE
counted by a worker must show at ``/metrics``, which the main process serves.
prometheus-client's multiprocess mode has each process write its values to
memory-mapped files in one folder and the scrape add them up. The folder is
named by ``PROMETHEUS_MULTIPROC_DIR``, which worker processes inherit from the
environment; it is emptied when ``pacs serve`` starts (old files would count
again), and a worker that exits is marked dead so its live gauges go.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from prometheus_client import multiprocess, values

log = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable(folder: Path) -> None:
    """Empty ``folder`` and count into it from this process and the ones it starts.

    Call before any metric is used: values made before would stay per process.
    """
    from pacs.metrics.instruments import instruments

    if instruments.cache_info().currsize:  # serve() called in a process that already counted
        log.warning("metrics already counting in this process; not shared across processes")
        return
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    os.environ[ENV] = str(folder)
    # prometheus-client picks its value class when first imported; pick again now.
    values.ValueClass = values.get_value_class()


def join(folder: Path) -> bool:
    """Count into a running ``pacs serve``'s folder, if there is one; whether this process does.

    ``pacs import`` is a process of its own: its instances were counted in its own
    memory, never scraped, so /metrics missed the whole door. Its counter files stay
    in the folder after it exits and add to the scrape (until ``pacs serve`` restarts).
    """
    from pacs.metrics.instruments import instruments

    if not folder.is_dir() or os.environ.get(ENV) or instruments.cache_info().currsize:
        return False
    os.environ[ENV] = str(folder)
    values.ValueClass = values.get_value_class()
    return True


def folder() -> Path | None:
    """The folder the processes count into, or ``None`` when this process counts alone."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def process_exited(pid: int) -> None:
    """Forget the live gauges of a process that exited (its counters keep counting)."""
    if folder() is not None:
        multiprocess.mark_process_dead(pid)
