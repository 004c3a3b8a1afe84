"""Imaging statistics from the index: volumes, shares, storage, sources, turnaround.

What the director and the provincial health department ask for every month
(studies and instances per period by modality, station, referring physician,
institution; links given to patients and opened; storage; who sends most;
how long from order to images to first reading to signed report), computed
by the database at request time, so nobody compiles them by hand and every
node answers the same.

Definitions (also in the README):

- a study counts on the local day its first instance arrived (``study.created_at``),
  an instance on the day it arrived (``instance.received_at``); a study with two
  modalities counts once under each; instances and bytes are read from the
  summary that triggers keep of the instance table (:mod:`pacs.stats.summary`),
  modality, study and physician from the series and study rows as they are now;
- *station* is the sending AE title (``instance.source_ae``; empty for STOW and
  import), *referring* the study's Referring Physician's Name, *institution* its
  Institution Name;
- turnaround of a study: ordered (the matched order's ``created_at``) -> acquired
  (first instance) -> first opened (first successful WADO access by a logged-in
  person in the audit trail) -> signed (first ``signed_at`` of its reports, when
  the reports table exists). Negative spans (an order entered after the images)
  are left out. Medians are the middle value (mean of the two middle ones), p90
  the nearest-rank 90th percentile.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    column,
    func,
    inspect,
    literal_column,
    select,
    table,
)
from sqlalchemy.orm import Session, sessionmaker

from pacs.audit.models import AuditEvent
from pacs.auth.models import ShareGrant
from pacs.index.lifecycle_models import InstanceOriginal
from pacs.index.models import Series, Study
from pacs.index.stats_models import StatsSeriesSlot
from pacs.index.workflow_models import ImagingOrder, StudyOrder
from pacs.stats import summary
from pacs.stats.periods import Period, local_day_sql, period_key, utc_bounds
from pacs.stats.summary import local_day, slot_of


class Report(enum.StrEnum):
    VOLUME = "volume"
    SHARES = "shares"
    STORAGE = "storage"
    SOURCES = "sources"
    TURNAROUND = "turnaround"


class GroupBy(enum.StrEnum):
    NONE = "none"
    MODALITY = "modality"
    STATION = "station"
    REFERRING = "referring"
    INSTITUTION = "institution"


# Columns of each report's rows, in order (the CSV/XLSX header; translated by the door).
COLUMNS: dict[Report, tuple[str, ...]] = {
    Report.VOLUME: ("period", "group", "studies", "instances", "bytes"),
    Report.SHARES: ("period", "links_made", "links_opened"),
    Report.STORAGE: ("period", "instances_added", "bytes_added", "bytes_total"),
    Report.SOURCES: ("source", "studies", "instances", "bytes"),
    Report.TURNAROUND: ("measure", "studies", "median_minutes", "p90_minutes"),
}

MAX_DAYS = 3700  # about ten years: bounds the rows a report can produce


class StatsError(ValueError):
    """A request the statistics cannot answer (bad range): a 400 at the door."""


@dataclass(frozen=True)
class StatsQuery:
    report: Report
    start: date
    end: date
    period: Period = Period.DAY
    group_by: GroupBy = GroupBy.NONE
    modality: str = ""  # only series of this modality (volume, sources)
    limit: int = 20  # top sources

    def check(self) -> None:
        if self.end < self.start:
            raise StatsError("the range ends before it starts")
        if (self.end - self.start).days > MAX_DAYS:
            raise StatsError(f"a range spans at most {MAX_DAYS} days")


@dataclass(frozen=True)
class StatsResult:
    query: StatsQuery
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    totals: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        q = self.query
        return {
            "report": str(q.report),
            "from": q.start.isoformat(),
            "to": q.end.isoformat(),
            "period": str(q.period),
            "by": str(q.group_by),
            "modality": q.modality,
            "columns": list(self.columns),
            "rows": self.rows,
            "totals": self.totals,
        }


class Statistics:
    """Answers :class:`StatsQuery` from the index (read-only; nothing is cached)."""

    def __init__(self, sessions: sessionmaker[Session], engine: Engine, offset: int) -> None:
        self._sessions = sessions
        self._engine = engine
        self._dialect = engine.dialect.name
        self._offset = offset  # the hospital's UTC offset in minutes

    def fold(self) -> int:
        """Fold the summary's pending deltas (a periodic task on the leader); deltas moved."""
        return summary.fold(self._engine)

    def run(self, q: StatsQuery) -> StatsResult:
        q.check()
        if q.report in (Report.VOLUME, Report.STORAGE, Report.SOURCES):
            summary.fold(self._engine)  # a minute of deltas at most: exact, and cheap
        handler = {
            Report.VOLUME: self._volume,
            Report.SHARES: self._shares,
            Report.STORAGE: self._storage,
            Report.SOURCES: self._sources,
            Report.TURNAROUND: self._turnaround,
        }[q.report]
        rows, totals = handler(q)
        return StatsResult(q, COLUMNS[q.report], rows, totals)

    # -- helpers -----------------------------------------------------------------------------

    def _day(self, col: Any) -> ColumnElement[Any]:
        return local_day_sql(col, self._dialect, self._offset)

    def _bounds(self, q: StatsQuery) -> tuple[datetime, datetime]:
        return utc_bounds(q.start, q.end, self._offset)

    def _rows(self, stmt: Any) -> list[Any]:
        with self._sessions() as session:
            return list(session.execute(stmt).all())

    # -- volume ------------------------------------------------------------------------------

    def _slot_range(self, q: StatsQuery) -> tuple[int, int]:
        """The summary's slots of the query's local days (half-open)."""
        low, high = self._bounds(q)
        return slot_of(low.timestamp()), slot_of(high.timestamp())

    def _volume(self, q: StatsQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        low, high = self._bounds(q)
        first, last = self._slot_range(q)
        arrived = StatsSeriesSlot
        group: Any = {
            GroupBy.NONE: literal_column("''"),
            GroupBy.MODALITY: Series.modality,
            GroupBy.STATION: arrived.source_ae,
            GroupBy.REFERRING: Study.referring_physician_name,
            GroupBy.INSTITUTION: Study.institution_name,
        }[q.group_by].label("grp")
        # PostgreSQL refuses a constant in GROUP BY: without a grouping, days only.
        grouped = () if q.group_by is GroupBy.NONE else (group,)
        day = local_day(arrived.slot, self._offset).label("day")
        instances = (
            select(day, group, func.sum(arrived.instances), func.sum(arrived.bytes))
            .select_from(arrived)
            .where(arrived.slot >= first, arrived.slot < last)
            .group_by(day, *grouped)
        )
        # Series and study rows are read now: a corrected modality or a moved series counts
        # where it is, not where it was when its instances arrived.
        if q.group_by in (GroupBy.MODALITY, GroupBy.REFERRING, GroupBy.INSTITUTION) or q.modality:
            instances = instances.join(Series, arrived.series_pk == Series.pk)
        if q.group_by in (GroupBy.REFERRING, GroupBy.INSTITUTION):
            instances = instances.join(Study, Series.study_pk == Study.pk)
        if q.modality:
            instances = instances.where(Series.modality == q.modality)
        cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for d, g, n, size in self._rows(instances):
            cell = cells[(period_key(d, q.period), g or "")]
            cell[1] += int(n)
            cell[2] += int(size)
        for d, g, n in self._rows(self._studies(q, low, high)):
            cells[(period_key(d, q.period), g or "")][0] += int(n)
        rows: list[dict[str, Any]] = [
            {"period": p, "group": g, "studies": s, "instances": i, "bytes": b}
            for (p, g), (s, i, b) in sorted(cells.items())
        ]
        totals = {
            "studies": self._distinct_studies(q, low, high),
            "instances": sum(r["instances"] for r in rows),
            "bytes": sum(r["bytes"] for r in rows),
        }
        return rows, totals

    def _studies(self, q: StatsQuery, low: datetime, high: datetime) -> Any:
        """Studies per local day of first arrival and group (a study in two groups counts in
        each; a station: the studies with instances from it).

        Each (day, group, study) is made distinct first and then counted: a hash
        aggregate, where ``count(DISTINCT)`` sorted every joined row.
        """
        group: Any = {
            GroupBy.NONE: literal_column("''"),
            GroupBy.MODALITY: Series.modality,
            GroupBy.STATION: StatsSeriesSlot.source_ae,
            GroupBy.REFERRING: Study.referring_physician_name,
            GroupBy.INSTITUTION: Study.institution_name,
        }[q.group_by].label("grp")
        day = self._day(Study.created_at).label("day")
        pairs = (
            select(day, group, Study.pk)
            .where(Study.created_at >= low, Study.created_at < high)
            .distinct()
        )
        if q.group_by in (GroupBy.MODALITY, GroupBy.STATION) or q.modality:
            pairs = pairs.join(Series, Series.study_pk == Study.pk)
        if q.group_by is GroupBy.STATION:
            pairs = pairs.join(StatsSeriesSlot, StatsSeriesSlot.series_pk == Series.pk)
        if q.modality:
            pairs = pairs.where(Series.modality == q.modality)
        held = pairs.subquery("held")
        return select(held.c.day, held.c.grp, func.count()).group_by(held.c.day, held.c.grp)

    def _distinct_studies(self, q: StatsQuery, low: datetime, high: datetime) -> int:
        """Studies first received in the range (a study in two groups counts once here)."""
        stmt = select(func.count(func.distinct(Study.pk))).where(
            Study.created_at >= low, Study.created_at < high
        )
        if q.modality:
            stmt = stmt.join(Series, Series.study_pk == Study.pk).where(
                Series.modality == q.modality
            )
        with self._sessions() as session:
            return int(session.scalar(stmt) or 0)

    # -- shares ------------------------------------------------------------------------------

    def _shares(self, q: StatsQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        low, high = self._bounds(q)
        made_day = self._day(ShareGrant.created_at).label("day")
        made = (
            select(made_day, func.count())
            .where(ShareGrant.created_at >= low, ShareGrant.created_at < high)
            .group_by(made_day)
        )
        open_day = self._day(AuditEvent.at).label("day")
        opened = (
            select(open_day, func.count())
            .where(
                AuditEvent.action == "share-open",
                AuditEvent.outcome == "success",
                AuditEvent.at >= low,
                AuditEvent.at < high,
            )
            .group_by(open_day)
        )
        cells: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for d, n in self._rows(made):
            cells[period_key(d, q.period)][0] += int(n)
        for d, n in self._rows(opened):
            cells[period_key(d, q.period)][1] += int(n)
        rows: list[dict[str, Any]] = [
            {"period": p, "links_made": m, "links_opened": o} for p, (m, o) in sorted(cells.items())
        ]
        totals = {
            "links_made": sum(r["links_made"] for r in rows),
            "links_opened": sum(r["links_opened"] for r in rows),
        }
        return rows, totals

    # -- storage -----------------------------------------------------------------------------

    def _storage(self, q: StatsQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        first, last = self._slot_range(q)
        arrived = StatsSeriesSlot
        day = local_day(arrived.slot, self._offset).label("day")
        added = (
            select(day, func.sum(arrived.instances), func.sum(arrived.bytes))
            .where(arrived.slot >= first, arrived.slot < last)
            .group_by(day)
        )
        with self._sessions() as session:
            before = int(
                session.scalar(
                    select(func.coalesce(func.sum(arrived.bytes), 0)).where(arrived.slot < first)
                )
                or 0
            )
            live_count, live_bytes = session.execute(
                select(
                    func.coalesce(func.sum(arrived.instances), 0),
                    func.coalesce(func.sum(arrived.bytes), 0),
                )
            ).one()
            originals = int(
                session.scalar(select(func.coalesce(func.sum(InstanceOriginal.size), 0))) or 0
            )
        cells: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for d, n, added_bytes in self._rows(added):
            cell = cells[period_key(d, q.period)]
            cell[0] += int(n)
            cell[1] += int(added_bytes)
        rows: list[dict[str, Any]] = []
        running = before
        for p, (n, added_bytes) in sorted(cells.items()):
            running += added_bytes
            rows.append(
                {
                    "period": p,
                    "instances_added": n,
                    "bytes_added": added_bytes,
                    "bytes_total": running,
                }
            )
        totals = {
            "instances": int(live_count),
            "bytes": int(live_bytes),
            "original_bytes": originals,  # received objects kept beside corrected copies
            "bytes_added": running - before,
        }
        return rows, totals

    # -- top sources -------------------------------------------------------------------------

    def _sources(self, q: StatsQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        first, last = self._slot_range(q)
        arrived = StatsSeriesSlot
        count = func.sum(arrived.instances)
        stmt = (
            select(
                arrived.source_ae,
                func.count(func.distinct(Series.study_pk)),
                count,
                func.sum(arrived.bytes),
            )
            .join(Series, arrived.series_pk == Series.pk)
            .where(arrived.slot >= first, arrived.slot < last)
            .group_by(arrived.source_ae)
            .order_by(count.desc(), arrived.source_ae)
            .limit(max(1, min(q.limit, 1000)))
        )
        if q.modality:
            stmt = stmt.where(Series.modality == q.modality)
        rows = [
            {"source": s or "", "studies": int(st), "instances": int(n), "bytes": int(b)}
            for s, st, n, b in self._rows(stmt)
        ]
        return rows, {"sources": len(rows)}

    # -- turnaround --------------------------------------------------------------------------

    def _turnaround(self, q: StatsQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        low, high = self._bounds(q)
        in_range = and_(Study.created_at >= low, Study.created_at < high)
        ordered = (
            select(Study.created_at, ImagingOrder.created_at)
            .join(StudyOrder, StudyOrder.study_uid == Study.study_uid)
            .join(ImagingOrder, ImagingOrder.pk == StudyOrder.order_pk)
            .where(in_range)
        )
        first_open = (
            select(AuditEvent.study_uid, func.min(AuditEvent.at).label("at"))
            .where(
                AuditEvent.action == "wado",
                AuditEvent.outcome == "success",
                AuditEvent.actor_kind == "user",
                AuditEvent.at >= low,
            )
            .group_by(AuditEvent.study_uid)
            .subquery()
        )
        opened = select(Study.created_at, first_open.c.at).join(
            first_open, first_open.c.study_uid == Study.study_uid
        )
        measures: list[tuple[str, Iterable[tuple[Any, Any]]]] = [
            ("order_to_acquired", [(b, a) for a, b in self._rows(ordered)]),
            ("acquired_to_opened", self._rows(opened.where(in_range))),
        ]
        if inspect(self._engine).has_table("report"):
            report = table("report", column("study_uid"), column("signed_at"))
            first_signed = (
                select(report.c.study_uid, func.min(report.c.signed_at).label("at"))
                .where(report.c.signed_at.is_not(None))
                .group_by(report.c.study_uid)
                .subquery()
            )
            signed = select(Study.created_at, first_signed.c.at).join(
                first_signed, first_signed.c.study_uid == Study.study_uid
            )
            measures.append(("acquired_to_signed", self._rows(signed.where(in_range))))
        rows = [_spread(name, pairs) for name, pairs in measures]
        return rows, {"reports_available": len(measures) == 3}


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite through a raw table() column: ISO text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _spread(name: str, pairs: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    """Median and p90 of the minutes from each pair's first to second instant."""
    minutes = sorted(
        m
        for start, end in pairs
        if start is not None and end is not None
        if (m := (_aware(end) - _aware(start)).total_seconds() / 60) >= 0
    )
    return {
        "measure": name,
        "studies": len(minutes),
        "median_minutes": round(statistics.median(minutes), 1) if minutes else None,
        "p90_minutes": round(minutes[math.ceil(0.9 * len(minutes)) - 1], 1) if minutes else None,
    }
