"""``GET /api/studies``: the web app's study list, sorted and paged on the server.

QIDO-RS has no sort order and no total, so a list built on it could only sort the
rows on screen and never say how many studies matched. This endpoint runs the
same engine as QIDO and C-FIND (through the archive facade) with a sort order
over the whole result, a page of it, and the total; a typed name matches words
of the patient's name in any order, accents ignored ("bich", "van an", "Bích").
Every call is audited as a query with the patients it returned, like QIDO.

Studies received from another facility are named in ``external`` with their origin, so
that the list marks them ("ngoài viện").

``GET /api/studies/latest`` gives the change feed's newest sequence number, and
nothing else, so that an open list can poll cheaply (and without an audit record
per poll) and refresh when new studies arrive.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from pacs.archive import Archive
from pacs.auth.http import authorize
from pacs.auth.principal import Principal
from pacs.query import Level, QueryError

router = APIRouter()
Searcher = Annotated[Principal, Depends(authorize("search"))]

MAX_PAGE = 100
RETURNED = (
    "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy",
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDescription",
    "ReferringPhysicianName", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
    "InstitutionName",
)  # fmt: skip
# sort=-StudyDate,PatientName: up to three keys, "-" for descending.
_SORT = re.compile(r"-?[A-Za-z]{1,40}")
MAX_SORT_KEYS = 3


def _sort(text: str) -> list[tuple[str, bool]]:
    keys = [part.strip() for part in text.split(",") if part.strip()]
    if len(keys) > MAX_SORT_KEYS or not all(_SORT.fullmatch(key) for key in keys):
        raise QueryError("sort takes up to three attribute keywords, each optionally after '-'")
    return [(key.lstrip("-"), key.startswith("-")) for key in keys]


def _identifier(filters: dict[str, str]) -> Dataset:
    """Return keys empty, matching keys with the (stripped) value typed in the list's filters."""
    identifier = Dataset()
    for keyword in RETURNED:
        tag = tag_for_keyword(keyword)
        assert tag is not None
        value = filters.get(keyword, "").strip()
        identifier.add(DataElement(tag, dictionary_VR(tag), value))
    return identifier


@router.get("/api/studies")
def list_studies(
    request: Request,
    principal: Searcher,
    name: Annotated[str, Query(max_length=64)] = "",
    patient_id: Annotated[str, Query(max_length=64)] = "",
    accession: Annotated[str, Query(max_length=16)] = "",
    date: Annotated[str, Query(max_length=17)] = "",
    modality: Annotated[str, Query(max_length=16)] = "",
    sort: Annotated[str, Query(max_length=128)] = "-StudyDate",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 25,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> dict[str, Any]:
    """A page of the studies matching the filters, in ``sort`` order, and how many match."""
    archive: Archive = request.app.state.archive
    filters = {
        "PatientName": name,
        "PatientID": patient_id,
        "AccessionNumber": accession,
        "StudyDate": date,
        "ModalitiesInStudy": modality,
    }
    try:
        result = archive.search(
            Level.STUDY,
            _identifier(filters),
            fuzzy=True,
            limit=limit,
            offset=offset,
            study_uid_scope=principal.study_uid,
            sort=_sort(sort),
            count=True,
        )
    except QueryError as exc:
        archive.audit.record(principal, "qido", f"failure: {exc}", detail="study list")
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    archive.audit.record(
        principal,
        "qido",  # a study query like QIDO's: same DICOM audit code, same aggregation
        detail=f"study list {request.url.query}"[:1000],
        patients=result.patient_ids(),
    )
    studies = result.json()
    uids = [str((study.get("0020000D", {}).get("Value") or [""])[0]) for study in studies]
    return {
        "total": result.total,
        "offset": offset,
        "limit": limit,
        "studies": studies,
        # Studies received from another facility, by Study Instance UID: where they came from
        # (facility:NAME, ae:TITLE, media); the list marks them, with their InstitutionName.
        "external": archive.routing.external.origins(uids),
        "last_change": archive.last_change(),
    }


@router.get("/api/studies/latest")
def latest_change(request: Request, principal: Searcher) -> dict[str, int]:
    """The newest change's number: when it grows, new studies or series arrived."""
    archive: Archive = request.app.state.archive
    return {"last_change": archive.last_change()}
