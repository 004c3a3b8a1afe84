"""The index rows of one received instance, in as few statements as the database allows.

A modality sends a series as hundreds of instances in a row, and all but the
first find their patient, study and series already indexed. The writer
remembers the parent keys of the series it wrote lately, so each of those
instances costs one INSERT (and, at most once a second, a touch of the study's
``updated_at``) instead of seven statements; that was half the time an
instance spent in ingest. A remembered key that no longer exists (the study
was deleted, or the index rebuilt by another process) fails the foreign key:
the writer forgets it and writes the full way, which re-creates the parents.

The change feed (``change`` rows: a new study, a new series) is written on the
full way only, when a parent row is actually created; an instance arriving
into a known series adds nothing but the study touch it already made, which
is what the study-stable check reads.

Statements are Core statements, not ORM units of work: the rows are plain
values and the ORM's bookkeeping cost more than the SQL. The per-instance ones
(the duplicate lookup, the insert under a remembered series, the touch) run on
the DBAPI connection (see :mod:`pacs.index.dbapi`); the first instance of a
series takes the full way through SQLAlchemy's engine.

On SQLite, one writer at a time holds the database anyway; the writes queue on
a lock here (across threads and the DIMSE worker processes, see
:mod:`pacs.index.writer_lock`) instead of meeting SQLITE_BUSY, whose handler
sleeps 1, 2, 5, 10... ms before retrying. With four associations storing at
once that back-off, not the work, set the pace.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.changes import record_changes
from pacs.index.dbapi import Prepared, dbapi_connection
from pacs.index.lifecycle_models import DeletedBlob
from pacs.index.models import Instance, Patient, PatientIdentifier, Series, Study
from pacs.index.upsert import insert_ignore
from pacs.index.writer_lock import writer_lock
from pacs.names import fold, normalize

CACHED_SERIES = 512
TOUCH_INTERVAL_S = 1.0  # how stale a study's updated_at may be while its images arrive

_INSERT_INSTANCE = insert(Instance)
_HELD = select(Instance.sha256, Instance.size, Instance.blob_key, Instance.content_sha256).where(
    Instance.sop_instance_uid == bindparam("uid")
)
# A deletion's blob list naming a key (an object deleted, and sent again before the purge).
_AWAITING_PURGE = select(DeletedBlob.pk).where(DeletedBlob.blob_key == bindparam("key")).limit(1)
_ROW_COLUMNS = [c for c in Instance.__table__.columns if c.name not in ("pk", "series_pk")]
# The instance row, inserted only if the remembered series row is still the one we
# think: after a rebuild of the index the same key may name another series.
_INSERT_UNDER_SERIES = (
    insert(Instance)
    .from_select(
        [*(c.name for c in _ROW_COLUMNS), "series_pk"],
        select(*(bindparam(c.name, type_=c.type) for c in _ROW_COLUMNS), Series.pk).where(
            Series.pk == bindparam("parent_pk"), Series.series_uid == bindparam("parent_uid")
        ),
    )
    .returning(Instance.pk)
)  # rowcount is not reliable for INSERT ... SELECT on every driver
_TOUCH = (
    update(Study)
    .where(Study.pk == bindparam("study_pk"))
    .values(updated_at=bindparam("now", type_=Study.__table__.c.updated_at.type))
)


class _Statements:
    """The per-instance statements, compiled for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.held = Prepared(_HELD, dialect)
        self.awaiting_purge = Prepared(_AWAITING_PURGE, dialect)
        self.insert_under = Prepared(_INSERT_UNDER_SERIES, dialect)
        self.touch = Prepared(_TOUCH, dialect)


@dataclass(frozen=True)
class HeldInstance:
    """What the index holds for a SOP Instance UID: enough to judge a duplicate."""

    sha256: str
    size: int
    blob_key: str
    content_sha256: str | None = None  # None: indexed before content hashes were kept


@dataclass(frozen=True)
class NewInstance:
    """One instance to index: its identity, its dataset (for the parents) and its row."""

    dataset: Dataset
    study_uid: str
    series_uid: str
    sop_uid: str
    row: dict[str, Any]  # Instance columns except the keys
    now: datetime


@dataclass(frozen=True)
class _Parents:
    series_pk: int
    study_pk: int


