"""Audit records leave the request path: a bounded queue, one writer thread, short windows.

A viewer that opens a 500-slice series sends 500 frame requests in a few
seconds. Writing one hash-chained row per request, each under the trail's
cluster-wide lock, made the audit the slowest part of a frame. A privacy
officer needs "bs.lan read study X of patient P at 10:02 (500 requests)", so
WADO and QIDO accesses by one principal to one study (and patient) within a
short window become one record, as C-STORE is one record per association
(:mod:`pacs.dimse.store_audit`). Every other action (logins, shares, C-FIND,
account changes) is still one record per event, written within milliseconds.

Nothing is dropped without a trace:

- a request only puts a small tuple on a bounded queue (microseconds);
- when the queue is full the request waits up to ``block_seconds`` for room
  (back-pressure), then appends the record to a spill file in the data
  folder (JSON lines, mode 0600), which the writer replays into the
  database as soon as it can write again (also at the next start);
- when the database cannot be written (locked, full disk, outage) the writer
  keeps what it has, retries with back-off, and reports the condition
  through :meth:`AuditWriter.status` (``/health``);
- a normal stop (:meth:`AuditWriter.close`) writes everything still pending;
  when the database stays unwritable, what is left goes to the spill file;
- only when both the database and the spill file fail is a record lost: it
  is logged in full at ERROR level and counted, and ``/health`` says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

# Accesses that repeat many times per user action (each frame, each search keystroke).
AGGREGATED_ACTIONS = frozenset({"wado", "qido"})
MAX_DETAILS = 20  # distinct request descriptions kept in one aggregated record
MAX_DETAIL_CHARS = 4000


@dataclass
class PendingRecord:
    """One audit record to write: a single event, or the accesses of one window."""

    at: datetime
    actor_kind: str
    actor: str
    role: str
    address: str
    action: str
    outcome: str
    patient_id: str
    study_uid: str
    details: list[str] = field(default_factory=list)
    patients: set[str] = field(default_factory=set)  # patients a search returned
    count: int = 1
    last_at: datetime | None = None
    extra_details: int = 0  # distinct details beyond MAX_DETAILS

    @property
    def key(self) -> tuple[str, ...]:
        return (
            self.actor_kind,
            self.actor,
            self.role,
            self.address,
            self.action,
            self.outcome,
            self.patient_id,
            self.study_uid,
        )

    def merge(self, other: PendingRecord) -> None:
        self.count += other.count
        self.last_at = other.last_at or other.at
        self.patients |= other.patients
        for detail in other.details:
            if detail in self.details:
                continue
            if len(self.details) < MAX_DETAILS:
                self.details.append(detail)
            else:
                self.extra_details += 1
        self.extra_details += other.extra_details

    @property
    def detail(self) -> str:
        """What the record says was done: the request itself, or the window's summary,
        and the patients a search returned (so that the record's hash covers them)."""
        if self.count == 1:
            text = self.details[0] if self.details else ""
        else:
            last = (self.last_at or self.at).astimezone(UTC).isoformat(timespec="milliseconds")
            text = f"{self.count} requests until {last}: " + "; ".join(self.details)
            if self.extra_details:
                text += f"; and {self.extra_details} other requests"
        text = text[:MAX_DETAIL_CHARS]
        if self.patients:
            text += f" [patients returned: {', '.join(sorted(self.patients))}]"
        return text

    def to_json(self) -> str:
        return json.dumps(
            {
                "at": self.at.isoformat(),
                "actor_kind": self.actor_kind,
                "actor": self.actor,
                "role": self.role,
                "address": self.address,
                "action": self.action,
                "outcome": self.outcome,
                "patient_id": self.patient_id,
                "study_uid": self.study_uid,
                "details": self.details,
                "patients": sorted(self.patients),
                "count": self.count,
                "last_at": self.last_at.isoformat() if self.last_at else None,
                "extra_details": self.extra_details,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, line: str) -> PendingRecord:
        data = json.loads(line)
        last_at = data.pop("last_at")
        return cls(
            **{
                **data,
                "at": datetime.fromisoformat(data["at"]),
                "patients": set(data["patients"]),
                "last_at": datetime.fromisoformat(last_at) if last_at else None,
            }
        )


class _Flush:
    """A request to write everything pending now; ``done`` is set once it is written."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


_STOP = object()
Item = object  # a PendingRecord, a _Flush, or _STOP


class AuditWriter:
    """The queue and the thread that writes audit records in batches through ``write``.

    ``write`` appends records to the trail in one transaction (and raises when
    the database cannot be written); everything else here is about never
    blocking a request on it and never losing a record.
    """

    def __init__(
        self,
        write: Callable[[list[PendingRecord]], None],
        *,
        spill_path: Path | None,
        window: float = 5.0,
        queue_size: int = 10_000,
        block_seconds: float = 1.0,
        close_seconds: float = 10.0,
    ) -> None:
        self._write = write
        self.spill_path = spill_path
        self.window = window
        self.block_seconds = block_seconds
        self.close_seconds = close_seconds
        self.max_pending = queue_size
        self._queue: queue.Queue[Item] = queue.Queue(maxsize=queue_size)
        self._pending: dict[int, tuple[float, PendingRecord]] = {}
        self._serial = 0  # keys of pending records
        # Aggregated records still taking merges, by what they merge on. Requests merge
        # into them here, so a repeated access neither queues anything nor wakes the
        # writer thread: that wake-up (a GIL hand-off per request) was 14% of a rendered
        # frame's handler time. The writer seals a record (takes it out of here) before
        # it serialises it, so no merge is ever lost.
        self._open: dict[tuple[str, ...], PendingRecord] = {}
        self._open_lock = threading.Lock()
        self._spill_lock = threading.Lock()
        self._spilled = 0  # records written to the spill file, waiting for the database
        self._lost = 0
        self._unwritable_since: datetime | None = None
        self._last_error = ""
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    # -- producers --------------------------------------------------------------------

    def submit(self, record: PendingRecord) -> None:
        """Queue one record; waits briefly when the queue is full, then spills to disk."""
        if self._closed:  # after close: nobody will write it, so write it through now
            self._spill([record])
            return
        if record.action in AGGREGATED_ACTIONS:
            with self._open_lock:
                existing = self._open.get(record.key)
                if existing is not None:
                    existing.merge(record)
                    return
                self._open[record.key] = record
        try:
            self._queue.put(record, timeout=self.block_seconds)
        except queue.Full:
            if self._spilled % 1000 == 0:
                log.warning("audit queue full: records spill to %s", self.spill_path)
            self._seal([record])
            self._spill([record])

    def _seal(self, records: Iterable[PendingRecord]) -> None:
        """Stop ``records`` taking merges: they are about to be written."""
        with self._open_lock:
            for record in records:
                if record.action in AGGREGATED_ACTIONS and self._open.get(record.key) is record:
                    del self._open[record.key]

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything submitted so far; ``False`` if it could not be written in time."""
        if self._closed or not self._thread.is_alive():
            return False
        request = _Flush()
        try:
            self._queue.put(request, timeout=timeout)
        except queue.Full:
            return False
        return request.done.wait(timeout) and request.ok

    def close(self) -> None:
        """Write what is pending (spilling what the database will not take), stop the thread."""
        if self._closed:
            return
        self._stop.set()
        with contextlib.suppress(queue.Full):  # wake the writer if it waits for records
            self._queue.put_nowait(_STOP)
        self._thread.join(self.close_seconds + 5)
        self._closed = True

    def depth(self) -> int:
        """Records queued or pending, not yet written (``pacs_audit_queue_depth``)."""
        return self._queue.qsize() + len(self._pending)

    def status(self) -> str:
        """'ok', or what keeps records from the database (for /health)."""
        problems = []
        if self._unwritable_since is not None:
            waiting = self._queue.qsize() + len(self._pending)
            problems.append(
                f"database unwritable since {self._unwritable_since.isoformat(timespec='seconds')}"
                f" ({self._last_error}); {waiting} records waiting"
            )
        if self._spilled:
            problems.append(f"{self._spilled} records in the spill file {self.spill_path}")
        if self._lost:
            problems.append(f"{self._lost} records LOST (see the log)")
        return "; ".join(problems) or "ok"

    # -- the writer thread ----------------------------------------------------------

    def _run(self) -> None:
        self._replay_spill()
        backoff = 0.0
        flushes: list[_Flush] = []
        stopping = False
        stop_deadline = 0.0
        while True:
            if backoff:
                time.sleep(backoff)
            if len(self._pending) < self.max_pending:
                stopping |= self._take(flushes)
            stopping |= self._stop.is_set()
            if stopping and not stop_deadline:
                stop_deadline = time.monotonic() + self.close_seconds
            everything = bool(flushes) or stopping or len(self._pending) >= self.max_pending
            now = time.monotonic()
            due = [
                (key, record)
                for key, (deadline, record) in self._pending.items()
                if everything or deadline <= now
            ]
            ok = self._write_due(due)
            if ok and self._spilled:
                ok = self._replay_spill()
            if ok:
                backoff = 0.0
                for request in flushes:
                    request.ok = True
                    request.done.set()
                flushes.clear()
            else:
                backoff = min(max(backoff * 2, 0.05), 2.0)
            if stopping and (ok or time.monotonic() >= stop_deadline):
                break
        left = [record for _, record in self._pending.values()]
        self._pending.clear()
        self._seal(left)
        with contextlib.suppress(queue.Empty):
            while True:
                item = self._queue.get_nowait()
                if isinstance(item, PendingRecord):
                    self._seal([item])
                    left.append(item)
                elif isinstance(item, _Flush):
                    flushes.append(item)
        for request in flushes:
            request.done.set()
        if left:  # the database would not take them: keep them for the next start
            self._spill(left)

    def _take(self, flushes: list[_Flush]) -> bool:
        """Move queued items into the pending window; ``True`` when asked to stop."""
        timeout = 1.0
        if self._pending:
            next_deadline = min(deadline for deadline, _ in self._pending.values())
            timeout = max(0.0, next_deadline - time.monotonic())
        stopping = False
        try:
            items = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return False
        room = self.max_pending - len(self._pending)  # beyond it, the queue pushes back
        with contextlib.suppress(queue.Empty):
            while len(items) < room:
                items.append(self._queue.get_nowait())
        for item in items:
            if item is _STOP:
                stopping = True
            elif isinstance(item, _Flush):
                flushes.append(item)
            elif isinstance(item, PendingRecord):
                self._add(item)
        return stopping

    def _add(self, record: PendingRecord) -> None:
        """Hold ``record`` until its window closes (aggregated) or write it at once."""
        deadline = time.monotonic() + self.window if record.action in AGGREGATED_ACTIONS else 0.0
        self._serial += 1
        self._pending[self._serial] = (deadline, record)

    def _write_due(self, due: list[tuple[int, PendingRecord]]) -> bool:
        if not due:
            return self._unwritable_since is None
        records = sorted((record for _, record in due), key=lambda r: r.at)
        self._seal(records)
        if not self._try_write(records):
            return False
        for key, _ in due:
            del self._pending[key]
        return True

    def _try_write(self, records: list[PendingRecord]) -> bool:
        try:
            self._write(records)
        except Exception as exc:  # any database error: keep the records, retry later
            if self._unwritable_since is None:
                log.error("audit trail unwritable, %d records kept: %s", len(records), exc)
                self._unwritable_since = datetime.now(UTC)
            self._last_error = f"{exc.__class__.__name__}: {str(exc)[:200]}"
            return False
        if self._unwritable_since is not None:
            log.warning("audit trail writable again")
            self._unwritable_since = None
        return True

    # -- the spill file -------------------------------------------------------------

    @contextlib.contextmanager
    def _locked_spill(self) -> Iterator[int]:
        """The spill file, open for reading and appending, locked against other processes."""
        assert self.spill_path is not None
        with self._spill_lock:
            self.spill_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.spill_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield fd
            finally:
                os.close(fd)

    def _spill(self, records: Iterable[PendingRecord]) -> None:
        records = list(records)
        if self.spill_path is not None:
            try:
                with self._locked_spill() as fd:
                    os.write(fd, "".join(r.to_json() + "\n" for r in records).encode())
                    os.fsync(fd)
                self._spilled += len(records)
                return
            except OSError as exc:
                log.error("audit spill file %s unwritable: %s", self.spill_path, exc)
        for record in records:
            self._lost += 1
            log.error("AUDIT RECORD LOST: %s", record.to_json())

    def _replay_spill(self) -> bool:
        """Write the spill file's records (ours and those of earlier runs) to the database."""
        if self.spill_path is None or not self.spill_path.exists():
            self._spilled = 0
            return True
        try:
            with self._locked_spill() as fd:
                with open(fd, closefd=False, encoding="utf-8") as spill:
                    spill.seek(0)
                    lines = [line for line in spill.read().splitlines() if line.strip()]
                records = []
                for line in lines:
                    try:
                        records.append(PendingRecord.from_json(line))
                    except (ValueError, TypeError, KeyError):
                        log.error("audit spill file: unreadable line kept in the log: %s", line)
                if records and not self._try_write(records):
                    return False
                os.ftruncate(fd, 0)
                os.fsync(fd)
        except OSError as exc:
            log.error("audit spill file %s unreadable: %s", self.spill_path, exc)
            return False
        self._spilled = 0
        return True
