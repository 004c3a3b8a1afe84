"""The reading worklist: what waits to be read, most urgent first, and who is reading what.

A radiologist's day starts here (issue 17 item 3): STAT studies on top, then what
nobody has read yet, oldest first, so that nothing waits at the bottom of a list.
The candidates are the studies of a date window found by the one matching engine
(the same filters, visibility and corrections as QIDO and C-FIND); each is then
given its reading state from the reports, the claims and the order it belongs to.
A district hospital's window holds hundreds of studies, so the state is joined and
the list sorted in Python over the whole window (at most ``MAX_CANDIDATES``, and the
answer says when the window held more), which keeps the engine untouched.

A claim says "I am reading this": a second radiologist's claim is refused (409)
while the first holds it, unless an administrator takes it over. A claim lapses
after ``claim_minutes`` (a reader who walked away does not hold a study for
ever); claiming again renews it; signing does not need it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pacs.audit import AuditTrail
from pacs.auth.principal import Principal, Role
from pacs.index.reading_models import ReadingClaim
from pacs.index.reports_models import Report
from pacs.index.workflow_models import ImagingOrder, StudyOrder
from pacs.query import Level, SearchResult

MAX_CANDIDATES = 5000
MAX_PRIORS = 200
RETURNED = (
    "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy",
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDescription",
    "ReferringPhysicianName", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
)  # fmt: skip
# The order of the list: priority first, then how far the reading has come.
PRIORITY_RANK = {"STAT": 0, "HIGH": 1, "ROUTINE": 2, "": 3}
STATUSES = ("unread", "in-progress", "draft", "awaiting-approval", "signed", "amended")
STATUS_RANK = {name: rank for rank, name in enumerate(STATUSES)}


class ClaimConflict(Exception):
    """Another radiologist holds the study; ``holder`` and ``expires_at`` say who and until when."""

    def __init__(self, holder: str, expires_at: datetime) -> None:
        super().__init__(f"{holder} is reading this study until {expires_at.isoformat()}")
        self.holder, self.expires_at = holder, expires_at


class NotClaimed(Exception):
    """Releasing a claim the caller does not hold."""


@dataclass(frozen=True)
class WorklistFilter:
    """What the reader asked for. ``date`` is a DICOM date or range (``YYYYMMDD-YYYYMMDD``)."""

    date: str = ""
    modality: str = ""
    status: frozenset[str] = frozenset()
    priority: frozenset[str] = frozenset()
    mine: bool = False  # claimed by me, or my drafts


@dataclass
class _State:
    status: str = "unread"
    report_id: int | None = None
    signed_at: datetime | None = None
    author: str = ""


class ReadingWorklist:
    """The worklist, the claims and the priors (facade attribute ``archive.reading``).

    ``search`` is the archive's matching engine (``Archive.search``).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditTrail,
        search: Any,
        claim_minutes: float = 60.0,
    ) -> None:
        self.sessions, self.audit, self._search = sessions, audit, search
        self.claim_minutes = claim_minutes

    # -- the list ---------------------------------------------------------------------

    def worklist(
        self, principal: Principal, wanted: WorklistFilter, limit: int, offset: int
    ) -> dict[str, Any]:
        """A page of the worklist in reading order, the total and whether the window was cut.

        Raises :class:`~pacs.query.QueryError` for a malformed date or modality.
        """
        result = self._candidates(wanted)
        uids = [_uid(item) for item in result.json()]
        states, priorities, claims = self._states(uids)
        now = datetime.now(UTC)
        items = []
        for study in result.json():
            uid = _uid(study)
            claim = claims.get(uid)
            state = states.get(uid, _State())
            if state.status == "unread" and claim is not None and claim.expires_at > now:
                state.status = "in-progress"
            item = {
                "study": study,
                "status": state.status,
                "priority": priorities.get(uid, ""),
                "report_id": state.report_id,
                "signed_at": state.signed_at.isoformat() if state.signed_at else None,
                "claimed_by": claim.username if claim and claim.expires_at > now else None,
                "claim_expires_at": (
                    claim.expires_at.isoformat() if claim and claim.expires_at > now else None
                ),
            }
            if _wanted(item, state, wanted, principal):
                items.append(item)
        page = _in_reading_order(items)[offset : offset + limit]
        self.audit.record(
            principal,
            "qido",  # a study query: same audit code and aggregation as the study list
            detail="reading worklist",
            patients=_patients(item["study"] for item in page),
        )
        return {
            "total": len(items),
            "offset": offset,
            "limit": limit,
            "truncated": result.truncated,
            "items": page,
        }

    def _candidates(self, wanted: WorklistFilter) -> SearchResult:
        window = wanted.date or _default_window()
        identifier = _identifier({"StudyDate": window, "ModalitiesInStudy": wanted.modality})
        found: SearchResult = self._search(Level.STUDY, identifier, limit=MAX_CANDIDATES)
        return found

    def _states(
        self, uids: list[str]
    ) -> tuple[dict[str, _State], dict[str, str], dict[str, ReadingClaim]]:
        """Each study's reading state, its order's priority and its claim, in three queries."""
        states: dict[str, _State] = {}
        priorities: dict[str, str] = {}
        claims: dict[str, ReadingClaim] = {}
        with self.sessions() as session:
            for chunk in _chunks(uids, 500):
                reports = session.scalars(
                    select(Report).where(Report.study_uid.in_(chunk)).order_by(Report.pk)
                )
                for report in reports:
                    _advance(states.setdefault(report.study_uid, _State()), report)
                orders = session.execute(
                    select(StudyOrder.study_uid, ImagingOrder.priority)
                    .join(ImagingOrder, ImagingOrder.pk == StudyOrder.order_pk)
                    .where(StudyOrder.study_uid.in_(chunk))
                )
                priorities.update({uid: (priority or "").upper() for uid, priority in orders})
                claims.update(
                    {
                        claim.study_uid: claim
                        for claim in session.scalars(
                            select(ReadingClaim).where(ReadingClaim.study_uid.in_(chunk))
                        )
                    }
                )
        for claim in claims.values():
            claim.expires_at = _aware(claim.expires_at)
        return states, priorities, claims

    # -- claims -----------------------------------------------------------------------

    def claim(
        self, principal: Principal, study_uid: str, take_over: bool = False
    ) -> dict[str, Any]:
        """Claim (or renew the claim on) ``study_uid`` for ``principal``; returns the claim.

        Raises :class:`ClaimConflict` when another radiologist holds it, unless
        ``take_over`` is asked by an administrator. The caller checks the study exists.
        """
        now = datetime.now(UTC)
        expires = now + timedelta(minutes=self.claim_minutes)
        for _attempt in range(3):  # two first claims at once: one insert wins, the other retries
            try:
                with self.sessions.begin() as session:
                    claim = session.get(ReadingClaim, study_uid, with_for_update=True)
                    if claim is None:
                        session.add(
                            ReadingClaim(
                                study_uid=study_uid,
                                username=principal.name,
                                claimed_at=now,
                                expires_at=expires,
                            )
                        )
                        taken_from = ""
                    else:
                        held = _aware(claim.expires_at) > now and claim.username != principal.name
                        if held and not (take_over and principal.role is Role.ADMIN):
                            raise ClaimConflict(claim.username, _aware(claim.expires_at))
                        taken_from = claim.username if held else ""
                        claim.username, claim.claimed_at, claim.expires_at = (
                            principal.name,
                            now,
                            expires,
                        )
                break
            except IntegrityError:
                continue
        else:
            raise ClaimConflict("another reader", now)
        detail = f"claimed until {expires.isoformat(timespec='seconds')}"
        if taken_from:
            detail += f", taken over from {taken_from}"
        self.audit.record(principal, "claim", study_uid=study_uid, detail=detail)
        return {
            "study_uid": study_uid,
            "claimed_by": principal.name,
            "expires_at": expires.isoformat(),
        }

    def release(self, principal: Principal, study_uid: str) -> None:
        """Give up ``principal``'s claim (an administrator may release anyone's).

        Raises :class:`NotClaimed` when the caller holds no claim on it.
        """
        with self.sessions.begin() as session:
            query = delete(ReadingClaim).where(ReadingClaim.study_uid == study_uid)
            if principal.role is not Role.ADMIN:
                query = query.where(ReadingClaim.username == principal.name)
            if session.execute(query).rowcount == 0:  # type: ignore[attr-defined]
                raise NotClaimed(study_uid)
        self.audit.record(principal, "claim", study_uid=study_uid, detail="released")

    # -- one study and its priors -------------------------------------------------------

    def study(self, study_uid: str) -> dict[str, Any] | None:
        """The study's DICOM JSON with the study list's attributes, ``None`` when not stored
        (or not visible: deleted, rejected)."""
        found: SearchResult = self._search(
            Level.STUDY, _identifier({"StudyInstanceUID": study_uid}), limit=1
        )
        rows = found.json()
        return rows[0] if rows else None

    def priors(self, principal: Principal, study: dict[str, Any]) -> list[dict[str, Any]]:
        """The patient's other studies, newest first (found by Patient ID, which also finds
        studies merged from an old ID), for reading beside ``study`` (its DICOM JSON)."""
        patient_id = _value(study, "00100020")
        if not patient_id:
            return []
        found: SearchResult = self._search(
            Level.STUDY,
            _identifier({"PatientID": patient_id}),
            limit=MAX_PRIORS,
            sort=[("StudyDate", True), ("StudyTime", True)],
        )
        others = [item for item in found.json() if _uid(item) != _uid(study)]
        self.audit.record(principal, "qido", detail="priors", patients={patient_id})
        return others


