"""C-FIND SCP with pynetdicom: levels, statuses, relational rules, authorization, cancel, audit."""

from __future__ import annotations

from bench.query import load
from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from tests.query_dimse.archive_factory import PATIENTS, STUDIES, series_uid, study_uid
from tests.query_dimse.scu import (
    PATIENT_ROOT,
    STUDY_ROOT,
    c_find,
    find_association,
    query,
)

SUCCESS, CANCEL = 0x0000, 0xFE00


def test_every_level_of_both_models(populated: Archive, dimse_server: DimseServer) -> None:
    first = STUDIES[0]
    with find_association(dimse_server.port) as assoc:
        patients = c_find(assoc, PATIENT_ROOT, query("PATIENT", PatientID="", PatientName=""))
        studies = c_find(assoc, STUDY_ROOT, query("STUDY", StudyInstanceUID="", StudyDate=""))
        patient_studies = c_find(
            assoc,
            PATIENT_ROOT,
            query("STUDY", PatientID=PATIENTS[first.patient].patient_id, StudyInstanceUID=""),
        )
        series = c_find(
            assoc,
            STUDY_ROOT,
            query("SERIES", StudyInstanceUID=study_uid(0), SeriesInstanceUID="", Modality=""),
        )
        images = c_find(
            assoc,
            PATIENT_ROOT,
            query(
                "IMAGE",
                PatientID=PATIENTS[first.patient].patient_id,
                StudyInstanceUID=study_uid(0),
                SeriesInstanceUID=series_uid(0, 0),
                SOPInstanceUID="",
                InstanceNumber="",
            ),
        )
    assert all(o.status == SUCCESS for o in (patients, studies, patient_studies, series, images))
    assert sorted(m.PatientID for m in patients.matches) == sorted(p.patient_id for p in PATIENTS)
    assert len(studies.matches) == len(STUDIES)
    own = {study_uid(s) for s, spec in enumerate(STUDIES) if spec.patient == first.patient}
    assert {m.StudyInstanceUID for m in patient_studies.matches} == own
    assert sorted(m.SeriesInstanceUID for m in series.matches) == [
        series_uid(0, r) for r in range(len(first.series))
    ]
    assert sorted(int(m.InstanceNumber) for m in images.matches) == [1, 2, 3]
    for match in images.matches:
        assert match.QueryRetrieveLevel == "IMAGE"
        assert match.StudyInstanceUID == study_uid(0)  # unique keys of the levels above
        assert match.SeriesInstanceUID == series_uid(0, 0)


def test_pending_response_per_match(populated: Archive, dimse_server: DimseServer) -> None:
    with find_association(dimse_server.port) as assoc:
        outcome = c_find(assoc, STUDY_ROOT, query("STUDY", StudyInstanceUID="", PatientName=""))
    assert outcome.status == SUCCESS
    assert outcome.pending_statuses == [0xFF00] * len(STUDIES)


def test_vietnamese_name_in_utf8(populated: Archive, dimse_server: DimseServer) -> None:
    with find_association(dimse_server.port) as assoc:
        outcome = c_find(
            assoc, STUDY_ROOT, query("STUDY", PatientName="Trần*", StudyInstanceUID="")
        )
    assert outcome.status == SUCCESS
    assert {str(m.PatientName) for m in outcome.matches} == {"Trần^Thị Bình"}
    assert all(m.SpecificCharacterSet == "ISO_IR 192" for m in outcome.matches)


def test_latin1_profile_keeps_what_latin1_can_carry(
    populated: Archive, dimse_server: DimseServer
) -> None:
    with find_association(dimse_server.port, calling="LATIN1WS") as assoc:
        outcome = c_find(assoc, PATIENT_ROOT, query("PATIENT", PatientID="BN001", PatientName=""))
    assert outcome.status == SUCCESS
    (match,) = outcome.matches
    assert match.SpecificCharacterSet == "ISO_IR 100"
    assert str(match.PatientName) == "Nguyên^Van An"  # ễ -> ê (Latin-1 has it), ă -> a


