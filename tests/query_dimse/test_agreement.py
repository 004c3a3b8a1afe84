"""Proof that the two doors agree: one table of queries through QIDO-RS and C-FIND.

Every row is sent with the same keys through HTTP (``/dicom-web``) and through
a relational C-FIND (pynetdicom, Study Root or Patient Root) against the same
generated archive, on both index databases; the matched UIDs of the query level
must be the same set. Rows cover each matching type (single value, wildcard,
range, UID list, universal, sequence), each level, names with and without
accents, and fuzzy name matching on and off (QIDO ``fuzzymatching``, C-FIND's
``cfind_fuzzy_names`` setting).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from pydicom.dataset import Dataset

from pacs.archive import Archive
from pacs.auth.accounts import create_token
from pacs.dimse.server import DimseServer
from tests.query_dimse.archive_factory import (
    MR_IMAGE_STORAGE,
    series_uid,
    sop_uid,
    study_uid,
)
from tests.query_dimse.scu import PATIENT_ROOT, STUDY_ROOT, c_find, find_association, query

UNIQUE = {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}
UNIQUE_TAG = {"STUDY": "0020000D", "SERIES": "0020000E", "IMAGE": "00080018"}
NO_SUCH_UID = "1.2.826.0.1.3680043.8.498.999"


@dataclass(frozen=True)
class Row:
    level: str
    keys: dict[str, str | list[str]] = field(default_factory=dict)
    fuzzy: bool = False
    study: int | None = None  # scope: /studies/{s}/... and StudyInstanceUID in C-FIND
    series: int | None = None  # scope: /studies/{s}/series/{r}/instances
    model: str = STUDY_ROOT
    empty: bool = False  # the row proves that nothing matches


TABLE: list[Row] = [
    # STUDY level: universal, single value, wildcard
    Row("STUDY"),
    Row("STUDY", {"PatientID": "BN001"}),
    Row("STUDY", {"PatientID": "BN00*"}),
    Row("STUDY", {"PatientID": "EXT-??"}),
    Row("STUDY", {"PatientID": "BN404"}, empty=True),
    Row("STUDY", {"AccessionNumber": "ACC2002"}),
    Row("STUDY", {"AccessionNumber": "ACC1*"}),
    Row("STUDY", {"StudyDescription": "CT*"}),
    Row("STUDY", {"StudyDescription": "*sọ*"}),
    Row("STUDY", {"PatientSex": "F"}),
    Row("STUDY", {"IssuerOfPatientID": "BV-HUE", "PatientID": "BN003"}),
    # names, with and without accents, exact/wildcard and fuzzy
    Row("STUDY", {"PatientName": "Nguyễn^Văn An"}),
    Row("STUDY", {"PatientName": "nguyen^van an"}),
    Row("STUDY", {"PatientName": "Nguy*"}),
    Row("STUDY", {"PatientName": "*Bình"}),
    Row("STUDY", {"PatientName": "*binh"}),
    Row("STUDY", {"PatientName": "Tr?n*"}),
    Row("STUDY", {"PatientName": "nguyen an"}, fuzzy=True),
    Row("STUDY", {"PatientName": "an nguyen"}, fuzzy=True),
    Row("STUDY", {"PatientName": "NGUYEN VAN AN"}, fuzzy=True),
    Row("STUDY", {"PatientName": "đức"}, fuzzy=True),
    Row("STUDY", {"PatientName": "nguyen an"}, empty=True),
    Row("STUDY", {"ReferringPhysicianName": "hoang^van nam"}),
    Row("STUDY", {"ReferringPhysicianName": "Đặng*"}),
    Row("STUDY", {"PatientName": "Nguyễn*"}, model=PATIENT_ROOT),
    # ranges (open both ways, combined date and time)
    Row("STUDY", {"StudyDate": "20250101-20251231"}),
    Row("STUDY", {"StudyDate": "-20250101"}),
    Row("STUDY", {"StudyDate": "20260101-"}),
    Row("STUDY", {"StudyDate": "20250620"}),
    Row("STUDY", {"StudyDate": "20250101-20261231", "StudyTime": "080000-120000"}),
    Row("STUDY", {"StudyTime": "-100000"}),
    Row("STUDY", {"PatientBirthDate": "19700101-19851231"}),
    Row("STUDY", {"PatientName": "*an*", "StudyDate": "20250101-"}, model=PATIENT_ROOT),
    # UID lists, computed attributes, sequences
    Row("STUDY", {"StudyInstanceUID": [study_uid(0), study_uid(3), NO_SUCH_UID]}),
    Row("STUDY", {"StudyInstanceUID": study_uid(5)}),
    Row("STUDY", {"ModalitiesInStudy": "MR"}),
    Row("STUDY", {"ModalitiesInStudy": "CR"}),
    Row("STUDY", {"OtherPatientIDsSequence.PatientID": "079080001234"}),
    # SERIES level
    Row("SERIES"),
    Row("SERIES", {"Modality": "CT"}),
    Row("SERIES", study=0),
    Row("SERIES", {"Modality": "MR"}, study=3),
    Row("SERIES", {"SeriesInstanceUID": [series_uid(0, 1), series_uid(3, 1), NO_SUCH_UID]}),
    Row("SERIES", {"SeriesNumber": "2"}),
    Row("SERIES", {"SeriesDescription": "MR*"}),
    Row("SERIES", {"Modality": "MR", "PatientName": "nguyen*"}),
    Row("SERIES", {"SeriesDate": "20251101-20260401"}),
    Row("SERIES", {"PatientName": "binh"}, fuzzy=True),
    # IMAGE level
    Row("IMAGE", study=0, series=0),
    Row("IMAGE", study=3),
    Row("IMAGE", {"SOPInstanceUID": [sop_uid(0, 0, 2), sop_uid(6, 0, 1), NO_SUCH_UID]}),
    Row("IMAGE", {"InstanceNumber": "1"}),
    Row("IMAGE", {"SOPClassUID": MR_IMAGE_STORAGE}),
    Row("IMAGE", {"PatientID": "BN004"}),
    Row("IMAGE", {"PatientName": "Lê*"}, model=PATIENT_ROOT),
    Row("IMAGE", {"PatientName": "anh le"}, fuzzy=True),
    Row("IMAGE", {"Modality": "CR", "StudyDate": "20250101-20251231"}),
]


def _qido_path(row: Row) -> str:
    if row.series is not None:
        study = row.study or 0
        series = series_uid(study, row.series)
        return f"/dicom-web/studies/{study_uid(study)}/series/{series}/instances"
    resource = {"STUDY": "studies", "SERIES": "series", "IMAGE": "instances"}[row.level]
    if row.study is not None:
        return f"/dicom-web/studies/{study_uid(row.study)}/{resource}"
    return f"/dicom-web/{resource}"


def qido_uids(client: TestClient, row: Row) -> set[str]:
    params = {key: ",".join(v) if isinstance(v, list) else v for key, v in row.keys.items()}
    params["fuzzymatching"] = "true" if row.fuzzy else "false"
    response = client.get(_qido_path(row), params=params)
    assert response.status_code in (200, 204), f"{row}: {response.status_code} {response.text}"
    if response.status_code == 204 or not response.content:
        return set()
    return {item[UNIQUE_TAG[row.level]]["Value"][0] for item in response.json()}


def _identifier(row: Row) -> Dataset:
    ds = query(row.level)
    setattr(ds, UNIQUE[row.level], "")
    for key, value in row.keys.items():
        text = "\\".join(value) if isinstance(value, list) else value
        if "." in key:
            sequence, keyword = key.split(".")
            item = Dataset()
            setattr(item, keyword, text)
            setattr(ds, sequence, [item])
        else:
            setattr(ds, key, text)
    if row.study is not None:
        ds.StudyInstanceUID = study_uid(row.study)
    if row.series is not None:
        ds.SeriesInstanceUID = series_uid(row.study or 0, row.series)
    return ds


def test_qido_and_c_find_match_the_same_uids(
    populated: Archive, dimse_server: DimseServer, client: TestClient
) -> None:
    assert len(TABLE) >= 40
    # A bearer token instead of HTTP Basic: no password hash to verify on every request.
    client.auth = None
    client.headers["Authorization"] = f"Bearer {create_token(populated.sessions, 'admin')}"
    disagreements: list[str] = []
    # QIDO matches a StudyDate range with a StudyTime as one date-time range (it has no
    # negotiation); C-FIND does only when the SCU negotiated it, as here.
    with find_association(dimse_server.port, relational=True, combined_datetime=True) as assoc:
        for row in TABLE:
            populated.settings.cfind_fuzzy_names = row.fuzzy
            outcome = c_find(assoc, row.model, _identifier(row))
            assert outcome.status == 0x0000, (
                f"{row}: C-FIND {outcome.status:#06x} {outcome.comment}"
            )
            dimse = {str(m[UNIQUE[row.level]].value) for m in outcome.matches}
            http = qido_uids(client, row)
            if dimse != http:
                disagreements.append(f"{row}: C-FIND {sorted(dimse)} != QIDO {sorted(http)}")
            elif bool(dimse) == row.empty:
                disagreements.append(
                    f"{row}: both doors {sorted(dimse)}, expected empty={row.empty}"
                )
    assert not disagreements, "\n".join(disagreements)