class IndexWriter:
    """Writes instances (and their patient, study, series) to the index."""

    def __init__(self, sessions: sessionmaker[Session], cached_series: int = CACHED_SERIES) -> None:
        self.sessions = sessions
        self._cached_series = cached_series
        self._parents: OrderedDict[tuple[str, ...], _Parents] = OrderedDict()
        self._touched: dict[int, float] = {}
        self._one_writer = writer_lock(self._engine)
        self._compiled: dict[Dialect, _Statements] = {}

    @property
    def _engine(self) -> Engine:
        """The engine the archive's sessions are bound to (rebinding them moves us too).

        Statements run on plain connections, not ORM sessions: a session's setup
        and teardown cost more than the one or two statements an instance needs.
        """
        engine: Engine = self.sessions.kw["bind"]
        return engine

    def _statements(self, engine: Engine) -> _Statements:
        statements = self._compiled.get(engine.dialect)
        if statements is None:
            statements = self._compiled[engine.dialect] = _Statements(engine.dialect)
        return statements

    def held(self, sop_uid: str) -> HeldInstance | None:
        engine = self._engine
        statements = self._statements(engine)
        with dbapi_connection(engine) as connection, contextlib.closing(connection.cursor()) as cur:
            row = statements.held.execute(cur, {"uid": sop_uid}).fetchone()
        return None if row is None else HeldInstance(*row)

    def awaiting_purge(self, blob_key: str) -> bool:
        """Whether a deletion's blob list names ``blob_key`` (see lifecycle.revive_blob)."""
        engine = self._engine
        statements = self._statements(engine)
        with dbapi_connection(engine) as connection, contextlib.closing(connection.cursor()) as cur:
            return statements.awaiting_purge.execute(cur, {"key": blob_key}).fetchone() is not None

    def record_content_hash(self, blob_key: str, content_sha256: str) -> None:
        """Fill in the content hash of a row indexed before revision 0008 (once known)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(Instance)
                .where(Instance.blob_key == blob_key, Instance.content_sha256.is_(None))
                .values(content_sha256=content_sha256)
            )

    def write(self, new: NewInstance, replace: bool = False) -> None:
        """Index ``new``; :class:`IntegrityError` when its SOP Instance UID is taken meanwhile."""
        with self._one_writer:
            self._write(new, replace)

    def _write(self, new: NewInstance, replace: bool) -> None:
        key = _parent_key(new)
        parents = self._parents.get(key)
        if parents is not None and not replace:
            try:
                if self._insert_under(new, parents):
                    return
            except IntegrityError:
                pass  # a UID taken meanwhile fails again below, where the caller expects it
            self.forget()
        with self._engine.begin() as conn:
            changes: list[dict[str, Any]] = []
            parents = _upsert_parents(conn, new, changes)
            self._put_instance(conn, new, parents, replace)
            record_changes(conn, changes)  # last: see pacs.index.changes
        self._remember(key, parents)

    def _insert_under(self, new: NewInstance, parents: _Parents) -> bool:
        """The instance under remembered parents; ``False`` if they are not what we remember."""
        params = {
            **new.row,
            "sop_instance_uid": new.sop_uid,
            "parent_pk": parents.series_pk,
            "parent_uid": new.series_uid,
        }
        engine = self._engine
        statements = self._statements(engine)
        with dbapi_connection(engine) as connection, contextlib.closing(connection.cursor()) as cur:
            if statements.insert_under.execute(cur, params).fetchone() is None:
                return False  # nothing inserted; the pool rolls the transaction back
            if self._touch_due(parents.study_pk):
                statements.touch.execute(cur, {"study_pk": parents.study_pk, "now": new.now})
            connection.commit()
        return True

    def forget(self) -> None:
        """Drop every remembered parent key (after a deletion or a rebuild of the index)."""
        self._parents.clear()
        self._touched.clear()

    def _put_instance(
        self, conn: Connection, new: NewInstance, parents: _Parents, replace: bool
    ) -> None:
        values = {**new.row, "series_pk": parents.series_pk}
        done = False
        if replace:
            statement = (
                update(Instance).where(Instance.sop_instance_uid == new.sop_uid).values(**values)
            )
            done = conn.execute(statement).rowcount > 0
        if not done:
            conn.execute(_INSERT_INSTANCE, {**values, "sop_instance_uid": new.sop_uid})
        if self._touch_due(parents.study_pk):
            conn.execute(_TOUCH, {"study_pk": parents.study_pk, "now": new.now})

    def _touch_due(self, study_pk: int) -> bool:
        """Whether the study's ``updated_at`` is due a touch; if so, it counts as touched now."""
        clock = time.monotonic()
        if clock - self._touched.get(study_pk, -TOUCH_INTERVAL_S) < TOUCH_INTERVAL_S:
            return False
        self._touched[study_pk] = clock
        return True

    def _remember(self, key: tuple[str, ...], parents: _Parents) -> None:
        self._parents[key] = parents
        self._parents.move_to_end(key)
        while len(self._parents) > self._cached_series:
            self._parents.popitem(last=False)
        if len(self._touched) > 4 * self._cached_series:
            self._touched.clear()


def _parent_key(new: NewInstance) -> tuple[str, ...]:
    """Instances agreeing on all of these land on the same parent rows."""
    ds = new.dataset
    return (new.study_uid, new.series_uid, text(ds, "PatientID"), text(ds, "IssuerOfPatientID"))


