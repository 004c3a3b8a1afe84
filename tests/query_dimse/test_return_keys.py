"""C-FIND answers the keys asked and what the standard adds, nothing else (PS3.4 C.4.1.1.3.2);
a StudyDate range with a StudyTime is one date-time range only when the SCU negotiated
combined date-time matching (PS3.4 C.2.2.2.5, extended negotiation byte 2).

Checked with pynetdicom (with and without the negotiation) and DCMTK findscu, which
does not negotiate it, on the generated archive of tests/query_dimse/archive_factory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from tests.query_dimse.archive_factory import STUDIES, study_uid
from tests.query_dimse.scu import PATIENT_ROOT, STUDY_ROOT, c_find, find_association, query
from tests.query_dimse.test_findscu import findscu

CONTROL = {"SpecificCharacterSet", "QueryRetrieveLevel", "RetrieveAETitle"}


def _keywords(matches: list[Dataset]) -> set[frozenset[str]]:
    return {frozenset(str(elem.keyword) for elem in match) for match in matches}


def test_study_root_returns_the_keys_asked_and_the_unique_key(
    populated: Archive, dimse_server: DimseServer
) -> None:
    with find_association(dimse_server.port) as assoc:
        outcome = c_find(assoc, STUDY_ROOT, query("STUDY", PatientName="", StudyDate="2025*"))
    assert outcome.status == 0x0000 and outcome.matches
    # No PatientID: Study Root has no patient level, and it was not asked.
    assert _keywords(outcome.matches) == {
        frozenset(CONTROL | {"PatientName", "StudyDate", "StudyInstanceUID"})
    }
    assert {m.QueryRetrieveLevel for m in outcome.matches} == {"STUDY"}


def test_patient_root_adds_the_unique_keys_of_each_level_down_to_the_query_s(
    populated: Archive, dimse_server: DimseServer
) -> None:
    with find_association(dimse_server.port) as assoc:
        outcome = c_find(
            assoc, PATIENT_ROOT, query("SERIES", PatientID="BN002", StudyInstanceUID=study_uid(3),
                                       Modality="")
        )  # fmt: skip
    assert outcome.status == 0x0000 and len(outcome.matches) == 2
    assert _keywords(outcome.matches) == {
        frozenset(CONTROL | {"PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Modality"})
    }


# 2025 studies between 09:00 and 23:59:59 each day (independent) or from 1 January 09:00
# to 31 December 23:59:59 (combined): study 0 (10 January 08:30) tells them apart.
DATE, TIME = "20250101-20251231", "090000-235959"


def _expected(combined: bool) -> set[str]:
    start, end = ("20250101", "090000"), ("20251231", "235959")
    found = set()
    for index, spec in enumerate(STUDIES):
        if not "20250101" <= spec.date <= "20251231":
            continue
        within = (
            start <= (spec.date, spec.time) <= end
            if combined
            else "090000" <= spec.time <= "235959"
        )
        if within:
            found.add(study_uid(index))
    return found


@pytest.mark.parametrize("combined", [False, True], ids=["independent", "negotiated"])
def test_date_and_time_combine_only_when_negotiated(
    populated: Archive, dimse_server: DimseServer, combined: bool
) -> None:
    assert _expected(True) - _expected(False), "the data must tell the two apart"
    with find_association(dimse_server.port, combined_datetime=combined) as assoc:
        outcome = c_find(
            assoc, STUDY_ROOT, query("STUDY", StudyInstanceUID="", StudyDate=DATE, StudyTime=TIME)
        )
    assert outcome.status == 0x0000
    assert {m.StudyInstanceUID for m in outcome.matches} == _expected(combined)


@pytest.mark.usefixtures("dcmtk")
def test_findscu_gets_the_keys_asked_and_independent_date_time_matching(
    populated: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    found = findscu(
        dimse_server.port, "-S",
        ["QueryRetrieveLevel=STUDY", "StudyInstanceUID", f"StudyDate={DATE}",
         f"StudyTime={TIME}", "AccessionNumber"],
        tmp_path / "rsp",
    )  # fmt: skip
    assert {ds.StudyInstanceUID for ds in found} == _expected(False)
    keys = {frozenset(elem.keyword for elem in ds) for ds in found}
    assert keys == {
        frozenset(CONTROL | {"StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber"})
    }
