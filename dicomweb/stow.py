"""STOW-RS (PS3.18 10.5): upload instances over HTTP through the one ingest path.

The body is parsed as it arrives: each part is spooled (memory while small,
then a temporary file in the spool folder) and handed to
``archive.ingest`` as soon as it is complete, so a 2 GiB upload never sits in
memory. Up to ``PARALLEL_PARTS`` parts are ingested at once while the next ones
are received: each stored instance waits for its file and folder fsyncs and its
index commit, and on this machine class one writer managed 4.7 ms per 512 KiB
file where four concurrent ones managed 0.8 ms (the file system commits
concurrent fsyncs together). Parts are reported in the order they were sent;
two parts of one request with the same SOP Instance UID meet the duplicate
policy in whichever order their ingests finish. The answer is the PS3.18
response dataset: what was stored
(ReferencedSOPSequence, with RetrieveURLs) and what was not and why
(FailedSOPSequence with the failure reason codes of :mod:`pacs.dicom.status`,
the same DIMSE answers for the same failure).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass, field
from typing import Annotated, Any, BinaryIO, cast

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dicomweb.accept import parse_accept
from dicomweb.multipart import MultipartError, MultipartReader, PartData, PartEnd, PartStart
from dicomweb.negotiation import DICOM, DICOM_JSON
from dicomweb.urls import dicomweb_root, instance_path, study_path
from pacs.archive import Archive
from pacs.archive.errors import RETRY_AFTER_S
from pacs.archive.ingest import (
    IngestError,
    IngestResult,
    InvalidObject,
    Origin,
    Outcome,
    Rejected,
    Unavailable,
)
from pacs.auth.http import authorize, client_address
from pacs.auth.policy import check_study_scope
from pacs.auth.principal import Principal
from pacs.dicom import status as st

log = logging.getLogger(__name__)
router = APIRouter()

StorePrincipal = Annotated[Principal, Depends(authorize("store"))]
SPOOL_IN_MEMORY = 8 << 20
PARALLEL_PARTS = 4  # parts ingested at once per request (memory: this many spools)

# Tags of the response dataset.
RETRIEVE_URL = "00081190"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_CLASS = "00081150"
REFERENCED_SOP_INSTANCE = "00081155"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
# The reason text, the one DIMSE puts in Error Comment (0000,0902), which a dataset
# cannot hold: Text Value (UT) beside the FailureReason/WarningReason code in each
# item, and a Warning header (PS3.18 8.10.4) per instance for clients that read
# only headers.
REASON_TEXT = "0040A160"
MAX_WARNING_HEADERS = 20


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


ArchiveDep = Annotated[Archive, Depends(_archive)]


@dataclass
class StowReport:
    """What happened to each part, turned into the PS3.18 response at the end."""

    root: str
    stored: list[IngestResult] = field(default_factory=list)
    failed: list[tuple[str, str, int, str]] = field(default_factory=list)  # class, sop, code, why

    def response_json(self, study_uid: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if study_uid:
            body[RETRIEVE_URL] = {"vr": "UR", "Value": [self.root + study_path(study_uid)]}
        if self.stored:
            body[REFERENCED_SOP_SEQUENCE] = {
                "vr": "SQ",
                "Value": [self._referenced(result) for result in self.stored],
            }
        if self.failed:
            body[FAILED_SOP_SEQUENCE] = {
                "vr": "SQ",
                "Value": [
                    {
                        REFERENCED_SOP_CLASS: _ui(sop_class),
                        REFERENCED_SOP_INSTANCE: _ui(sop_uid),
                        FAILURE_REASON: {"vr": "US", "Value": [code]},
                        **_reason(why),
                    }
                    for sop_class, sop_uid, code, why in self.failed
                ],
            }
        return body

    def _referenced(self, result: IngestResult) -> dict[str, Any]:
        url = self.root + instance_path(
            result.study_uid, result.series_uid, result.sop_instance_uid
        )
        item: dict[str, Any] = {
            REFERENCED_SOP_CLASS: _ui(result.sop_class_uid),
            REFERENCED_SOP_INSTANCE: _ui(result.sop_instance_uid),
            RETRIEVE_URL: {"vr": "UR", "Value": [url]},
        }
        if result.warning:
            item[WARNING_REASON] = {"vr": "US", "Value": [st.WARNING_ELEMENTS_DISCARDED]}
            item.update(_reason(result.warning))
        return item

    def warning_headers(self) -> list[str]:
        """``Warning: 299`` values (PS3.18 8.10.4), one per failed or warned instance."""
        reasons = [(sop_uid, why) for _class, sop_uid, _code, why in self.failed if why]
        reasons += [(r.sop_instance_uid, r.warning) for r in self.stored if r.warning]
        values = []
        for sop_uid, why in reasons[:MAX_WARNING_HEADERS]:
            text = f"{sop_uid}: {why}" if sop_uid else why
            quoted = text.encode("ascii", "replace").decode().replace("\\", "/").replace('"', "'")
            values.append(f'299 pacs "{quoted[:300]}"')
        return values

    def status_code(self) -> int:
        if not self.failed:
            if any(result.warning for result in self.stored):
                return status.HTTP_202_ACCEPTED  # stored, with warnings (PS3.18 10.5.3)
            return status.HTTP_200_OK
        if self.stored:
            return status.HTTP_202_ACCEPTED
        if all(code == st.OUT_OF_RESOURCES for *_ignored, code, _why in self.failed):
            return status.HTTP_503_SERVICE_UNAVAILABLE  # storage down: the client should retry
        return status.HTTP_409_CONFLICT


def _reason(why: str) -> dict[str, Any]:
    return {REASON_TEXT: {"vr": "UT", "Value": [why]}} if why else {}


def _ui(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def store_part(
    archive: Archive,
    principal: Principal,
    fp: BinaryIO,
    origin: Origin,
    study_uid: str | None,
    report: StowReport,
) -> None:
    """Ingest one spooled part and note the outcome (never raises for a bad part).

    The study the part must belong to (the URL's, or else a grant's) is checked
    by ingest itself, which reads the part once for everything.
    """
    granted = principal.study_uid
    try:
        result = archive.ingest(fp, origin, expect_study_uid=study_uid or granted or "")
    except IngestError as exc:
        sop_class, sop_uid = exc.sop_class_uid, exc.sop_instance_uid
        if isinstance(exc, Unavailable):
            report.failed.append((sop_class, sop_uid, st.OUT_OF_RESOURCES, str(exc)))
        elif isinstance(exc, Rejected):
            report.failed.append((sop_class, sop_uid, st.DUPLICATE_REFUSED, str(exc)))
        elif isinstance(exc, InvalidObject) and exc.mismatch and study_uid is None:
            report.failed.append(
                (sop_class, sop_uid, st.NOT_AUTHORIZED, "outside the granted study")
            )
        elif isinstance(exc, InvalidObject) and exc.mismatch:
            report.failed.append((sop_class, sop_uid, st.DATASET_DOES_NOT_MATCH, str(exc)))
        else:
            report.failed.append((sop_class, sop_uid, st.CANNOT_UNDERSTAND, str(exc)))
        return
    except Exception as exc:  # a bug must not lose the report of the other parts
        log.exception("STOW-RS part failed")
        report.failed.append(("", "", st.PROCESSING_FAILURE, exc.__class__.__name__))
        return
    if result.outcome is Outcome.CONFLICT_KEPT:
        report.failed.append(
            (result.sop_class_uid, result.sop_instance_uid, st.DUPLICATE_REFUSED, result.warning)
        )
    else:
        report.stored.append(result)


def _boundary(content_type: str) -> str:
    """The boundary of a ``multipart/related; type="application/dicom"`` body, else 415."""
    media = parse_accept(content_type)
    if not media or not media[0].is_multipart:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            'STOW-RS takes multipart/related; type="application/dicom"',
        )
    part_type = media[0].params.get("type")
    if part_type not in (None, DICOM):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"parts of type {part_type} are not supported; send application/dicom instances",
        )
    boundary = media[0].params.get("boundary", "")
    if not boundary:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "multipart body without a boundary")
    try:
        MultipartReader(boundary)  # the reader's own rules (length, characters) decide
    except MultipartError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"bad multipart boundary: {exc}") from exc
    return boundary


def _too_large(limit: int, report: StowReport) -> HTTPException:
    stored = (
        f"; {len(report.stored)} instance(s) before the limit were stored" if report.stored else ""
    )
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"request body exceeds the STOW-RS limit of {limit} bytes{stored}",
    )


class _PartIngest:
    """The parts of one request being ingested, at most ``PARALLEL_PARTS`` at a time.

    Each part gets its own report, merged into the request's in the order the
    parts were sent once all have finished.
    """

    def __init__(
        self,
        archive: Archive,
        principal: Principal,
        origin: Origin,
        study_uid: str | None,
        report: StowReport,
    ) -> None:
        self.archive, self.principal, self.origin = archive, principal, origin
        self.study_uid, self.report = study_uid, report
        self._slots = asyncio.Semaphore(PARALLEL_PARTS)
        self._running: list[asyncio.Task[None]] = []
        self._reports: list[StowReport] = []

    def refuse(self, failure: tuple[str, str, int, str]) -> None:
        """A part refused without ingest (wrong media type), in its place in the order."""
        self._reports.append(StowReport(self.report.root, failed=[failure]))

    async def start(self, part: tempfile.SpooledTemporaryFile[bytes]) -> None:
        """Ingest ``part`` in a worker thread; waits while ``PARALLEL_PARTS`` are running."""
        own = StowReport(self.report.root)
        self._reports.append(own)
        await self._slots.acquire()
        self._running.append(asyncio.create_task(self._ingest(part, own)))

    async def _ingest(self, part: tempfile.SpooledTemporaryFile[bytes], own: StowReport) -> None:
        try:
            with part:
                await run_in_threadpool(
                    store_part,
                    self.archive,
                    self.principal,
                    cast(BinaryIO, part),
                    self.origin,
                    self.study_uid,
                    own,
                )
        finally:
            self._slots.release()

    async def finish(self) -> None:
        """Wait for every running part, then merge the parts' reports in order (once)."""
        running, self._running = self._running, []
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        for own in self._reports:
            self.report.stored.extend(own.stored)
            self.report.failed.extend(own.failed)
        self._reports = []


