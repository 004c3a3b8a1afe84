"""The statistics' summary follows every change of the instance rows (SQLite, PostgreSQL).

The reports read a summary kept by database triggers (pacs.stats.summary). After
each change that moves counts (ingest, a station fixed by SQL, a modality
changed, a referring physician corrected, a series moved to another study, a
patient merge, deletes of an instance, a series and a study, a size changed by
compression), the reports are compared with counts computed here in Python from
the instance, series and study rows, once with the deltas pending and once after
the fold, and the folded summary must equal a GROUP BY of the instance table.
"""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from pydicom.uid import generate_uid
from sqlalchemy import func, select, update

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.archive.patients import PatientRef
from pacs.auth.principal import Kind, Principal, Role
from pacs.index.models import Instance, Series, Study
from pacs.index.stats_models import StatsDelta, StatsSeriesSlot
from pacs.stats import GroupBy, Period, Report, StatsQuery
from tests.dicom_factory import ct_slice, to_bytes

ADMIN = Principal(Kind.USER, "admin", Role.ADMIN)
VN = timedelta(hours=7)
START, END = date(2026, 10, 1), date(2026, 12, 31)
GROUPS = (GroupBy.MODALITY, GroupBy.STATION, GroupBy.REFERRING, GroupBy.NONE)


def _ingest(archive: Archive, *, modality: str, station: str, referring: str, patient: str,
            at: datetime, count: int) -> tuple[str, str]:  # fmt: skip
    study, series = generate_uid(), generate_uid()
    for i in range(count):
        ds = ct_slice(study, series, index=i, size=8 + i, seed=i, patient_id=patient)
        ds.Modality = modality
        ds.ReferringPhysicianName = referring
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="dimse", calling_ae=station))
    with archive.sessions.begin() as session:
        pk = session.scalar(select(Study.pk).where(Study.study_uid == study))
        session.execute(update(Study).where(Study.pk == pk).values(created_at=at))
        series_pks = select(Series.pk).where(Series.study_pk == pk).scalar_subquery()
        session.execute(
            update(Instance).where(Instance.series_pk.in_(series_pks)).values(received_at=at)
        )
    return study, series


def _expected(archive: Archive, by: GroupBy) -> dict[tuple[str, str], tuple[int, int]]:
    """(local day, group) -> (instances, bytes), from the rows as they are now."""
    with archive.sessions() as session:
        rows = session.execute(
            select(
                Instance.received_at,
                Instance.size,
                Instance.source_ae,
                Series.modality,
                Study.referring_physician_name,
            )
            .join(Series, Series.pk == Instance.series_pk)
            .join(Study, Study.pk == Series.study_pk)
        ).all()
    counts: Counter[tuple[str, str]] = Counter()
    sizes: Counter[tuple[str, str]] = Counter()
    for at, size, station, modality, referring in rows:
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        day = (at.astimezone(UTC) + VN).date()
        if not START <= day <= END:
            continue
        group = {
            GroupBy.MODALITY: modality,
            GroupBy.STATION: station,
            GroupBy.REFERRING: referring,
            GroupBy.NONE: "",
        }[by]
        counts[(day.isoformat(), group or "")] += 1
        sizes[(day.isoformat(), group or "")] += size
    return {key: (n, sizes[key]) for key, n in counts.items()}


def _reported(archive: Archive, by: GroupBy) -> dict[tuple[str, str], tuple[int, int]]:
    result = archive.stats.run(StatsQuery(Report.VOLUME, START, END, Period.DAY, by))
    # A row may count a study and no instance: a series moved into an older study counts
    # the study on its own first day, its instances on theirs.
    return {
        (r["period"], r["group"]): (r["instances"], r["bytes"])
        for r in result.rows
        if r["instances"]
    }


def _storage_totals(archive: Archive) -> tuple[int, int]:
    totals = archive.stats.run(StatsQuery(Report.STORAGE, START, END)).totals
    return totals["instances"], totals["bytes"]


def _instance_totals(archive: Archive) -> tuple[int, int]:
    with archive.sessions() as session:
        n, size = session.execute(
            select(func.count(), func.coalesce(func.sum(Instance.size), 0))
        ).one()
    return int(n), int(size)


