"""Association refusals, logged and audited without letting a hostile peer flood the trail.

A peer that retries a refused association in a loop would otherwise append a
record (and a log line) per attempt, for as long as it likes. The first
refusal of a (calling title, address, reason) is recorded at once; repeats
within ``window`` seconds are counted and said in the next record, so the
trail still tells who was refused, why, and how often.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict

from pacs.archive import Archive
from pacs.archive.errors import Unavailable
from pacs.auth.principal import Principal

log = logging.getLogger(__name__)

WINDOW_S = 60.0
MAX_KEYS = 4096  # distinct (title, address, reason) remembered; the oldest are forgotten


class RefusalRecorder:
    def __init__(self, archive: Archive, window: float = WINDOW_S) -> None:
        self.archive = archive
        self.window = window
        # key -> (time of the last record, refusals since it)
        self._seen: OrderedDict[tuple[str, str, str], tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def refused(self, principal: Principal, address: str, reason: str) -> None:
        """Log and audit one refused association (or count it, within the window)."""
        key = (principal.name, address, reason)
        now = time.monotonic()
        with self._lock:
            last, since = self._seen.get(key, (float("-inf"), 0))
            if now - last < self.window:
                self._seen[key] = (last, since + 1)
                return
            self._seen[key] = (now, 0)
            self._seen.move_to_end(key)
            while len(self._seen) > MAX_KEYS:
                self._seen.popitem(last=False)
        repeats = f" ({since} more since the last record)" if since else ""
        log.warning(
            "DICOM association refused: %s from %s: %s%s", principal.name, address, reason, repeats
        )
        # A lost record is logged loudly by the trail; the refusal stands either way.
        with contextlib.suppress(Unavailable):
            self.archive.audit.record(
                principal, "association", f"failure: {reason}", detail=repeats.strip(" ()")
            )