async def _receive(
    request: Request,
    archive: Archive,
    principal: Principal,
    study_uid: str | None,
) -> JSONResponse:
    settings = archive.settings
    limit = settings.stow_max_bytes
    boundary = _boundary(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        await _audit(archive, principal, study_uid, None, "failure: request too large")
        raise _too_large(limit, StowReport(""))
    if study_uid is not None:
        check_study_scope(principal, study_uid)
    report = StowReport(dicomweb_root(request, settings))
    origin = Origin(door="stow", user=principal.name, address=client_address(request))
    parts = _PartIngest(archive, principal, origin, study_uid, report)
    reader = MultipartReader(boundary)
    spool: tempfile.SpooledTemporaryFile[bytes] | None = None
    received = 0
    spool_dir = str(settings.spool_dir) if settings.spool_dir else None
    if spool_dir:
        settings.spool_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                await parts.finish()
                await _audit(archive, principal, study_uid, report, "failure: request too large")
                raise _too_large(limit, report)
            for event in reader.feed(chunk):
                if isinstance(event, PartStart):
                    part_type = event.headers.get("content-type", DICOM).split(";")[0].strip()
                    if part_type.lower() == DICOM:
                        spool = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, dir=spool_dir)  # noqa: SIM115 closed by the part's ingest or in finally
                    else:
                        reason = f"part of type {part_type} is not a DICOM instance"
                        parts.refuse(("", "", st.CANNOT_UNDERSTAND, reason))
                elif isinstance(event, PartData):
                    if spool is not None:
                        spool.write(event.data)
                elif isinstance(event, PartEnd) and spool is not None:
                    part, spool = spool, None
                    await parts.start(part)
        reader.close()
    except MultipartError as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"malformed multipart body: {exc}"
        ) from exc
    finally:
        if spool is not None:
            spool.close()
        await parts.finish()  # what was received is stored (or refused) before any answer
    if not report.stored and not report.failed:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the multipart body holds no instances")
    await _audit(archive, principal, study_uid, report, "")
    code = report.status_code()
    response = JSONResponse(
        report.response_json(study_uid or _single_study(report)),
        status_code=code,
        media_type=DICOM_JSON,
        headers={"Retry-After": str(RETRY_AFTER_S)} if code == 503 else None,
    )
    for warning in report.warning_headers():
        response.headers.append("Warning", warning)
    return response


