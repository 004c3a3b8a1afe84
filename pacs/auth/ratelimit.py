"""A sliding-window limiter of failed credential attempts, per key (client address, link...).

Only failures count: a clinic behind one NAT address, where every user logs
in correctly, is never slowed down; a guesser is, after ``limit`` failures in
``window`` seconds. In memory and per node: it slows guessing from one place;
the per-account lockout in :mod:`pacs.auth.accounts` and the per-link PIN
counter in :mod:`pacs.auth.grants` (both in the database) cover guessing
spread over many addresses or nodes.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class FailureLimiter:
    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def wait(self, *keys: str) -> float:
        """0 when every key may try again, else the seconds until the first may."""
        now = time.monotonic()
        longest = 0.0
        with self._lock:
            for key in keys:
                failures = self._recent(key, now)
                if len(failures) >= self.limit:
                    longest = max(longest, failures[-self.limit] + self.window - now)
                if not failures:
                    del self._failures[key]
        return longest

    def failed(self, *keys: str) -> None:
        """Count one failed attempt against each key."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)
            if len(self._failures) > 10_000:  # forget idle keys
                for idle in [
                    k for k, v in self._failures.items() if not v or v[-1] <= now - self.window
                ]:
                    del self._failures[idle]
