"""PS3.4 C.2.2.2 matching, one SQL condition per key.

Single value, wildcard (``*`` and ``?``), range (DA, TM, and StudyDate with
StudyTime combined), list of UIDs, universal (empty value: no condition) and
sequence matching on OtherPatientIDsSequence. Person names match on their
folded form, so case and accents never matter; with fuzzy matching the words
of the query (a trailing ``*`` allowed) match, as prefixes, words of the name in
any order.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.orm import aliased

from pacs.index.models import Instance, Patient, PatientIdentifier, Series, Study
from pacs.names import fold
from pacs.query.keys import Key, Kind, QueryError

_DATE = re.compile(r"^\d{8}$")
_WORD_PREFIXES = re.compile(r"[^*?]+\**")  # words, at most a trailing "*"
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


def has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def like_pattern(value: str) -> str:
    """DICOM wildcards to a LIKE pattern with '\\' as escape."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def text_condition(column: Any, value: str) -> ColumnElement[bool]:
    if value.strip("*") == "":
        return true()  # '*' alone is universal
    if has_wildcard(value):
        return column.like(like_pattern(value), escape="\\")
    return column == value


def uid_condition(column: Any, value: str) -> ColumnElement[bool]:
    uids = [uid.strip() for uid in re.split(r"[\\,]", value) if uid.strip()]
    if any(has_wildcard(uid) for uid in uids):
        raise QueryError("UIDs are matched exactly or as a list; wildcards are not allowed")
    if len(uids) == 1:
        return column == uids[0]
    return column.in_(uids)


def code_condition(column: Any, value: str) -> ColumnElement[bool]:
    values = [v for v in re.split(r"[\\,]", value) if v]
    if len(values) > 1:
        return column.in_(values)
    return text_condition(column, value)


# An IS value is a signed 32-bit integer (PS3.5 6.2); the columns hold nothing wider.
IS_RANGE = range(-(2**31), 2**31)


def number_condition(column: Any, value: str) -> ColumnElement[bool]:
    try:
        number = int(value.strip())
    except ValueError as exc:
        raise QueryError(f"{value!r} is not an integer") from exc
    if number not in IS_RANGE:
        raise QueryError(f"{value!r} is outside the range of an IS value (32 bits, signed)")
    return column == number


def _range(value: str, pattern: re.Pattern[str], what: str) -> tuple[str, str]:
    low, sep, high = value.partition("-")
    low, high = low.strip(), high.strip()
    if not sep:
        high = low
    for part in (low, high):
        if part and not pattern.match(part):
            raise QueryError(f"{value!r} is not a valid {what} or {what} range")
    if not low and not high:
        raise QueryError(f"{value!r} is an empty {what} range")
    return low, high


def date_condition(column: Any, value: str) -> ColumnElement[bool]:
    if has_wildcard(value):
        return text_condition(column, value)
    low, high = _range(value.replace(".", ""), _DATE, "date")  # old ACR-NEMA dots
    conditions = []
    if low:
        conditions.append(column >= low)
    if high:
        conditions.append(column <= high)
    return and_(column != "", *conditions)


def _time_bounds(low: str, high: str) -> tuple[str, str]:
    # A time given to the minute covers the whole minute: pad the upper bound.
    return low, (high + "999999.999999"[len(high) :] if high else "")


def time_condition(column: Any, value: str) -> ColumnElement[bool]:
    if has_wildcard(value):
        return text_condition(column, value)
    low, high = _time_bounds(*_range(value.replace(":", ""), _TIME, "time"))
    conditions = []
    if low:
        conditions.append(column >= low)
    if high:
        conditions.append(column <= high)
    return and_(column != "", *conditions)


def date_time_condition(date_value: str, time_value: str) -> ColumnElement[bool]:
    """StudyDate and StudyTime as one range (PS3.4 C.2.2.2.5.1: combined datetime matching)."""
    d_low, d_high = _range(date_value, _DATE, "date")
    t_low, t_high = _time_bounds(*_range(time_value.replace(":", ""), _TIME, "time"))
    date, time = Study.study_date, Study.study_time
    conditions: list[ColumnElement[bool]] = [date != ""]
    if d_low:
        start = date > d_low
        conditions.append(
            or_(start, and_(date == d_low, time >= t_low)) if t_low else date >= d_low
        )
    if d_high:
        end = date < d_high
        conditions.append(
            or_(end, and_(date == d_high, time <= t_high)) if t_high else date <= d_high
        )
    return and_(*conditions)


def name_condition(column: Any, value: str, fuzzy: bool) -> ColumnElement[bool]:
    folded = fold(value)
    if folded.strip("* ") == "":
        return true()
    if fuzzy and _WORD_PREFIXES.fullmatch(folded):
        # Words as typed ("bich", "van an", and "van an*" as a list that appends "*" sends)
        # match the start of any word of the name. Other wildcards keep PS3.4 semantics.
        words = folded.rstrip("*").split()
        return and_(
            *(
                or_(
                    column.like(like_pattern(word) + "%", escape="\\"),
                    column.like("% " + like_pattern(word) + "%", escape="\\"),
                )
                for word in words
            )
        )
    if has_wildcard(folded):
        return column.like(like_pattern(folded), escape="\\")
    return column == folded


def patient_id_condition(value: str, issuer: str | None) -> ColumnElement[bool]:
    """The patient's own ID, or any identifier in OtherPatientIDsSequence (citizen ID...)."""
    own = text_condition(Patient.patient_id, value)
    other = text_condition(PatientIdentifier.value, value)
    if issuer:
        own = and_(own, Patient.issuer == issuer)
        other = and_(other, PatientIdentifier.issuer == issuer)
    return or_(
        own,
        exists(
            select(PatientIdentifier.pk).where(PatientIdentifier.patient_pk == Patient.pk, other)
        ),
    )


def computed_condition(key: Key, value: str) -> ColumnElement[bool]:
    # Aliases: at series or image level the outer query holds Series and Instance too,
    # and the EXISTS must range over all of the study's series, not correlate to its row.
    series, instance = aliased(Series), aliased(Instance)
    values = [v for v in re.split(r"[\\,]", value) if v]
    if key.keyword == "ModalitiesInStudy":
        column: Any = series.modality
        inner = select(series.pk).where(series.study_pk == Study.pk)
    elif key.keyword == "SOPClassesInStudy":
        column = instance.sop_class_uid
        inner = (
            select(instance.pk)
            .join(series, instance.series_pk == series.pk)
            .where(series.study_pk == Study.pk)
        )
    else:
        raise QueryError(f"{key.keyword} cannot be matched")
    if len(values) > 1:
        return exists(inner.where(column.in_(values)))
    if not values:
        return true()
    return exists(inner.where(text_condition(column, values[0])))


def condition(key: Key, value: str, fuzzy: bool) -> ColumnElement[bool]:
    """The SQL condition for one matching key (never called for empty, universal values)."""
    match key.kind:
        case Kind.UID:
            return uid_condition(key.column, value)
        case Kind.TEXT:
            return text_condition(key.column, value)
        case Kind.CODE:
            return code_condition(key.column, value)
        case Kind.NUMBER:
            return number_condition(key.column, value)
        case Kind.DATE:
            return date_condition(key.column, value)
        case Kind.TIME:
            return time_condition(key.column, value)
        case Kind.NAME:
            return name_condition(key.column, value, fuzzy)
        case Kind.PATIENT_ID:
            return patient_id_condition(value, None)
        case Kind.COMPUTED:
            return computed_condition(key, value)
    return false()