def _identifier(matching: dict[str, str]) -> Dataset:
    """The study list's attributes as return keys, ``matching`` as matching keys."""
    identifier = Dataset()
    for keyword in RETURNED:
        tag = tag_for_keyword(keyword)
        assert tag is not None
        identifier.add(DataElement(tag, dictionary_VR(tag), matching.get(keyword, "")))
    return identifier


def _advance(state: _State, report: Report) -> None:
    """Fold one report row (in creation order) into the study's reading state."""
    if report.status == "final":
        amended = report.amends_pk is not None or state.status in ("signed", "amended")
        state.status = "amended" if amended else "signed"
        state.signed_at = report.signed_at or state.signed_at
    elif report.status == "awaiting-approval" and state.status not in ("signed", "amended"):
        state.status = "awaiting-approval"
    elif report.status == "draft" and state.status not in ("signed", "amended"):
        state.status = "draft"
    state.report_id, state.author = report.pk, report.author


def _wanted(item: dict[str, Any], state: _State, wanted: WorklistFilter, me: Principal) -> bool:
    if wanted.status and item["status"] not in wanted.status:
        return False
    if wanted.priority and (item["priority"] or "ROUTINE") not in wanted.priority:
        return False
    if wanted.mine:
        return item["claimed_by"] == me.name or (
            item["status"] in ("draft", "awaiting-approval") and state.author == me.name
        )
    return True


def _in_reading_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Open work by priority, then state, oldest first (nothing waits at the bottom);
    finished work (signed, amended) after it, newest first."""
    done = [item for item in items if item["status"] in ("signed", "amended")]
    open_ = [item for item in items if item["status"] not in ("signed", "amended")]
    open_.sort(
        key=lambda item: (
            PRIORITY_RANK.get(item["priority"], 3),
            STATUS_RANK[item["status"]],
            _when(item),
        )
    )
    done.sort(key=_when, reverse=True)
    return open_ + done


def _when(item: dict[str, Any]) -> str:
    return _value(item["study"], "00080020") + _value(item["study"], "00080030")


def _value(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    first = values[0]
    return first.get("Alphabetic", "") if isinstance(first, dict) else str(first)


def _uid(item: dict[str, Any]) -> str:
    return _value(item, "0020000D")


def _patients(studies: Iterable[dict[str, Any]]) -> set[str]:
    return {pid for pid in (_value(study, "00100020") for study in studies) if pid}


def _chunks(values: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _default_window(days: int = 30) -> str:
    today = date.today()
    return f"{(today - timedelta(days=days)).strftime('%Y%m%d')}-{today.strftime('%Y%m%d')}"
