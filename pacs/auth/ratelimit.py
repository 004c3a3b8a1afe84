"""A sliding-window limiter of failed credential attempts, per key (client address, link...).

Only failures count: a clinic behind one NAT address, where every user logs
in correctly, is never slowed down; a guesser is, after ``limit`` failures in
``window`` seconds. The failures are rows of the index database
(:class:`~pacs.auth.models.CredentialFailure`), so every node behind a load
balancer counts the same attempts: five guesses spread over nodes A and B are
five, not two and three (issue 20 item 4). The per-account lockout in
:mod:`pacs.auth.accounts` and the per-link PIN counter in :mod:`pacs.auth.grants`
(also in the database) cover guessing spread over many addresses.

A successful credential never reaches the limiter (the doors ask it only on a
login form, or after a credential failed), so it costs nothing on the path of
every request. Rows older than the window are deleted at most every
``PURGE_EVERY_S`` per process, in their own transaction.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from pacs.auth.models import CredentialFailure

PURGE_EVERY_S = 60.0
KEY_CHARS = 128  # attacker text: bounded before it is stored


class FailureLimiter:
    def __init__(
        self, sessions: sessionmaker[Session], scope: str, limit: int, window: float = 60.0
    ) -> None:
        self._sessions = sessions
        self.scope = scope
        self.limit = max(1, limit)
        self.window = window
        self._purged = 0.0
        self._lock = threading.Lock()

    def wait(self, *keys: str) -> float:
        """0 when every key may try again, else the seconds until the first may."""
        now_ms = _now_ms()
        window_ms = int(self.window * 1000)
        longest = 0.0
        failure = CredentialFailure
        with self._sessions() as session:
            for key in keys:
                recent = session.scalars(
                    select(failure.at_ms)
                    .where(
                        failure.scope == self.scope,
                        failure.key == key[:KEY_CHARS],
                        failure.at_ms > now_ms - window_ms,
                    )
                    .order_by(failure.at_ms.desc())
                    .limit(self.limit)
                ).all()
                if len(recent) >= self.limit:
                    longest = max(longest, (recent[-1] + window_ms - now_ms) / 1000)
        return longest

    def failed(self, *keys: str) -> None:
        """Count one failed attempt against each key."""
        now_ms = _now_ms()
        rows = [{"scope": self.scope, "key": k[:KEY_CHARS], "at_ms": now_ms} for k in keys]
        if rows:
            with self._sessions.begin() as session:
                session.execute(insert(CredentialFailure), rows)
        self._purge(now_ms)

    def _purge(self, now_ms: int) -> None:
        """Forget this scope's failures older than the window (at most once a minute here)."""
        with self._lock:
            if time.monotonic() - self._purged < PURGE_EVERY_S:
                return
            self._purged = time.monotonic()
        with self._sessions.begin() as session:
            session.execute(
                delete(CredentialFailure).where(
                    CredentialFailure.at_ms <= now_ms - int(self.window * 1000),
                    CredentialFailure.scope == self.scope,
                )
            )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
