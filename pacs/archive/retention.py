"""Retention rules: how many years a study is kept, by modality, and the purge list (issue 20
item 3).

The law on medical records sets how long imaging must be kept (e.g. 10 years for
most records); past that, a hospital may free the storage, but nothing leaves the
archive without a person deciding. So the rule (setting ``retention_years``,
modality -> years, ``"*"`` for any other; empty: keep everything) only *proposes*:
:meth:`Retention.candidates` lists the studies whose age at acquisition passed their
rule, leaving out studies under a legal hold; an administrator approves some of
them, and each approved study goes through the ordinary audited delete (soft
delete, purged ``delete_purge_after_hours`` later by the lifecycle path), after
its eligibility and hold are checked again.

A study's age counts from its Study Date (the acquisition), or from its first
arrival when the date is missing; a study of several modalities is kept for the
longest of their rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pacs.archive.errors import LegalHoldActive, NotFound
from pacs.auth.principal import Principal
from pacs.index.lifecycle_models import LegalHold
from pacs.index.models import Instance, Patient, Series, Study


@dataclass(frozen=True)
class Candidate:
    study_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    modalities: list[str]
    keep_years: float
    instances: int
    size: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _years_before(today: date, years: float) -> date:
    whole = int(years)
    days = round((years - whole) * 365.25)
    try:
        shifted = today.replace(year=today.year - whole)
    except ValueError:  # 29 February
        shifted = today.replace(year=today.year - whole, day=28)
    return date.fromordinal(shifted.toordinal() - days)


class Retention:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        rules: Mapping[str, float],
        delete: Callable[..., Any],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.rules = {k.upper(): float(v) for k, v in rules.items()}
        self._delete = delete
        self.clock = clock

    def keep_years(self, modalities: list[str]) -> float | None:
        """The longest rule among the modalities (``*`` for the unnamed); None: keep forever."""
        years = [self.rules.get(m.upper(), self.rules.get("*")) for m in modalities or [""]]
        if any(y is None for y in years):
            return None
        return max(y for y in years if y is not None)

    def candidates(self, limit: int = 500, *, include_held: bool = False) -> list[Candidate]:
        """Studies past their rule and (unless ``include_held``) not under a legal hold,
        oldest first."""
        if not self.rules:
            return []
        today = self.clock().date()
        oldest_allowed = _years_before(today, min(self.rules.values())).strftime("%Y%m%d")
        with self.sessions() as session:
            held = set(session.scalars(select(LegalHold.study_uid)))
            rows = session.execute(
                select(
                    Study.pk,
                    Study.study_uid,
                    Study.study_date,
                    Study.created_at,
                    Patient.patient_id,
                    Patient.name,
                )
                .join(Patient, Study.patient_pk == Patient.pk)
                .where(
                    (Study.study_date < oldest_allowed)
                    | ((Study.study_date == "") & (Study.created_at < self._cutoff(oldest_allowed)))
                )
                .order_by(Study.study_date, Study.pk)
            ).all()
            details = self._series_of(session, [r.pk for r in rows])
        found: list[Candidate] = []
        for row in rows:
            if row.study_uid in held and not include_held:
                continue
            modalities, instances, size = details.get(row.pk, ([], 0, 0))
            years = self.keep_years(modalities)
            if years is None:
                continue
            acquired = row.study_date or row.created_at.strftime("%Y%m%d")
            if acquired >= _years_before(today, years).strftime("%Y%m%d"):
                continue
            found.append(
                Candidate(
                    row.study_uid,
                    row.patient_id,
                    row.name,
                    row.study_date,
                    modalities,
                    years,
                    instances,
                    size,
                )
            )
            if len(found) >= limit:
                break
        return found

    @staticmethod
    def _cutoff(yyyymmdd: str) -> datetime:
        return datetime.strptime(yyyymmdd, "%Y%m%d").replace(tzinfo=UTC)

    @staticmethod
    def _series_of(session: Session, pks: list[int]) -> dict[int, tuple[list[str], int, int]]:
        modalities: defaultdict[int, set[str]] = defaultdict(set)
        counts: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0])
        for start in range(0, len(pks), 500):
            chunk = pks[start : start + 500]
            for study_pk, modality in session.execute(
                select(Series.study_pk, Series.modality).where(Series.study_pk.in_(chunk))
            ):
                modalities[study_pk].add(modality)
            for study_pk, size in session.execute(
                select(Series.study_pk, Instance.size)
                .join(Instance, Instance.series_pk == Series.pk)
                .where(Series.study_pk.in_(chunk))
            ):
                counts[study_pk][0] += 1
                counts[study_pk][1] += int(size)
        return {pk: (sorted(modalities[pk]), *counts[pk]) for pk in pks}  # type: ignore[misc]

    def approve(self, principal: Principal, study_uids: list[str], reason: str) -> dict[str, str]:
        """Delete each approved study still eligible (soft delete, audited, purged later).

        Returns study -> ``deleted``, ``held`` (a legal hold), ``not-eligible``
        (not past its rule now) or ``not-found``.
        """
        eligible = {c.study_uid for c in self.candidates(limit=1_000_000, include_held=True)}
        outcome: dict[str, str] = {}
        for study_uid in study_uids:
            if study_uid not in eligible:
                outcome[study_uid] = "not-eligible"
                continue
            try:
                self._delete(principal, study_uid, reason=f"retention: {reason}")
                outcome[study_uid] = "deleted"
            except LegalHoldActive:
                outcome[study_uid] = "held"
            except NotFound:
                outcome[study_uid] = "not-found"
        return outcome
