"""QIDO-RS (PS3.18 10.6): search for studies, series and instances over HTTP.

Query parameters become a pydicom identifier (matching keys with values, return
keys empty) and go to the same engine as C-FIND, so both doors match alike.
Keys come by keyword or by tag (``00100020``), sequence items as
``OtherPatientIDsSequence.PatientID``; ``includefield`` takes tags, keywords or
``all``, comma-separated or repeated; wildcards may arrive percent-encoded.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from dicomweb.urls import base_url
from pacs.archive import Archive
from pacs.auth.http import authorize
from pacs.auth.policy import check_study_scope
from pacs.auth.principal import Principal
from pacs.query import Level, QueryError

router = APIRouter()
SearchPrincipal = Annotated[Principal, Depends(authorize("search"))]

MAX_LIMIT = 1000
CONTROL_PARAMETERS = {"limit", "offset", "includefield", "fuzzymatching"}
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")

# PS3.18 Table 10.6.3-3..5: attributes every response carries at each level.
DEFAULT_RETURN = {
    Level.STUDY: (
        "StudyDate", "StudyTime", "AccessionNumber", "InstanceAvailability", "ModalitiesInStudy",
        "ReferringPhysicianName", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
        "StudyInstanceUID", "StudyID", "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances", "StudyDescription",
    ),
    Level.SERIES: (
        "Modality", "SeriesDescription", "SeriesNumber", "SeriesInstanceUID",
        "NumberOfSeriesRelatedInstances", "PerformedProcedureStepStartDate", "SeriesDate",
        "SeriesTime", "BodyPartExamined",
    ),
    Level.IMAGE: (
        "SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "NumberOfFrames",
    ),
}  # fmt: skip


def _tag(name: str) -> int:
    """A keyword or an 8-digit hex tag, as the standard allows for both."""
    if _TAG.match(name):
        return int(name, 16)
    tag = tag_for_keyword(name)
    if tag is None:
        raise QueryError(f"unknown attribute {name!r}")
    return int(tag)


def _element(tag: int, value: str) -> DataElement:
    vr = dictionary_VR(tag) if keyword_for_tag(tag) else "LO"
    if vr == "SQ":
        raise QueryError(f"{keyword_for_tag(tag)} is a sequence: match on one of its attributes")
    if vr in ("IS", "DS", "US", "UL", "SS", "SL", "FL", "FD") or vr.startswith("O"):
        vr = "LO"  # keep the text as sent; the engine validates and reports
    return DataElement(tag, vr, value.replace(",", "\\") if vr == "UI" else value)


def build_identifier(request: Request, level: Level) -> tuple[Dataset, bool, bool]:
    """The identifier of a QIDO request, whether ``fuzzymatching`` and ``includefield=all``."""
    identifier = Dataset()
    include_all = False
    for name in DEFAULT_RETURN.get(level, ()):
        tag = _tag(name)
        identifier.add(DataElement(tag, dictionary_VR(tag), None))
    for name, value in request.query_params.multi_items():
        if name in CONTROL_PARAMETERS:
            continue
        path = name.split(".")
        if len(path) == 2:
            sequence, inner = _tag(path[0]), _tag(path[1])
            item = Dataset()
            item.add(_element(inner, value))
            identifier.add(DataElement(sequence, "SQ", [item]))
            continue
        if len(path) > 2:
            raise QueryError(f"{name}: only one level of sequence matching is supported")
        identifier.add(_element(_tag(name), value))
    for value in request.query_params.getlist("includefield"):
        for name in (v.strip() for v in value.split(",") if v.strip()):
            if name == "all":
                include_all = True
                continue
            tag = _tag(name)
            if tag not in identifier:
                vr = dictionary_VR(tag) if keyword_for_tag(tag) else "UN"
                identifier.add(DataElement(tag, vr, None))
    fuzzy = request.query_params.get("fuzzymatching", "false").lower() == "true"
    return identifier, fuzzy, include_all


def _paging(request: Request) -> tuple[int, int]:
    try:
        limit = int(request.query_params.get("limit", MAX_LIMIT))
        offset = int(request.query_params.get("offset", 0))
    except ValueError as exc:
        raise QueryError("limit and offset must be integers") from exc
    if limit < 1 or offset < 0:
        raise QueryError("limit must be positive and offset not negative")
    return min(limit, MAX_LIMIT), offset


def _search(
    request: Request,
    principal: Principal,
    level: Level,
    fixed: dict[str, str],
) -> JSONResponse:
    archive: Archive = request.app.state.archive
    check_study_scope(principal, fixed.get("StudyInstanceUID", principal.study_uid))
    try:
        identifier, fuzzy, include_all = build_identifier(request, level)
        for keyword, value in fixed.items():
            identifier.add(_element(_tag(keyword), value))
        limit, offset = _paging(request)
        result = archive.search(
            level,
            identifier,
            fuzzy=fuzzy,
            limit=limit,
            offset=offset,
            study_uid_scope=principal.study_uid,
            include_all=include_all,
        )
    except QueryError as exc:
        archive.audit.record(principal, "qido", f"failure: {exc}", detail=str(request.url.query))
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    archive.audit.record(
        principal,
        "qido",
        study_uid=fixed.get("StudyInstanceUID"),
        detail=f"{level.name} {request.url.query}"[:1000],
    )
    root = base_url(request, archive.settings)
    body = [_with_retrieve_url(item, level, root) for item in result.json()]
    headers = {}
    if result.truncated:
        headers["Warning"] = (
            '299 PACS "The number of results exceeded the maximum supported by the server. '
            'Additional results can be requested."'
        )
    return JSONResponse(body, headers=headers, media_type="application/dicom+json")


def _with_retrieve_url(data: dict[str, Any], level: Level, root: str) -> dict[str, Any]:
    study = data.get("0020000D", {}).get("Value", [None])[0]
    url = f"{root}/dicom-web/studies/{study}"
    if level >= Level.SERIES:
        url += f"/series/{data.get('0020000E', {}).get('Value', [''])[0]}"
    if level is Level.IMAGE:
        url += f"/instances/{data.get('00080018', {}).get('Value', [''])[0]}"
    data["00081190"] = {"vr": "UR", "Value": [url]}  # RetrieveURL
    return data


@router.get("/studies")
def search_studies(request: Request, principal: SearchPrincipal) -> JSONResponse:
    return _search(request, principal, Level.STUDY, {})


@router.get("/series")
def search_series(request: Request, principal: SearchPrincipal) -> JSONResponse:
    return _search(request, principal, Level.SERIES, {})


@router.get("/instances")
def search_instances(request: Request, principal: SearchPrincipal) -> JSONResponse:
    return _search(request, principal, Level.IMAGE, {})


@router.get("/studies/{study}/series")
def search_study_series(study: str, request: Request, principal: SearchPrincipal) -> JSONResponse:
    return _search(request, principal, Level.SERIES, {"StudyInstanceUID": study})


@router.get("/studies/{study}/instances")
def search_study_instances(
    study: str, request: Request, principal: SearchPrincipal
) -> JSONResponse:
    return _search(request, principal, Level.IMAGE, {"StudyInstanceUID": study})


@router.get("/studies/{study}/series/{series}/instances")
def search_series_instances(
    study: str, series: str, request: Request, principal: SearchPrincipal
) -> JSONResponse:
    fixed = {"StudyInstanceUID": study, "SeriesInstanceUID": series}
    return _search(request, principal, Level.IMAGE, fixed)
