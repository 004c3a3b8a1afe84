"""How full the archive is: what the storage page shows an administrator.

Figures come from the index (one grouped query, no walk over the blobs), the
free space from the file system that holds the store and the data folder,
and the last integrity check from the audit trail, where ``pacs check``
records each run (``integrity-check``): the result outlives the process and
every node reads the same one.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pacs.audit import AuditTrail
from pacs.audit.filters import AuditFilter
from pacs.index.models import Instance, Series
from storage import BlobStore
from storage.filesystem import FileSystemStore
from storage.tiered import TieredStore

CHECK_ACTION = "integrity-check"


@dataclass(frozen=True)
class Space:
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class StoreUsage:
    kind: str  # filesystem or s3
    location: str  # the folder, or endpoint/bucket/prefix (no credentials)
    instances: int
    bytes: int
    space: Space | None  # unknown for an object store


@dataclass(frozen=True)
class MonthUsage:
    modality: str
    month: str  # YYYY-MM of reception (UTC)
    instances: int
    bytes: int


@dataclass(frozen=True)
class LastCheck:
    at: datetime
    by: str
    consistent: bool
    outcome: str
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Usage:
    stores: list[StoreUsage]
    by_modality_month: list[MonthUsage]
    data_dir: str
    data_dir_space: Space | None
    last_check: LastCheck | None


def _space(path: Path) -> Space | None:
    try:
        total, _used, free = shutil.disk_usage(path)
    except OSError:
        return None
    return Space(total, free)


def _month(session: Session) -> Any:
    """The reception month as 'YYYY-MM' in the database's own dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", Instance.received_at), "YYYY-MM")
    return func.strftime("%Y-%m", Instance.received_at)


def _stores(store: BlobStore, instances: int, size: int, cold: tuple[int, int]) -> list[StoreUsage]:
    """One entry per store; with tiers, the hot one holds what the cold one does not."""
    if isinstance(store, TieredStore):
        hot = _store(store.hot, instances - cold[0], size - cold[1])
        return [hot, _store(store.cold, cold[0], cold[1])]
    return [_store(store, instances, size)]


def _store(store: BlobStore, instances: int, size: int) -> StoreUsage:
    if isinstance(store, FileSystemStore):
        return StoreUsage("filesystem", str(store.root), instances, size, _space(store.root))
    location = repr(store).removeprefix("S3Store(").removesuffix(")")
    return StoreUsage("s3", location, instances, size, None)


def last_check(audit: AuditTrail) -> LastCheck | None:
    """The newest ``pacs check`` result recorded in the audit trail."""
    # The filter also matches actions that start with "integrity-check-": keep the exact one.
    found = audit.events(AuditFilter(action=CHECK_ACTION), limit=20, newest_first=True)
    event = next((e for e in found if e.action == CHECK_ACTION), None)
    if event is None:
        return None
    try:
        summary = json.loads(event.detail) if event.detail else {}
    except ValueError:
        summary = {"detail": event.detail}
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)  # SQLite: naive UTC
    return LastCheck(at, event.actor, event.outcome == "success", event.outcome, summary)


def usage(
    sessions: sessionmaker[Session],
    store: BlobStore,
    data_dir: Path,
    audit: AuditTrail,
    cold: tuple[int, int] = (0, 0),
) -> Usage:
    """Instances and bytes per store (``cold``: instances and bytes in the cold tier) and per
    modality and month, free space, last check."""
    with sessions() as session:
        month = _month(session)
        rows = session.execute(
            select(Series.modality, month, func.count(), func.coalesce(func.sum(Instance.size), 0))
            .join(Series, Instance.series_pk == Series.pk)
            .group_by(Series.modality, month)
            .order_by(month.desc(), Series.modality)
        ).all()
    months = [MonthUsage(modality or "", str(m), int(n), int(b)) for modality, m, n, b in rows]
    total_instances = sum(m.instances for m in months)
    total_bytes = sum(m.bytes for m in months)
    return Usage(
        stores=_stores(store, total_instances, total_bytes, cold),
        by_modality_month=months,
        data_dir=str(data_dir),
        data_dir_space=_space(data_dir),
        last_check=last_check(audit),
    )


def check_summary(report: dict[str, Any]) -> str:
    """What an integrity-check record keeps of a ``pacs check`` report: counts, not keys."""
    counts = {
        name: (len(value) if isinstance(value, list) else value)
        for name, value in report.items()
        if name != "consistent"
    }
    problems = {name: keys[:5] for name, keys in report.items() if isinstance(keys, list) and keys}
    return json.dumps({"counts": counts, "examples": problems}, sort_keys=True)[:4000]
