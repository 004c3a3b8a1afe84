"""Each node's copy of the configuration, refreshed within ``ttl`` seconds of a change.

Hot paths (every association, every C-FIND, every ingested dataset without a
character set) read the copy in memory. At most once per ``ttl`` a reader
polls the one-row version number; only when it changed are the tables read
again. So a change made on any node reaches every node within ``ttl`` plus one
read, without a restart and without a message bus.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import SQLAlchemyError

from pacs.config.repository import ConfigRepository
from pacs.config.values import Snapshot

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 2.0


class ConfigCache:
    def __init__(self, repository: ConfigRepository, ttl: float = DEFAULT_TTL_S) -> None:
        self.repository = repository
        self.ttl = ttl
        self._snapshot: Snapshot | None = None
        self._checked = 0.0  # monotonic time of the last version check
        self._lock = threading.Lock()

    def current(self) -> Snapshot:
        """The configuration, at most ``ttl`` seconds behind the database.

        When the index cannot be read the last copy is kept (and the failure
        logged); only a node that never read it raises ``SQLAlchemyError``.
        """
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - self._checked < self.ttl:
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if snapshot is not None and time.monotonic() - self._checked < self.ttl:
                return snapshot  # another thread refreshed it while we waited
            try:
                if snapshot is None or self.repository.version() != snapshot.version:
                    snapshot = self.repository.snapshot()
                    self._snapshot = snapshot
            except SQLAlchemyError:
                if snapshot is None:
                    raise
                log.warning(
                    "configuration not refreshed (index unavailable); keeping version %s",
                    snapshot.version,
                )
            self._checked = time.monotonic()
            return snapshot

    def invalidate(self) -> None:
        """Read again on next use: this node just changed the configuration."""
        with self._lock:
            self._checked = 0.0
