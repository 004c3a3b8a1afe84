"""Locating stored instances by UID, for every door that hands images back.

WADO-RS, WADO-URI, C-MOVE and C-GET all start the same way: which instances
(and which blobs) make up this study, series or instance. The answer comes
from the index alone, in a stable order (series number, instance number), so
a viewer receives slices in reading order and a retrieval can be streamed
without first loading anything but these small rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.models import Instance, Patient, Series, Study


@dataclass(frozen=True)
class StoredInstance:
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    blob_key: str
    size: int
    sha256: str
    number_of_frames: int | None
    patient_id: str


def _stored_instances() -> Any:
    """The columns of :class:`StoredInstance`, joined up to the patient."""
    return (
        select(
            Study.study_uid,
            Series.series_uid,
            Instance.sop_instance_uid,
            Instance.sop_class_uid,
            Instance.transfer_syntax_uid,
            Instance.blob_key,
            Instance.size,
            Instance.sha256,
            Instance.number_of_frames,
            Patient.patient_id.label("patient_id"),
        )
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
    )


def locate(
    sessions: sessionmaker[Session],
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> Iterator[StoredInstance]:
    """Every stored instance matching the UIDs given (any may be ``None``), in reading order."""
    query = _stored_instances().order_by(
        Series.series_number, Series.pk, Instance.instance_number, Instance.pk
    )
    if study_uid is not None:
        query = query.where(Study.study_uid == study_uid)
    if series_uid is not None:
        query = query.where(Series.series_uid == series_uid)
    if sop_instance_uid is not None:
        query = query.where(Instance.sop_instance_uid == sop_instance_uid)
    with sessions() as session:
        rows = session.execute(query).all()
    for row in rows:
        yield StoredInstance(**row._asdict())


def locate_many(
    sessions: sessionmaker[Session],
    *,
    patient_ids: Sequence[str] = (),
    study_uids: Sequence[str] = (),
    series_uids: Sequence[str] = (),
    sop_instance_uids: Sequence[str] = (),
) -> list[StoredInstance]:
    """Instances matching every non-empty list (C-MOVE/C-GET identifiers carry UID lists)."""
    if not (patient_ids or study_uids or series_uids or sop_instance_uids):
        return []  # an empty retrieve request must never mean "everything"
    query = _stored_instances().order_by(
        Study.pk, Series.series_number, Series.pk, Instance.instance_number, Instance.pk
    )
    if patient_ids:
        query = query.where(Patient.patient_id.in_(list(patient_ids)))
    if study_uids:
        query = query.where(Study.study_uid.in_(list(study_uids)))
    if series_uids:
        query = query.where(Series.series_uid.in_(list(series_uids)))
    if sop_instance_uids:
        query = query.where(Instance.sop_instance_uid.in_(list(sop_instance_uids)))
    with sessions() as session:
        return [StoredInstance(**row._asdict()) for row in session.execute(query)]


@dataclass(frozen=True)
class InstanceRef:
    """What a list of a study's images names: its series, UIDs and number (FHIR
    ImagingStudy.series.instance), read by four columns."""

    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None


def instance_refs(sessions: sessionmaker[Session], study_uids: Sequence[str]) -> list[InstanceRef]:
    """The instances of ``study_uids`` in reading order, four columns each: the FHIR door
    lists 4,000 of them per page of 20 CT studies, where :func:`locate_many`'s ten columns
    and its patient join cost a third of the answer (bench.fhir)."""
    if not study_uids:
        return []
    query = (
        select(
            Series.series_uid,
            Instance.sop_instance_uid,
            Instance.sop_class_uid,
            Instance.instance_number,
        )
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .where(Study.study_uid.in_(list(study_uids)))
        .order_by(Study.pk, Series.series_number, Series.pk, Instance.instance_number, Instance.pk)
    )
    with sessions() as session:
        return [InstanceRef(*row) for row in session.execute(query)]


def instance_metadata(
    sessions: sessionmaker[Session],
    study_uid: str,
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> list[tuple[str, str]]:
    """(SOP Instance UID, stored DICOM JSON text) pairs, in reading order, from the index only."""
    query = (
        select(Instance.sop_instance_uid, Instance.dicom_json)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .where(Study.study_uid == study_uid)
        .order_by(Series.series_number, Series.pk, Instance.instance_number, Instance.pk)
    )
    if series_uid is not None:
        query = query.where(Series.series_uid == series_uid)
    if sop_instance_uid is not None:
        query = query.where(Instance.sop_instance_uid == sop_instance_uid)
    with sessions() as session:
        return [(uid, text) for uid, text in session.execute(query).all()]
