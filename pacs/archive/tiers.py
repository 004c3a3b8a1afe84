"""Storage tiers: a study's blobs move from the hot filesystem to S3 once it is old (item 3).

With ``storage_tier_url`` and ``storage_tier_after_days`` set, the archive's
store is a :class:`~storage.tiered.TieredStore`; the scheduler's leader queues
one ``tier-study`` job per study first received more than that many days ago
that still has blobs in the hot tier, and the job moves them (copy, verify the
size, drop the hot copy) and records each in ``cold_blob``. Retrieval needs no
record: the store reads a blob from whichever tier holds it, during a move too.

A blob replaced or deleted while it moves (compression, a correction's copy, a
delete) is not recorded; its cold copy is removed by the delete or purge that
removes its key from both tiers, or adopted or removed by ``pacs check``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import Exists

from pacs.index.lifecycle_models import ColdBlob, InstanceOriginal
from pacs.index.models import Instance, Series, Study
from pacs.index.upsert import insert_ignore
from storage import BlobStore
from storage.tiered import TieredStore

TIER_JOB = "tier-study"


@dataclass
class TierReport:
    moved: int = 0
    bytes: int = 0
    skipped: int = 0  # replaced or deleted meanwhile

    def as_dict(self) -> dict[str, int]:
        return {"moved": self.moved, "bytes": self.bytes, "skipped": self.skipped}


class Tiers:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        after_days: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.store = store if isinstance(store, TieredStore) else None
        self.after = timedelta(days=after_days)
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.store is not None and self.after > timedelta(0)

    def _hot_blobs_of(self, study_pk: Any) -> Exists:
        return (
            exists()
            .where(Series.study_pk == study_pk, Instance.series_pk == Series.pk)
            .where(~exists().where(ColdBlob.blob_key == Instance.blob_key))
        )

    def due_studies(self, limit: int = 1000) -> list[str]:
        """Studies first received before the tier's age with blobs not moved yet."""
        before = self.clock() - self.after
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(Study.study_uid)
                    .where(Study.created_at < before, self._hot_blobs_of(Study.pk))
                    .limit(limit)
                )
            )

    def _keys(self, study_uid: str) -> list[str]:
        """The study's instance blobs and objects kept as received, not moved yet."""
        with self.sessions() as session:
            of_study = (
                select(Instance.pk)
                .join(Series, Series.pk == Instance.series_pk)
                .join(Study, Study.pk == Series.study_pk)
                .where(Study.study_uid == study_uid)
            )
            current = select(Instance.blob_key).where(Instance.pk.in_(of_study))
            kept = (
                select(InstanceOriginal.blob_key)
                .join(Instance, Instance.sop_instance_uid == InstanceOriginal.sop_instance_uid)
                .where(Instance.pk.in_(of_study))
            )
            moved = select(ColdBlob.blob_key)
            return sorted(
                set(session.scalars(current.where(Instance.blob_key.not_in(moved))))
                | set(session.scalars(kept.where(InstanceOriginal.blob_key.not_in(moved))))
            )

    def move_study(self, study_uid: str) -> TierReport:
        """Move the study's hot blobs to the cold tier (idempotent: a job may run twice)."""
        report = TierReport()
        if self.store is None:
            return report
        for key in self._keys(study_uid):
            copied = self.store.demote(key) or self.store.cold.stat(key)
            if copied is None:  # in neither tier: deleted meanwhile
                report.skipped += 1
                continue
            with self.sessions.begin() as session:
                referenced = session.scalar(
                    select(
                        or_(
                            exists().where(Instance.blob_key == key),
                            exists().where(InstanceOriginal.blob_key == key),
                        )
                    )
                )
                if referenced:
                    connection = session.connection()
                    connection.execute(
                        insert_ignore(connection, ColdBlob, ["blob_key"]).values(
                            blob_key=key, size=copied.size, moved_at=self.clock()
                        )
                    )
            if referenced:
                report.moved += 1
                report.bytes += copied.size
            else:
                report.skipped += 1
        return report

    def cold_usage(self) -> tuple[int, int]:
        """Instances whose blob is in the cold tier, and their bytes."""
        with self.sessions() as session:
            count, size = session.execute(
                select(func.count(), func.coalesce(func.sum(Instance.size), 0)).join(
                    ColdBlob, ColdBlob.blob_key == Instance.blob_key
                )
            ).one()
        return int(count), int(size)
