"""Change-feed rows become visible in the order of their sequence numbers.

A reader pages the feed by sequence number (``seq > last seen``). On
PostgreSQL a number is taken when the row is inserted, before its transaction
commits: a transaction that took 11 and committed after the one that took 12
let a reader see 12, move its cursor past it and never see 11.

So every writer inserts its change rows last in its transaction, after a
transaction-scoped advisory lock: the next writer takes its numbers only once
the previous one has committed (PostgreSQL makes a transaction visible before
it releases its locks), so numbers are committed in order. The lock is held
from those inserts to the commit, during which the transaction touches no
other row: it cannot wait for a row another waiter holds (no deadlock), and it
serialises only the transactions that create a study or series, delete, or
declare a study stable, never a plain instance. SQLite has one writer already.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, text
from sqlalchemy.orm import Session

from pacs.index.jobs_models import Change

# A signed 64-bit advisory-lock key of its own (the leader and the audit trail use others).
CHANGE_FEED_LOCK = 0x5041_4353_4348_4746  # "PACSCHGF"


def record_changes(executor: Connection | Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert change rows (``kind``, ``study_uid``, ``series_uid``, ``at``) in commit order.

    Call it as the transaction's last statements (see the module's docstring).
    """
    if not rows:
        return
    bind = executor.get_bind() if isinstance(executor, Session) else executor
    if bind.dialect.name == "postgresql":
        executor.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_FEED_LOCK})
    executor.execute(insert(Change), list(rows))
