"""Run a compiled query on the index and build the matches as DICOM datasets.

Everything comes from the index: indexed columns, counts computed per page of
results, and for any other return key the stored DICOM JSON of a
representative instance (no blob is ever opened for a search).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.models import Instance, Patient, Series, Study
from pacs.query.keys import COMPUTED_RETURN, CONTROL, KEYS, UNIQUE_KEY, Level, QueryError
from pacs.query.matching import condition, date_time_condition, patient_id_condition
from pacs.query.results import STORED_JSON, SearchResult, Values

ENTITY: dict[Level, Any] = {
    Level.PATIENT: Patient,
    Level.STUDY: Study,
    Level.SERIES: Series,
    Level.IMAGE: Instance,
}
# Attributes answered from columns: keyword -> (level, column attribute name).
COLUMNS: dict[str, tuple[Level, str]] = {
    "PatientID": (Level.PATIENT, "patient_id"),
    "IssuerOfPatientID": (Level.PATIENT, "issuer"),
    "PatientName": (Level.PATIENT, "name"),
    "PatientBirthDate": (Level.PATIENT, "birth_date"),
    "PatientSex": (Level.PATIENT, "sex"),
    "StudyInstanceUID": (Level.STUDY, "study_uid"),
    "StudyDate": (Level.STUDY, "study_date"),
    "StudyTime": (Level.STUDY, "study_time"),
    "AccessionNumber": (Level.STUDY, "accession_number"),
    "StudyID": (Level.STUDY, "study_id"),
    "StudyDescription": (Level.STUDY, "study_description"),
    "ReferringPhysicianName": (Level.STUDY, "referring_physician_name"),
    "InstitutionName": (Level.STUDY, "institution_name"),
    "SeriesInstanceUID": (Level.SERIES, "series_uid"),
    "Modality": (Level.SERIES, "modality"),
    "SeriesNumber": (Level.SERIES, "series_number"),
    "SeriesDescription": (Level.SERIES, "series_description"),
    "BodyPartExamined": (Level.SERIES, "body_part_examined"),
    "SeriesDate": (Level.SERIES, "series_date"),
    "SeriesTime": (Level.SERIES, "series_time"),
    "PerformedProcedureStepStartDate": (Level.SERIES, "performed_procedure_step_start_date"),
    "SOPInstanceUID": (Level.IMAGE, "sop_instance_uid"),
    "SOPClassUID": (Level.IMAGE, "sop_class_uid"),
    "InstanceNumber": (Level.IMAGE, "instance_number"),
    "NumberOfFrames": (Level.IMAGE, "number_of_frames"),
    "Rows": (Level.IMAGE, "rows"),
    "Columns": (Level.IMAGE, "columns"),
}
# Attributes whose answer is the same for every match: everything this archive holds is
# on line. (Left to the stored JSON, InstanceAvailability, a default QIDO return key, made
# every study search parse one whole instance document per match, for nothing.)
CONSTANT_RETURN: dict[str, tuple[str, str]] = {"InstanceAvailability": ("CS", "ONLINE")}


@dataclass
class _Compiled:
    conditions: list[ColumnElement[bool]]
    return_keys: list[int]  # tags, in request order


def _text(element: Any) -> str:
    value = element.value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def compile_identifier(
    identifier: Dataset,
    level: Level,
    fuzzy: bool,
    ignored: list[str] | None = None,
    combined_datetime: bool = True,
) -> _Compiled:
    """Conditions and return keys of ``identifier`` at ``level``.

    A key that cannot be matched (unknown to the engine, of a lower level, a
    sequence) raises :class:`QueryError`, unless ``ignored`` is given: then it
    is matched universally and its reason appended there, for a door whose
    standard says to ignore such keys and tell (QIDO-RS: a Warning header).
    A malformed value always raises. ``combined_datetime``: a StudyDate range with a
    StudyTime is one date-time range (PS3.4 C.2.2.2.5).
    """

    def unsupported(reason: str) -> None:
        if ignored is None:
            raise QueryError(reason)
        ignored.append(reason)

    conditions: list[ColumnElement[bool]] = []
    return_keys: list[int] = []
    values: dict[str, str] = {}
    for element in identifier:
        keyword = element.keyword or keyword_for_tag(element.tag)
        if keyword in CONTROL or element.tag.group == 0x0002:
            continue
        return_keys.append(int(element.tag))
        if keyword == "OtherPatientIDsSequence":
            for item in element.value or []:
                pid = str(item.get("PatientID", "") or "")
                if pid:
                    issuer = str(item.get("IssuerOfPatientID", "") or "") or None
                    conditions.append(patient_id_condition(pid, issuer))
            continue
        if element.VR == "SQ":
            if element.value:
                unsupported(f"sequence matching on {keyword or element.tag} is not supported")
            continue
        value = _text(element).strip()
        if value == "":
            continue  # universal matching: a return key
        key = KEYS.get(keyword)
        if key is None:
            unsupported(f"{keyword or element.tag} is not a supported matching key")
            continue
        if key.level > level:
            unsupported(
                f"{keyword} is a {key.level.name} key; it cannot be matched at {level.name} level"
            )
            continue
        values[keyword] = value
    issuer = values.pop("IssuerOfPatientID", None)
    if "PatientID" in values:
        conditions.append(patient_id_condition(values.pop("PatientID"), issuer))
    elif issuer:
        conditions.append(Patient.issuer == issuer)
    if (
        combined_datetime
        and "StudyDate" in values
        and "StudyTime" in values
        and "-" in values["StudyDate"]
    ):
        conditions.append(date_time_condition(values.pop("StudyDate"), values.pop("StudyTime")))
    for keyword, value in values.items():
        conditions.append(condition(KEYS[keyword], value, fuzzy))
    return _Compiled(conditions, return_keys)


def _base_query(level: Level) -> Any:
    if level is Level.PATIENT:
        return select(Patient)
    if level is Level.STUDY:
        return select(Study, Patient).join(Patient, Study.patient_pk == Patient.pk)
    query = (
        select(Series, Study, Patient)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
    )
    if level is Level.SERIES:
        return query
    return (
        select(Instance, Series, Study, Patient)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
    )


def _series_count() -> Any:
    return select(func.count(Series.pk)).where(Series.study_pk == Study.pk).scalar_subquery()


def _instance_count() -> Any:
    return (
        select(func.count(Instance.pk))
        .join(Series, Instance.series_pk == Series.pk)
        .where(Series.study_pk == Study.pk)
        .scalar_subquery()
    )


def _first_modality() -> Any:
    return select(func.min(Series.modality)).where(Series.study_pk == Study.pk).scalar_subquery()


# What a study list may be sorted by (keyword -> the SQL expressions, in order). Names sort by
# their folded form, so "Đặng" sits with the D's; the study's pk breaks ties, so pages never
# overlap or skip a study.
STUDY_SORT: dict[str, Any] = {
    "PatientName": lambda: [Patient.name_folded],
    "PatientID": lambda: [Patient.patient_id],
    "PatientBirthDate": lambda: [Patient.birth_date],
    "StudyDate": lambda: [Study.study_date, Study.study_time],
    "StudyTime": lambda: [Study.study_time],
    "AccessionNumber": lambda: [Study.accession_number],
    "StudyDescription": lambda: [Study.study_description],
    "ModalitiesInStudy": lambda: [_first_modality()],
    "NumberOfStudyRelatedSeries": lambda: [_series_count()],
    "NumberOfStudyRelatedInstances": lambda: [_instance_count()],
}


def _sorted_studies(query: Select[Any], sort: list[tuple[str, bool]]) -> Select[Any]:
    """``sort``: (keyword, descending) pairs from :data:`STUDY_SORT`, most significant first."""
    terms: list[Any] = []
    for keyword, descending in sort:
        if keyword not in STUDY_SORT:
            raise QueryError(f"cannot sort by {keyword}")
        terms.extend(e.desc() if descending else e.asc() for e in STUDY_SORT[keyword]())
    return query.order_by(*terms, Study.pk.desc())


def _ordered(query: Select[Any], level: Level) -> Select[Any]:
    if level is Level.PATIENT:
        return query.order_by(Patient.name_folded, Patient.pk)
    if level is Level.STUDY:
        return query.order_by(Study.study_date.desc(), Study.study_time.desc(), Study.pk.desc())
    if level is Level.SERIES:
        return query.order_by(Series.series_number, Series.pk)
    return query.order_by(Series.series_number, Series.pk, Instance.instance_number, Instance.pk)


def search(
    sessions: sessionmaker[Session],
    level: Level,
    identifier: Dataset,
    *,
    fuzzy: bool = False,
    limit: int | None = None,
    offset: int = 0,
    study_uid_scope: str | None = None,
    include_all: bool = False,
    ignore_unsupported: bool = False,
    combined_datetime: bool = True,
    sort: list[tuple[str, bool]] | None = None,
    count: bool = False,
) -> SearchResult:
    """Match ``identifier`` at ``level``; with ``ignore_unsupported``, keys that cannot be
    matched are left out and named in :attr:`SearchResult.ignored` instead of refused.

    ``sort`` (study level only) orders the whole result before ``offset`` and ``limit`` cut
    a page; ``count`` also counts every match (:attr:`SearchResult.total`), for a list
    that pages on the server."""
    ignored: list[str] | None = [] if ignore_unsupported else None
    compiled = compile_identifier(identifier, level, fuzzy, ignored, combined_datetime)
    query = _base_query(level).where(*compiled.conditions)
    if study_uid_scope is not None:
        if level is Level.PATIENT:
            query = query.where(
                Patient.pk.in_(select(Study.patient_pk).where(Study.study_uid == study_uid_scope))
            )
        else:
            query = query.where(Study.study_uid == study_uid_scope)
    counted = select(func.count()).select_from(query.subquery()) if count else None
    if sort and level is not Level.STUDY:
        raise QueryError("only studies can be sorted")
    query = _sorted_studies(query, sort) if sort else _ordered(query, level)
    query = query.offset(max(0, offset))
    if limit is not None:
        query = query.limit(limit + 1)
    with sessions() as session:
        total = session.scalar(counted) if counted is not None else None
        rows = list(session.execute(query))
        truncated = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        matches = _build(session, level, rows, compiled.return_keys, include_all)
    return SearchResult(matches, truncated, ignored or [], total)


def _entities(level: Level, row: Any) -> dict[Level, Any]:
    found = {Level.PATIENT: row[-1]} if level is not Level.PATIENT else {Level.PATIENT: row[0]}
    if level >= Level.STUDY:
        found[Level.STUDY] = row[-2]
    if level >= Level.SERIES:
        found[Level.SERIES] = row[-3]
    if level is Level.IMAGE:
        found[Level.IMAGE] = row[0]
    return found


@lru_cache(maxsize=4096)
def _vr(tag: int) -> str:
    """The dictionary VR; asked once per value of every match, hence cached (a 101-study
    page asked pydicom's dictionary some 1,200 times, 6 ms of a 20 ms search)."""
    return dictionary_VR(tag) if keyword_for_tag(tag) else "UN"


def _build(
    session: Session, level: Level, rows: list[Any], return_keys: list[int], include_all: bool
) -> list[Values]:
    if not rows:
        return []
    entities = [_entities(level, row) for row in rows]
    wanted = list(dict.fromkeys(return_keys))
    for lvl in range(level + 1):
        tag = tag_for_keyword(UNIQUE_KEY[Level(lvl)])
        assert tag is not None
        if tag not in wanted:
            wanted.append(tag)
    keywords = {tag: keyword_for_tag(tag) for tag in wanted}
    computed = {
        k for k in keywords.values() if k in COMPUTED_RETURN and COMPUTED_RETURN[k] == level
    }
    counts = _computed(session, level, [e[level].pk for e in entities], computed)
    from_json = include_all or any(
        k not in COLUMNS and k not in COMPUTED_RETURN and k not in CONSTANT_RETURN
        for k in keywords.values()
    )
    documents = (
        _representatives(session, level, [e[level].pk for e in entities]) if from_json else {}
    )
    matches: list[Values] = []
    for found in entities:
        values: Values = {0x00080005: ("CS", "ISO_IR 192")}
        pk = found[level].pk
        document = documents.get(pk)
        row_keywords = dict(keywords)
        if include_all and document is not None:
            for hex_tag, element in document.items():  # every attribute of that instance
                if "BulkDataURI" in element or "InlineBinary" in element:
                    continue  # bulk data (Pixel Data) is retrieved, never searched
                extra = int(hex_tag, 16)
                row_keywords.setdefault(extra, keyword_for_tag(extra))
        for tag, keyword in row_keywords.items():
            if keyword in COLUMNS and COLUMNS[keyword][0] <= level:
                col_level, attribute = COLUMNS[keyword]
                values[tag] = (_vr(tag), getattr(found[col_level], attribute))
            elif keyword in counts.get(pk, {}):
                values[tag] = (_vr(tag), counts[pk][keyword])
            elif keyword in CONSTANT_RETURN:
                values[tag] = CONSTANT_RETURN[keyword]
            elif document is not None and f"{tag:08X}" in document:
                values[tag] = (STORED_JSON, document[f"{tag:08X}"])
            else:
                values[tag] = (_vr(tag), None)
        matches.append(values)
    return matches


def _computed(
    session: Session, level: Level, pks: list[int], wanted: Iterable[str]
) -> dict[int, dict[str, Any]]:
    wanted = set(wanted)
    result: dict[int, dict[str, Any]] = defaultdict(dict)
    if not wanted or not pks:
        return result
    if level is Level.STUDY:
        series = (
            select(Series.study_pk, func.count())
            .where(Series.study_pk.in_(pks))
            .group_by(Series.study_pk)
        )
        instances = (
            select(Series.study_pk, func.count())  # count(*): index-only
            .join(Instance, Instance.series_pk == Series.pk)
            .where(Series.study_pk.in_(pks))
            .group_by(Series.study_pk)
        )
        for pk, n in session.execute(series):
            result[pk]["NumberOfStudyRelatedSeries"] = n
        for pk, n in session.execute(instances):
            result[pk]["NumberOfStudyRelatedInstances"] = n
        modalities = (
            select(Series.study_pk, Series.modality)
            .where(Series.study_pk.in_(pks), Series.modality != "")
            .distinct()
            .order_by(Series.study_pk, Series.modality)
        )
        classes = (
            select(Series.study_pk, Instance.sop_class_uid)
            .join(Instance, Instance.series_pk == Series.pk)
            .where(Series.study_pk.in_(pks))
            .distinct()
            .order_by(Series.study_pk, Instance.sop_class_uid)
        )
        for pk, modality in session.execute(modalities):
            result[pk].setdefault("ModalitiesInStudy", []).append(modality)
        if "SOPClassesInStudy" in wanted:
            for pk, sop_class in session.execute(classes):
                result[pk].setdefault("SOPClassesInStudy", []).append(sop_class)
        for pk in pks:
            result[pk].setdefault("NumberOfStudyRelatedSeries", 0)
            result[pk].setdefault("NumberOfStudyRelatedInstances", 0)
            result[pk].setdefault("ModalitiesInStudy", "")
            result[pk].setdefault("SOPClassesInStudy", "")
    elif level is Level.SERIES:
        query = (
            select(Instance.series_pk, func.count())
            .where(Instance.series_pk.in_(pks))
            .group_by(Instance.series_pk)
        )
        for pk, n in session.execute(query):
            result[pk]["NumberOfSeriesRelatedInstances"] = n
    elif level is Level.PATIENT:
        studies = (
            select(
                Study.patient_pk,
                func.count(func.distinct(Study.pk)),
                func.count(func.distinct(Series.pk)),
                func.count(Instance.pk),
            )
            .select_from(Study)
            .join(Series, Series.study_pk == Study.pk, isouter=True)
            .join(Instance, Instance.series_pk == Series.pk, isouter=True)
            .where(Study.patient_pk.in_(pks))
            .group_by(Study.patient_pk)
        )
        for pk, n_studies, n_series, n_instances in session.execute(studies):
            result[pk].update(
                NumberOfPatientRelatedStudies=n_studies,
                NumberOfPatientRelatedSeries=n_series,
                NumberOfPatientRelatedInstances=n_instances,
            )
    return result


def _representatives(session: Session, level: Level, pks: list[int]) -> dict[int, dict[str, Any]]:
    """The stored DICOM JSON of one instance per matched entity (its first series' first image).

    Correlated ``LIMIT 1`` lookups walk the (series_pk) and (study_pk) indexes,
    so the cost does not grow with the number of instances in a study.
    """
    if not pks:
        return {}
    if level is Level.IMAGE:
        query = select(Instance.pk, Instance.dicom_json).where(Instance.pk.in_(pks))
    else:
        if level is Level.SERIES:
            owner: Any = Series
            series_pk: Any = Series.pk
        else:
            owner = Study if level is Level.STUDY else Patient
            first_study: Any = Study.pk
            if level is Level.PATIENT:
                first_study = (
                    select(Study.pk)
                    .where(Study.patient_pk == Patient.pk)
                    .order_by(Study.pk)
                    .limit(1)
                    .correlate(Patient)
                    .scalar_subquery()
                )
            # Nested two deep, a subquery is not correlated to the outer row on its own:
            # without correlate() each would pick the first series of the whole index.
            series_pk = (
                select(Series.pk)
                .where(Series.study_pk == first_study)
                .order_by(Series.pk)
                .limit(1)
                .correlate(owner)
                .scalar_subquery()
            )
        first_instance = (
            select(Instance.pk)
            .where(Instance.series_pk == series_pk)
            .order_by(Instance.pk)
            .limit(1)
            .correlate_except(Instance)  # the outer query joins Instance too
            .scalar_subquery()
        )
        query = (
            select(owner.pk, Instance.dicom_json)
            .select_from(owner)
            .join(Instance, Instance.pk == first_instance)
            .where(owner.pk.in_(pks))
        )
    return {pk: json.loads(document) for pk, document in session.execute(query)}