def _single_study(report: StowReport) -> str | None:
    studies = {result.study_uid for result in report.stored}
    return studies.pop() if len(studies) == 1 else None


async def _audit(
    archive: Archive,
    principal: Principal,
    study_uid: str | None,
    report: StowReport | None,
    failure: str,
) -> None:
    """One record per study touched (stored instances), plus one for the failures."""
    records: list[tuple[str, str | None, str | None, str]] = []
    if failure:
        records.append((failure, None, study_uid, ""))
    elif report is not None:
        per_study: dict[str, list[IngestResult]] = {}
        for result in report.stored:
            per_study.setdefault(result.study_uid, []).append(result)
        for uid, results in per_study.items():
            records.append(("success", results[0].patient_id, uid, f"{len(results)} stored"))
        if report.failed:
            reasons = "; ".join(why for *_ignored, why in report.failed[:5])
            records.append(
                (f"failure: {len(report.failed)} refused", None, study_uid, reasons[:1000])
            )
    for outcome, patient_id, record_study, detail in records:
        await run_in_threadpool(
            archive.audit.record,
            principal,
            "stow",
            outcome,
            patient_id=patient_id,
            study_uid=record_study,
            detail=detail,
        )


@router.post("/studies")
async def store_instances(
    request: Request, archive: ArchiveDep, principal: StorePrincipal
) -> JSONResponse:
    return await _receive(request, archive, principal, None)


@router.post("/studies/{study_uid}")
async def store_study_instances(
    study_uid: str, request: Request, archive: ArchiveDep, principal: StorePrincipal
) -> JSONResponse:
    return await _receive(request, archive, principal, study_uid)