def _check(archive: Archive, what: str) -> None:
    """Reports equal the independent counts with deltas pending, and again after the fold."""
    for stage in ("pending", "folded"):
        if stage == "folded":
            archive.stats.fold()
        for by in GROUPS:
            assert _reported(archive, by) == _expected(archive, by), (what, stage, by)
        assert _storage_totals(archive) == _instance_totals(archive), (what, stage)
    with archive.sessions() as session:
        assert session.scalar(select(func.count()).select_from(StatsDelta)) == 0
        folded = {
            (r.series_pk, r.slot, r.source_ae): (r.instances, r.bytes)
            for r in session.scalars(select(StatsSeriesSlot))
        }
        rows = session.execute(select(Instance.series_pk, Instance.received_at,
                                      Instance.source_ae, Instance.size)).all()  # fmt: skip
    grouped: dict[tuple[int, int, str], list[int]] = {}
    for series_pk, at, station, size in rows:
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        cell = grouped.setdefault((series_pk, int(at.timestamp()) // 900, station), [0, 0])
        cell[0] += 1
        cell[1] += size
    assert folded == {k: (n, b) for k, (n, b) in grouped.items()}, what


def test_the_summary_follows_every_change_of_the_instances(archive: Archive) -> None:
    evening = datetime(2026, 11, 3, 18, 30, tzinfo=UTC)  # 4 November in Hanoi
    ct, ct_series = _ingest(archive, modality="CT", station="CT_ROOM", referring="Trần^Bình",
                            patient="BN1", at=evening, count=3)  # fmt: skip
    mr, mr_series = _ingest(archive, modality="MR", station="MR_ROOM", referring="Lê^Cường",
                            patient="BN2", at=datetime(2026, 11, 20, 2, 0, tzinfo=UTC),
                            count=2)  # fmt: skip
    cr, _ = _ingest(archive, modality="CR", station="CT_ROOM", referring="Lê^Cường",
                    patient="BN3", at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC), count=2)  # fmt: skip
    _check(archive, "ingest")
    assert _reported(archive, GroupBy.MODALITY)[("2026-11-04", "CT")][0] == 3

    # A sending AE fixed by an administrator's SQL: the instances move to the right station.
    with archive.sessions.begin() as session:
        session.execute(
            update(Instance)
            .where(Instance.series_pk == select(Series.pk).where(
                Series.series_uid == mr_series).scalar_subquery())
            .values(source_ae="MR_ROOM2")
        )  # fmt: skip
    _check(archive, "station changed")
    assert _reported(archive, GroupBy.STATION)[("2026-11-20", "MR_ROOM2")][0] == 2

    # A modality changed on the series row: read at query time, nothing to maintain.
    with archive.sessions.begin() as session:
        session.execute(update(Series).where(Series.series_uid == ct_series).values(modality="PT"))
    _check(archive, "modality changed")
    assert ("2026-11-04", "CT") not in _reported(archive, GroupBy.MODALITY)

    # Corrections of the study and moves between studies and patients.
    archive.correct(ADMIN, cr, {"ReferringPhysicianName": "Phạm^An"}, "typo")
    _check(archive, "referring physician corrected")
    archive.move_series(ADMIN, mr, mr_series, "wrong study", target_study_uid=ct)
    _check(archive, "series moved")
    assert _reported(archive, GroupBy.REFERRING)[("2026-11-20", "Trần^Bình")][0] == 2
    archive.merge_patients(ADMIN, PatientRef("BN3"), PatientRef("BN1"), "same person")
    _check(archive, "patients merged")

    # Compression or any rewrite changes an instance's size: bytes follow.
    with archive.sessions.begin() as session:
        session.execute(update(Instance).where(Instance.pk == session.scalar(
            select(func.min(Instance.pk)))).values(size=Instance.size // 2))  # fmt: skip
    _check(archive, "size changed")

    # Deletes: one instance, a series, a study.
    with archive.sessions() as session:
        sop = session.scalar(
            select(Instance.sop_instance_uid)
            .join(Series, Series.pk == Instance.series_pk)
            .where(Series.series_uid == ct_series)
            .limit(1)
        )
    archive.delete(ADMIN, ct, ct_series, sop, reason="wrong image")
    _check(archive, "instance deleted")
    archive.delete(ADMIN, ct, mr_series, reason="wrong series")
    _check(archive, "series deleted")
    archive.delete(ADMIN, cr, reason="duplicate study")
    _check(archive, "study deleted")
    assert sum(n for n, _ in _reported(archive, GroupBy.NONE).values()) == 2  # 3 CT - 1
