"""A small sliding-window limiter for login attempts, per client address.

In memory and per node: it slows password guessing from one address; the
per-account lockout in :mod:`pacs.auth.accounts` covers guessing spread over
many addresses or nodes.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class RateLimiter:
    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: defaultdict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        """Record an attempt; return 0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return hits[0] + self.window - now
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle addresses
                for idle in [k for k, v in self._hits.items() if not v]:
                    del self._hits[idle]
            return 0.0