def test_hierarchical_query_needs_unique_keys_above(
    populated: Archive, dimse_server: DimseServer
) -> None:
    with find_association(dimse_server.port) as assoc:
        missing = c_find(assoc, STUDY_ROOT, query("SERIES", Modality="MR", SeriesInstanceUID=""))
        wildcard = c_find(
            assoc, STUDY_ROOT, query("SERIES", StudyInstanceUID="1.2*", SeriesInstanceUID="")
        )
        wrong_level = c_find(assoc, STUDY_ROOT, query("PATIENT", PatientID=""))
        below = c_find(
            assoc, STUDY_ROOT, query("STUDY", StudyInstanceUID="", SeriesInstanceUID="1.2.3")
        )
    for outcome in (missing, wildcard, wrong_level, below):
        assert outcome.status == 0xA900 and outcome.comment
        assert not outcome.matches
    assert "StudyInstanceUID" in missing.comment
    assert "PATIENT" in wrong_level.comment


def test_relational_query_when_negotiated(populated: Archive, dimse_server: DimseServer) -> None:
    with find_association(dimse_server.port, relational=True) as assoc:
        outcome = c_find(assoc, STUDY_ROOT, query("SERIES", Modality="MR", SeriesInstanceUID=""))
        by_name = c_find(assoc, PATIENT_ROOT, query("IMAGE", PatientName="Lê*", SOPInstanceUID=""))
    assert outcome.status == SUCCESS
    expected = {
        series_uid(s, r)
        for s, spec in enumerate(STUDIES)
        for r, (modality, _) in enumerate(spec.series)
        if modality == "MR"
    }
    assert {m.SeriesInstanceUID for m in outcome.matches} == expected
    assert by_name.status == SUCCESS
    assert len(by_name.matches) == 2  # Lê Đức Anh: one MR study with two images


def test_unregistered_and_store_only_aes_are_refused(
    populated: Archive, dimse_server: DimseServer
) -> None:
    for calling in ("STRANGER", "MODALITY"):
        with find_association(dimse_server.port, calling=calling) as assoc:
            outcome = c_find(assoc, STUDY_ROOT, query("STUDY", StudyInstanceUID=""))
        assert outcome.status == 0xC000
        assert "not authorized" in outcome.comment
        assert not outcome.matches
    events = [e for e in populated.audit.events() if e.action == "c-find"]
    assert [(e.actor, e.outcome.startswith("failure")) for e in events] == [
        ("STRANGER", True),
        ("MODALITY", True),
    ]


def test_one_audit_record_per_query(populated: Archive, dimse_server: DimseServer) -> None:
    with find_association(dimse_server.port) as assoc:
        c_find(assoc, STUDY_ROOT, query("STUDY", PatientID="BN002", StudyInstanceUID=""))
        c_find(assoc, STUDY_ROOT, query("SERIES", StudyInstanceUID=study_uid(2), Modality=""))
    events = [e for e in populated.audit.events() if e.action == "c-find"]
    assert [(e.actor, e.outcome, e.patient_id, e.study_uid) for e in events] == [
        ("WORKSTATION", "success", "BN002", ""),
        ("WORKSTATION", "success", "", study_uid(2)),
    ]
    assert "2 matches" in events[0].detail


def test_cancel_stops_the_responses(archive: Archive, dimse_server: DimseServer) -> None:
    """C-CANCEL after the first pending response: the SCP answers 0xFE00 and stops early.

    Thousands of matches (index rows written directly, as the benchmark does) keep
    the SCP streaming long enough for the cancel to arrive mid-way.
    """
    total = load(archive.engine, instances=3000, studies=10).instance_count
    identifier = query("IMAGE", SOPInstanceUID="")
    with find_association(dimse_server.port, relational=True) as assoc:
        pending, final = 0, -1
        for status, _ in assoc.send_c_find(identifier, STUDY_ROOT, msg_id=41):
            if status.Status in (0xFF00, 0xFF01):
                pending += 1
                if pending == 1:
                    assoc.send_c_cancel(41, query_model=STUDY_ROOT)
                continue
            final = int(status.Status)
        assert final == CANCEL
        assert 1 <= pending < total
        # The association stays usable after a cancel.
        after = c_find(assoc, STUDY_ROOT, query("STUDY", StudyInstanceUID=""))
    assert after.status == SUCCESS and len(after.matches) == 10
