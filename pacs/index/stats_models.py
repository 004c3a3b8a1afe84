"""The statistics' summary of the instance table: counts and bytes per series, quarter hour, AE.

A year's statistics over a million instance rows cost 0.5 to 4 s on
PostgreSQL (an index-only scan of every row, then a hash join to the series);
the same reports read from this summary, one row per series, 15-minute slot
of arrival and sending AE (tens of thousands of rows for a million
instances), take milliseconds. Modality, study, referring physician and
institution are not copied here: they are read from the series and study rows
at query time, so a correction of the modality, a series moved to another
study or a patient merge is seen at once, with nothing to maintain.

Database triggers on ``instance`` (migration 0020) append a signed delta for
every insert, delete and change of series, arrival time, AE or size, whatever
path made it (ingest, deletion, purge, compression, a series split, an
administrator's SQL): ``stats_delta`` is append-only, so concurrent ingests
never wait on one summary row. :mod:`pacs.stats.summary` folds the deltas into
``stats_series_slot`` on the scheduler's leader and before a report reads it,
so an answer counts every instance committed before it.

A slot is ``floor(epoch seconds / 900)`` in UTC: every time zone's offset is
a whole number of quarter hours, so a hospital's local day is a range of slots
whatever ``stats_timezone`` says, and changing it rebuilds nothing.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pacs.index.models import Base

SLOT_SECONDS = 900


class StatsSeriesSlot(Base):
    __tablename__ = "stats_series_slot"
    __table_args__ = (Index("ix_stats_series_slot_slot", "slot"),)

    series_pk: Mapped[int] = mapped_column(Integer, primary_key=True)  # no foreign key: see above
    slot: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source_ae: Mapped[str] = mapped_column(String(16), primary_key=True)
    instances: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)


class StatsDelta(Base):
    """A signed change of a summary row, written by the triggers, folded and deleted later."""

    __tablename__ = "stats_delta"

    pk: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    series_pk: Mapped[int] = mapped_column(Integer)
    slot: Mapped[int] = mapped_column(BigInteger)
    source_ae: Mapped[str] = mapped_column(String(16))
    instances: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
