"""Periods of a statistics report: local days, ISO weeks and months, and the SQL that buckets.

Timestamps are stored in UTC; a hospital counts by its own calendar day. The
database groups by local day (the one expression below per dialect, with the
zone's UTC offset in minutes); weeks and months are rolled up from days in
Python, so one portable GROUP BY serves every period.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, literal_column
from sqlalchemy.sql.elements import ColumnClause


class Period(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def period_key(day: str, period: Period) -> str:
    """The label of the period holding local day ``day`` (YYYY-MM-DD): the day, ``2026-W49``
    (ISO week) or ``2026-12``."""
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
    """SQL for the local calendar day (text YYYY-MM-DD) of a UTC timestamp column."""
    minutes = int(offset)  # an int, never request text: safe to inline
    if dialect == "postgresql":
        shifted = func.timezone("UTC", column) + literal_column(f"interval '{minutes} minutes'")
        return func.to_char(shifted, "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column, f"{minutes:+d} minutes")


def utc_bounds(start: date, end: date, offset: int) -> tuple[datetime, datetime]:
    """UTC instants of local midnight at ``start`` and after ``end`` (half-open range)."""
    shift = timedelta(minutes=offset)
    low = datetime.combine(start, time(), UTC) - shift
    high = datetime.combine(end + timedelta(days=1), time(), UTC) - shift
    return low, high
