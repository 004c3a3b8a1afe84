"""QIDO-RS (PS3.18 10.6): search for studies, series and instances over HTTP.

Query parameters become a pydicom identifier (matching keys with values, return
keys empty) and go to the same engine as C-FIND, so both doors match alike.
Keys come by keyword or by tag (``00100020``), sequence items as
``OtherPatientIDsSequence.PatientID``; ``includefield`` takes tags, keywords or
``all``, comma-separated or repeated; wildcards may arrive percent-encoded.
A parameter this archive cannot match on (unknown, private, of a lower level,
a sequence) is ignored and named in a ``Warning: 299`` header (PS3.18 8.3.4),
so a peer's query still answers; a malformed value is a 400 with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
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
MAX_OFFSET = 2**31
WARNING_MAX = 1000  # characters of warning text: it repeats what the client sent
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


def _tag(name: str) -> int | None:
    """A keyword or an 8-digit hex tag, as the standard allows for both; None if neither."""
    if _TAG.match(name):
        return int(name, 16)
    tag = tag_for_keyword(name)
    return None if tag is None else int(tag)


def _element(tag: int, value: str) -> DataElement:
    vr = dictionary_VR(tag) if keyword_for_tag(tag) else "LO"
    if vr in ("IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "AT") or vr.startswith("O"):
        vr = "LO"  # keep the text as sent; the engine validates and reports
    return DataElement(tag, vr, value.replace(",", "\\") if vr == "UI" else value)


@dataclass
class QidoRequest:
    """A QIDO query as the engine takes it, and what was left out of it and why."""

    identifier: Dataset
    fuzzy: bool = False
    include_all: bool = False
    ignored: list[str] = field(default_factory=list)


def _matching_key(name: str, value: str, request: QidoRequest) -> None:
    """Add one ``name=value`` parameter to the identifier, or say why it is ignored."""
    path = name.split(".")
    if len(path) > 2:
        request.ignored.append(f"{name}: only one level of sequence matching is supported")
        return
    tags = [_tag(part) for part in path]
    if any(tag is None for tag in tags):
        request.ignored.append(f"{name}: unknown attribute")
        return
    if any((tag >> 16) % 2 for tag in tags if tag is not None):
        request.ignored.append(f"{name}: private attributes are not matched")
        return
    if len(tags) == 2:
        sequence, inner = tags
        assert sequence is not None and inner is not None
        if not keyword_for_tag(sequence) or dictionary_VR(sequence) != "SQ":
            request.ignored.append(f"{name}: {path[0]} is not a sequence")
            return
        if keyword_for_tag(inner) and dictionary_VR(inner) == "SQ":
            request.ignored.append(f"{name}: only one level of sequence matching is supported")
            return
        item = Dataset()
        item.add(_element(inner, value))
        request.identifier.add(DataElement(sequence, "SQ", [item]))
        return
    tag = tags[0]
    assert tag is not None
    if keyword_for_tag(tag) and dictionary_VR(tag) == "SQ":
        request.ignored.append(f"{name}: a sequence; match on one of its attributes")
        return
    request.identifier.add(_element(tag, value))


def build_identifier(request: Request, level: Level) -> QidoRequest:
    """The identifier of a QIDO request, with ``fuzzymatching``, ``includefield=all`` and the
    parameters ignored (PS3.18 8.3.4: unknown or unsupported ones are ignored, and said so)."""
    query = QidoRequest(Dataset())
    for name in DEFAULT_RETURN.get(level, ()):
        tag = tag_for_keyword(name)
        assert tag is not None
        query.identifier.add(DataElement(tag, dictionary_VR(tag), None))
    for name, value in request.query_params.multi_items():
        if name not in CONTROL_PARAMETERS:
            _matching_key(name, value, query)
    for value in request.query_params.getlist("includefield"):
        for name in (v.strip() for v in value.split(",") if v.strip()):
            if name == "all":
                query.include_all = True
                continue
            tag = _tag(name)
            if tag is None:
                query.ignored.append(f"includefield {name}: unknown attribute")
                continue
            if tag not in query.identifier:
                vr = dictionary_VR(tag) if keyword_for_tag(tag) else "UN"
                query.identifier.add(DataElement(tag, vr, None))
    fuzzy = request.query_params.get("fuzzymatching", "false").lower()
    if fuzzy not in ("true", "false"):
        raise QueryError("fuzzymatching must be true or false")
    query.fuzzy = fuzzy == "true"
    return query


def _paging(request: Request) -> tuple[int, int]:
    try:
        limit = int(request.query_params.get("limit", MAX_LIMIT))
        offset = int(request.query_params.get("offset", 0))
    except ValueError as exc:
        raise QueryError("limit and offset must be integers") from exc
    if limit < 1 or offset < 0:
        raise QueryError("limit must be positive and offset not negative")
    # Past the last match the answer is empty, however far: no database needs 64 bits for it.
    return min(limit, MAX_LIMIT), min(offset, MAX_OFFSET)


def warning_header(text: str) -> str:
    """A ``Warning: 299`` value (RFC 7234 5.5) whose quoted text is safe printable ASCII.

    The text names what a client sent, so anything but printable ASCII, quotes
    and backslashes is replaced, and it is cut to a bounded length.
    """
    safe = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)
    if len(safe) > WARNING_MAX:
        safe = safe[: WARNING_MAX - 3] + "..."
    return f'299 PACS "{safe}"'


def _search(
    request: Request,
    principal: Principal,
    level: Level,
    fixed: dict[str, str],
) -> JSONResponse:
    archive: Archive = request.app.state.archive
    check_study_scope(principal, fixed.get("StudyInstanceUID", principal.study_uid))
    try:
        query = build_identifier(request, level)
        for keyword, value in fixed.items():
            tag = tag_for_keyword(keyword)
            assert tag is not None
            query.identifier.add(_element(tag, value))
        limit, offset = _paging(request)
        result = archive.search(
            level,
            query.identifier,
            fuzzy=query.fuzzy,
            limit=limit,
            offset=offset,
            study_uid_scope=principal.study_uid,
            include_all=query.include_all,
            ignore_unsupported=True,
        )
    except QueryError as exc:
        archive.audit.record(principal, "qido", f"failure: {exc}", detail=str(request.url.query))
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    archive.audit.record(
        principal,
        "qido",
        study_uid=fixed.get("StudyInstanceUID"),
        detail=f"{level.name} {request.url.query}"[:1000],
        patients=result.patient_ids(),
    )
    root = base_url(request, archive.settings)
    body = [_with_retrieve_url(item, level, root) for item in result.json()]
    if level is Level.STUDY:
        _mark_external(archive, body)
    response = JSONResponse(body, media_type="application/dicom+json")
    if result.truncated:
        response.headers.append(
            "Warning",
            warning_header(
                "The number of results exceeded the maximum supported by the server. "
                "Additional results can be requested."
            ),
        )
    ignored = query.ignored + result.ignored
    if ignored:
        text = "The following query parameters were ignored: " + "; ".join(ignored)
        response.headers.append("Warning", warning_header(text))
    return response


# A study received from another facility carries where it came from (facility:NAME, ae:TITLE,
# media) in a private block: creator (0009,0010) "PACS EXTERNAL", origin (0009,1000). DICOM has
# no public attribute for "not acquired here"; viewers ignore private elements they don't know.
EXTERNAL_CREATOR = "PACS EXTERNAL"


def _mark_external(archive: Archive, studies: list[dict[str, Any]]) -> None:
    uids = [str((item.get("0020000D", {}).get("Value") or [""])[0]) for item in studies]
    origins = archive.routing.external.origins(uids)
    for uid, item in zip(uids, studies, strict=True):
        if uid in origins:
            item["00090010"] = {"vr": "LO", "Value": [EXTERNAL_CREATOR]}
            item["00091000"] = {"vr": "LO", "Value": [origins[uid][:64]]}


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
