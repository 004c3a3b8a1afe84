"""Periods of a statistics report: local days, ISO weeks and months, and the SQL that buckets.

Timestamps are stored in UTC; a hospital counts by its own calendar day. The
database groups by local day (the one expression below per dialect, with the
zone's UTC offset in minutes); weeks and months are rolled up from days in
Python, so one portable GROUP BY serves every period.
"""

from __future__ import annotations

import enum
import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, literal_column
from sqlalchemy.sql.elements import ColumnClause


class Period(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


EPOCH = date(1970, 1, 1)


@functools.lru_cache(maxsize=8192)
def period_key(value: str | int | float, period: Period) -> str:
    """The label of the period holding a local day (``YYYY-MM-DD`` text, or days since
    1970-01-01 as PostgreSQL's expression gives): the day, ``2026-W49`` (ISO week) or
    ``2026-12``.

    Cached: a year's report by group calls it for every row (thousands) with a few
    hundred distinct days."""
    day = value if isinstance(value, str) else (EPOCH + timedelta(days=int(value))).isoformat()
    if period is Period.DAY:
        return day
    if period is Period.MONTH:
        return day[:7]
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def utc_offset_minutes(zone: str, at: datetime | None = None) -> int:
    """The zone's offset from UTC at ``at`` (now), in minutes (Vietnam: +420, no DST)."""
    offset = ZoneInfo(zone).utcoffset(at or datetime.now(UTC))
    return int((offset or timedelta()).total_seconds() // 60)


def local_day_sql(column: ColumnClause | ColumnElement, dialect: str, offset: int) -> ColumnElement:
    """SQL for the local calendar day of a UTC timestamp column.

    On PostgreSQL: days since 1970-01-01 as an integer, by float arithmetic on the
    epoch (to_char over a shifted timestamp cost three times as much per row at a
    million rows); on SQLite: the text YYYY-MM-DD.
    """
    minutes = int(offset)  # an int, never request text: safe to inline
    if dialect == "postgresql":
        seconds = func.date_part("epoch", column) + literal_column(str(minutes * 60))
        return func.floor(seconds / literal_column("86400"))
    return func.strftime("%Y-%m-%d", column, f"{minutes:+d} minutes")


def utc_bounds(start: date, end: date, offset: int) -> tuple[datetime, datetime]:
    """UTC instants of local midnight at ``start`` and after ``end`` (half-open range)."""
    shift = timedelta(minutes=offset)
    low = datetime.combine(start, time(), UTC) - shift
    high = datetime.combine(end + timedelta(days=1), time(), UTC) - shift
    return low, high