def text(ds: Dataset, keyword: str, limit: int = 64) -> str:
    """An attribute as index text: NFC, multiple values joined by backslash, cut to the column."""
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, MultiValue):
        value = "\\".join(str(v) for v in value)
    return normalize(str(value))[:limit]


def integer(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _upsert_parents(conn: Connection, new: NewInstance, changes: list[dict[str, Any]]) -> _Parents:
    """The instance's parent rows; a change-feed row in ``changes`` for each one created."""
    patient_pk = _upsert_patient(conn, new.dataset)
    study_pk = _upsert_study(conn, new, patient_pk, changes)
    series_pk = _upsert_series(conn, new, study_pk, changes)
    return _Parents(series_pk, study_pk)


def _upsert_patient(conn: Connection, ds: Dataset) -> int:
    patient_id = text(ds, "PatientID")
    issuer = text(ds, "IssuerOfPatientID")
    name = text(ds, "PatientName", 324)
    conn.execute(
        insert_ignore(conn, Patient, ["patient_id", "issuer"]).values(
            patient_id=patient_id,
            issuer=issuer,
            name=name,
            name_folded=fold(name),
            birth_date=text(ds, "PatientBirthDate", 8),
            sex=text(ds, "PatientSex", 16),
        )
    )
    pk = conn.scalar(
        select(Patient.pk).where(Patient.patient_id == patient_id, Patient.issuer == issuer)
    )
    assert pk is not None
    for value, id_issuer, kind in _other_ids(ds):
        conn.execute(
            insert_ignore(conn, PatientIdentifier, ["patient_pk", "value", "issuer"]).values(
                patient_pk=pk, value=value, issuer=id_issuer, type_of_id=kind
            )
        )
    return pk


def _other_ids(ds: Dataset) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for item in ds.get("OtherPatientIDsSequence") or []:
        value = text(item, "PatientID")
        if value:
            issuer = text(item, "IssuerOfPatientID")
            found.append((value, issuer, text(item, "TypeOfPatientID", 16)))
    legacy = ds.get("OtherPatientIDs")  # retired (0010,1000), still sent by many devices
    if legacy:
        for value in legacy if isinstance(legacy, MultiValue) else [legacy]:
            if str(value).strip():
                found.append((normalize(str(value))[:64], "", ""))
    return found


def _change(kind: str, new: NewInstance, series_uid: str = "") -> dict[str, Any]:
    """A change-feed row, made only when a parent row was created: never per instance."""
    return {"kind": kind, "study_uid": new.study_uid, "series_uid": series_uid, "at": new.now}


def _upsert_study(
    conn: Connection, new: NewInstance, patient_pk: int, changes: list[dict[str, Any]]
) -> int:
    ds = new.dataset
    referring = text(ds, "ReferringPhysicianName", 324)
    created = conn.execute(
        insert_ignore(conn, Study, ["study_uid"])
        .values(
            study_uid=new.study_uid,
            patient_pk=patient_pk,
            study_date=text(ds, "StudyDate", 8),
            study_time=text(ds, "StudyTime", 16),
            accession_number=text(ds, "AccessionNumber", 16),
            study_id=text(ds, "StudyID", 16),
            study_description=text(ds, "StudyDescription", 256),
            referring_physician_name=referring,
            referring_physician_folded=fold(referring),
            institution_name=text(ds, "InstitutionName", 256),
            created_at=new.now,
            updated_at=new.now,
        )
        .returning(Study.pk)
    )
    pk = created.scalar_one_or_none()  # the new row's key; none when it existed
    if pk is not None:
        changes.append(_change("new-study", new))
        return int(pk)
    pk = conn.scalar(select(Study.pk).where(Study.study_uid == new.study_uid))
    assert pk is not None
    return pk


def _upsert_series(
    conn: Connection, new: NewInstance, study_pk: int, changes: list[dict[str, Any]]
) -> int:
    ds = new.dataset
    created = conn.execute(
        insert_ignore(conn, Series, ["series_uid"])
        .values(
            series_uid=new.series_uid,
            study_pk=study_pk,
            modality=text(ds, "Modality", 16),
            series_number=integer(ds, "SeriesNumber"),
            series_description=text(ds, "SeriesDescription", 256),
            body_part_examined=text(ds, "BodyPartExamined", 16),
            series_date=text(ds, "SeriesDate", 8),
            series_time=text(ds, "SeriesTime", 16),
            performed_procedure_step_start_date=text(ds, "PerformedProcedureStepStartDate", 8),
            created_at=new.now,
        )
        .returning(Series.pk)
    )
    pk = created.scalar_one_or_none()  # the new row's key; none when it existed
    if pk is not None:
        changes.append(_change("new-series", new, new.series_uid))
        return int(pk)
    pk = conn.scalar(select(Series.pk).where(Series.series_uid == new.series_uid))
    assert pk is not None
    return pk
