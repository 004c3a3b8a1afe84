"""The matching engine, key by key, on both index databases (PS3.4 C.2.2.2)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import inspect

from pacs.archive import Archive
from pacs.query import Level, QueryError
from tests.query_dimse.archive_factory import (
    STUDIES,
    patient_age,
    populate,
    series_uid,
    sop_uid,
    study_uid,
)


@pytest.fixture
def filled(archive: Archive) -> Archive:
    populate(archive)
    return archive


def ident(**keys: object) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _raw(tag: int, value: str) -> Dataset:
    """An identifier element as a peer may send it, unvalidated."""
    ds = Dataset()
    ds.add_new(tag, "LO", value)
    return ds


def studies(archive: Archive, fuzzy: bool = False, **keys: object) -> set[str]:
    found = archive.search(Level.STUDY, ident(**keys), fuzzy=fuzzy).matches
    return {str(ds.StudyInstanceUID) for ds in found}


S = study_uid  # S(0) is the first generated study


# One populated archive per database serves the whole table (populating takes ~2 s).
STUDY_CASES: list[tuple[dict[str, object], set[str]]] = [
    ({"PatientID": "BN002"}, {S(2), S(3)}),
    ({"PatientID": "BN00*"}, {S(0), S(1), S(2), S(3), S(4), S(5), S(6)}),
    ({"PatientID": "079080001234"}, {S(0), S(1)}),  # citizen ID from OtherPatientIDsSequence
    ({"AccessionNumber": "ACC2001"}, {S(2)}),
    ({"AccessionNumber": "acc2001"}, set()),  # case-sensitive outside names
    ({"AccessionNumber": "ACC?00?"}, {S(n) for n in range(8)}),
    ({"StudyDate": "20250620"}, {S(2)}),
    ({"StudyDate": "20250101-20251231"}, {S(0), S(2), S(3), S(6)}),
    ({"StudyDate": "20260101-"}, {S(1), S(4), S(7)}),
    ({"StudyDate": "-20241231"}, {S(5)}),
    ({"StudyDate": "20251201-20260101", "StudyTime": "120000-"}, {S(3), S(4)}),
    ({"StudyInstanceUID": f"{S(0)}\\{S(5)}"}, {S(0), S(5)}),
    ({"ModalitiesInStudy": "MR"}, {S(1), S(3), S(4)}),
    ({"ModalitiesInStudy": "CR\\MR"}, {S(1), S(2), S(3), S(4), S(6), S(7)}),
    ({"StudyDescription": "*sọ*"}, {S(1), S(5)}),
    ({"PatientName": "nguyen*"}, {S(0), S(1), S(6)}),
    ({"PatientName": "NGUYỄN^VĂN AN"}, {S(0), S(1)}),
    ({"PatientName": "*duc*"}, {S(4), S(5)}),
    ({"ReferringPhysicianName": "hoang van nam"}, {S(0), S(1), S(5)}),
    ({"PatientBirthDate": "19700101-19801231"}, {S(0), S(1), S(2), S(3)}),
    ({"PatientSex": "F"}, {S(2), S(3)}),
]


def test_study_level_matching(filled: Archive) -> None:
    def found(keys: dict[str, object]) -> set[str]:
        return {
            str(ds.StudyInstanceUID) for ds in filled.search(Level.STUDY, ident(**keys)).matches
        }

    wrong = [(keys, found(keys), expected) for keys, expected in STUDY_CASES]
    assert [case for case in wrong if case[1] != case[2]] == []


def test_fuzzy_names_any_order_and_prefix(filled: Archive) -> None:
    for query in ["nguyen an", "NGUYEN VAN AN", "an nguyen", "nguyễn an", "van an"]:
        assert studies(filled, fuzzy=True, PatientName=query) == {S(0), S(1)}, query


def test_exact_name_is_not_fuzzy(filled: Archive) -> None:
    assert studies(filled, PatientName="an nguyen") == set()


def test_issuer_with_patient_id(filled: Archive) -> None:
    assert studies(filled, PatientID="079080001234", IssuerOfPatientID="CCCD") == {S(0), S(1)}
    assert studies(filled, PatientID="079080001234", IssuerOfPatientID="OTHER") == set()
    item = Dataset()
    item.PatientID = "001175009876"
    item.IssuerOfPatientID = "CCCD"
    assert studies(filled, OtherPatientIDsSequence=[item]) == {S(2), S(3)}


def test_series_and_image_levels(filled: Archive) -> None:
    found = filled.search(Level.SERIES, ident(StudyInstanceUID=S(0))).matches
    assert [str(ds.SeriesInstanceUID) for ds in found] == [series_uid(0, 0), series_uid(0, 1)]
    found = filled.search(
        Level.SERIES, ident(Modality="MR", NumberOfSeriesRelatedInstances="")
    ).matches
    assert {int(ds.NumberOfSeriesRelatedInstances) for ds in found} == {1, 2}
    images = filled.search(
        Level.IMAGE, ident(SeriesInstanceUID=series_uid(0, 0), InstanceNumber="")
    ).matches
    assert [str(ds.SOPInstanceUID) for ds in images] == [sop_uid(0, 0, i) for i in range(3)]
    assert [int(ds.InstanceNumber) for ds in images] == [1, 2, 3]


def test_patient_level_counts(filled: Archive) -> None:
    found = filled.search(
        Level.PATIENT,
        ident(
            PatientID="BN001", NumberOfPatientRelatedStudies="", NumberOfPatientRelatedInstances=""
        ),
    ).matches
    assert len(found) == 1
    assert int(found[0].NumberOfPatientRelatedStudies) == 2
    assert int(found[0].NumberOfPatientRelatedInstances) == 7


def test_study_computed_and_json_return_keys(filled: Archive) -> None:
    keys = ident(
        StudyInstanceUID=S(3),
        ModalitiesInStudy="",
        NumberOfStudyRelatedSeries="",
        NumberOfStudyRelatedInstances="",
        PatientName="",
        BodyPartExamined="",  # not a study-level column: comes from the stored JSON
        PixelSpacing="",
    )
    (ds,) = filled.search(Level.STUDY, keys).matches
    assert list(ds.ModalitiesInStudy) == ["CT", "MR"]
    assert int(ds.NumberOfStudyRelatedSeries) == 2 and int(ds.NumberOfStudyRelatedInstances) == 3
    assert str(ds.PatientName) == "Trần^Thị Bình"
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.5]


def test_limit_offset_and_order(filled: Archive) -> None:
    first = filled.search(Level.STUDY, ident(StudyDate=""), limit=3)
    assert first.truncated and len(first.matches) == 3
    dates = [str(ds.StudyDate) for ds in first.matches]
    assert dates == sorted(dates, reverse=True)
    rest = filled.search(Level.STUDY, ident(StudyDate=""), offset=3)
    assert not rest.truncated and len(rest.matches) == 5
    assert not {ds.StudyInstanceUID for ds in first.matches} & {
        ds.StudyInstanceUID for ds in rest.matches
    }


def test_scope_restricts_to_one_study(filled: Archive) -> None:
    scoped = filled.search(Level.STUDY, ident(PatientID="BN001"), study_uid_scope=S(1)).matches
    assert [str(ds.StudyInstanceUID) for ds in scoped] == [S(1)]


@pytest.mark.parametrize(
    ("level", "build", "message"),
    [
        (Level.STUDY, lambda: ident(PatientComments="x"), "not a supported matching key"),
        (Level.STUDY, lambda: ident(Modality="CT"), "SERIES key"),
        (Level.STUDY, lambda: ident(StudyDate="2025-01-01"), "not a valid date"),
        (Level.STUDY, lambda: ident(StudyInstanceUID="1.2.*"), "wildcards"),
        (Level.SERIES, lambda: _raw(0x00200011, "one"), "not an integer"),  # SeriesNumber
    ],
)
def test_bad_queries_are_reported(
    archive: Archive, level: Level, build: Callable[[], Dataset], message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        archive.search(level, build())


def test_fuzzy_prefix_words_can_match_several_patients(filled: Archive) -> None:
    assert studies(filled, fuzzy=True, PatientName="Nguyễn Văn") == {S(0), S(1), S(6)}


def test_query_indexes_are_migrated(archive: Archive) -> None:
    inspector = inspect(archive.engine)
    names = {
        ix["name"]
        for table in ("study", "series", "instance")
        for ix in inspector.get_indexes(table)
    }
    assert {
        "ix_study_referring_folded",
        "ix_series_study_number",
        "ix_instance_series_number",
    } <= names
    if archive.engine.dialect.name == "postgresql":
        patient = {ix["name"] for ix in inspector.get_indexes("patient")}
        assert "ix_patient_name_folded_pattern" in patient


def test_values_outside_the_index_come_from_each_matchs_own_instance(filled: Archive) -> None:
    """Attributes kept only in the stored JSON are read from an instance of that very study
    (a lookup not tied to its row would answer every study with one patient's data)."""
    found = filled.search(Level.STUDY, ident(StudyInstanceUID="", PatientAge="")).matches
    ages = {str(ds.StudyInstanceUID): ds.PatientAge for ds in found}
    assert ages == {S(n): patient_age(n) for n in range(len(STUDIES))}
    patients = filled.search(Level.PATIENT, ident(PatientID="", PatientAge="")).matches
    assert len({ds.PatientAge for ds in patients}) == len(patients) > 1


def test_fuzzy_words_with_a_trailing_star_and_wildcards_kept(filled: Archive) -> None:
    """A list that appends "*" to what was typed still matches words (issue 17 item 2); a
    wildcard anywhere else keeps its PS3.4 meaning."""
    binh = {S(2), S(3), S(6)}  # Trần Thị Bình, NGUYEN VAN BINH
    for query in ["binh", "binh*", "Bình*", "BÌNH"]:
        assert studies(filled, fuzzy=True, PatientName=query) == binh, query
    assert studies(filled, fuzzy=True, PatientName="van an*") == {S(0), S(1)}
    assert studies(filled, fuzzy=True, PatientName="thi binh*") == {S(2), S(3)}
    assert studies(filled, fuzzy=True, PatientName="*duc*") == {S(4), S(5)}
    assert studies(filled, fuzzy=True, PatientName="ng?yen*") == {S(0), S(1), S(6)}
    assert studies(filled, PatientName="binh*") == set()  # not fuzzy: the whole name's start


def _page_uids(
    archive: Archive, sort: list[tuple[str, bool]], offset: int, limit: int
) -> list[str]:
    result = archive.search(Level.STUDY, ident(), sort=sort, count=True, limit=limit, offset=offset)
    assert result.total == len(STUDIES)
    return [str(ds.StudyInstanceUID) for ds in result.matches]


def test_sorted_pages_cover_the_whole_result(filled: Archive) -> None:
    by_name = [("PatientName", False), ("StudyDate", False)]
    pages = [_page_uids(filled, by_name, offset, 3) for offset in (0, 3, 6)]
    flat = [uid for page in pages for uid in page]
    # Lê, Nguyễn x2 (oldest first), NGUYEN, Phạm, Smith, Trần x2: folded names, across pages
    assert flat == [S(4), S(0), S(1), S(6), S(5), S(7), S(2), S(3)]
    newest = _page_uids(filled, [("StudyDate", True)], 0, 2)
    assert newest == [S(7), S(1)]
    most_series = _page_uids(filled, [("NumberOfStudyRelatedSeries", True)], 0, 3)
    assert set(most_series) == {S(0), S(3), S(7)}
    with pytest.raises(QueryError):
        filled.search(Level.STUDY, ident(), sort=[("PixelData", False)])
    counted = filled.search(Level.STUDY, ident(PatientName="nguyen"), fuzzy=True, count=True)
    assert counted.total == 3
