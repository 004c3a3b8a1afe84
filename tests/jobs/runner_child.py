"""A job runner process for the multi-process tests: ``python -m tests.jobs.runner_child``.

Arguments: database URL, data folder, mode. It registers one handler for kind
``effect`` and runs the archive's real runner threads until SIGTERM (or kill -9).

Modes:
  count  - insert one row (payload key, this pid) into ``job_effect`` per run
  block  - record that it started (``job_effect`` row with key "started"), then hang
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import text

from pacs.archive import Archive
from pacs.settings import Settings

EFFECT_TABLE = "CREATE TABLE job_effect (key VARCHAR(64) NOT NULL, pid INTEGER NOT NULL)"


def main(url: str, data_dir: str, mode: str, lease_s: str = "60") -> None:
    settings = Settings(
        data_dir=Path(data_dir),
        database_url=url,
        job_threads=2,
        job_poll_seconds=0.05,
        job_lease_seconds=float(lease_s),
    )
    archive = Archive.open(settings, migrate=False)
    hang = threading.Event()

    def effect(payload: dict[str, Any]) -> None:
        key = "started" if mode == "block" else str(payload["key"])
        with archive.engine.begin() as connection:
            connection.execute(
                text("INSERT INTO job_effect (key, pid) VALUES (:k, :p)"),
                {"k": key, "p": os.getpid()},
            )
        if mode == "block":
            hang.wait()

    archive.jobs.handle("effect", effect)
    running = archive.jobs.start(scheduler=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    hang.set()
    running.stop()
    archive.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
