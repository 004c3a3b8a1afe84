"""Ingest writers on SQLite queue on one lock across processes, not on SQLITE_BUSY's back-off."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.index import writer_lock
from tests.dicom_factory import ct_slice, to_bytes

HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


def test_an_ingest_waits_while_another_process_holds_the_writer_lock(
    sqlite_archive: Archive,
) -> None:
    database = Path(sqlite_archive.engine.url.database or "")
    lock_file = database.with_name(database.name + "-writer.lock")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        done = threading.Event()

        def ingest() -> None:
            sqlite_archive.ingest(io.BytesIO(to_bytes(ct_slice())), Origin(door="import"))
            done.set()

        worker = threading.Thread(target=ingest)
        worker.start()
        assert not done.wait(1.0)  # queued behind the other process's writer
        assert sqlite_archive.counts()["instances"] == 0
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert done.wait(30)  # and written as soon as it lets go
        worker.join()
        assert sqlite_archive.counts()["instances"] == 1
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_held_past_the_bound_is_passed_by_and_sqlite_decides(
    sqlite_archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stuck holder of the lock file (the database itself free) delays a writer by the
    bound only: the writer goes on and is written."""
    monkeypatch.setattr(writer_lock, "WAIT_S", 0.3)
    database = Path(sqlite_archive.engine.url.database or "")
    lock_file = database.with_name(database.name + "-writer.lock")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        sqlite_archive.ingest(io.BytesIO(to_bytes(ct_slice())), Origin(door="import"))
        assert sqlite_archive.counts()["instances"] == 1
    finally:
        holder.kill()
        holder.wait()
