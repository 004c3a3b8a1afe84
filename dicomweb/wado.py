"""WADO-RS (PS3.18 10.4): instances, metadata, frames and bulk data.

Everything is streamed from the blob store: a study goes out part by part,
1 MiB at a time, with a Content-Length computed from the index so that a
client can tell a complete answer from a cut one. Metadata comes from the
index alone (the DICOM JSON kept at ingest), with BulkDataURIs made absolute
for the URL the client used. Frames and bulk data are byte ranges of the
stored object, located once and cached (:mod:`dicomweb.frames`).

When the client asks for another transfer syntax (:mod:`dicomweb.negotiation`
decides), each instance is converted when its part is reached, one instance
(or, for frames, one frame) in memory at a time, in the worker thread that
iterates the response; such answers are chunked (their length is unknown).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Annotated, BinaryIO

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import StreamingResponse
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID

from dicomweb import multipart
from dicomweb.accept import MediaRange, parse_accept
from dicomweb.frames import (
    FrameCache,
    FrameError,
    FrameTable,
    Span,
    read_bit_packed,
    read_header,
)
from dicomweb.negotiation import (
    DICOM,
    DICOM_JSON,
    Feasibility,
    NotAcceptable,
    Representation,
    accepts_json,
    choose_bulkdata,
    choose_frames,
    choose_instance,
)
from dicomweb.urls import dicomweb_root, instance_path
from pacs.archive import Archive
from pacs.archive.errors import BlobNotFound, StorageError, StorageUnavailable
from pacs.archive.retrieve import StoredInstance
from pacs.auth.http import authorize
from pacs.auth.policy import check_study_scope
from pacs.auth.principal import Principal
from pacs.transcode import CannotTranscode, PixelFormat, refusal, transcode, transcode_frame

router = APIRouter()
frame_tables = FrameCache()
log = logging.getLogger(__name__)

RetrievePrincipal = Annotated[Principal, Depends(authorize("retrieve"))]
CHUNK = 1 << 20
# A converted instance is held whole in memory (decoded, then encoded): above this stored
# size conversion is refused (406 with the reason); such objects go as stored or per frame.
TRANSCODE_MAX_BYTES = 64 << 20
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
NATIVE_SYNTAXES = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
)


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


ArchiveDep = Annotated[Archive, Depends(_archive)]


# -- shared steps ---------------------------------------------------------------------


def audit(
    archive: Archive,
    principal: Principal,
    study_uid: str,
    found: list[StoredInstance],
    detail: str,
    outcome: str = "success",
) -> None:
    patient_id = found[0].patient_id if found else None
    archive.audit.record(
        principal, "wado", outcome, patient_id=patient_id, study_uid=study_uid, detail=detail
    )


def locate_or_404(
    archive: Archive,
    principal: Principal,
    detail: str,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> list[StoredInstance]:
    """The stored instances a request names, after the share-grant scope check; else 404."""
    check_study_scope(principal, study_uid)
    found = archive.locate(study_uid, series_uid, sop_uid)
    if not found:
        audit(archive, principal, study_uid, [], detail, "failure: not found")
        what = "instance" if sop_uid else "series" if series_uid else "study"
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such {what} in the archive")
    return found


def _refuse(
    archive: Archive,
    principal: Principal,
    study_uid: str,
    found: list[StoredInstance],
    detail: str,
    exc: NotAcceptable,
) -> HTTPException:
    audit(archive, principal, study_uid, found, detail, f"failure: not acceptable: {exc}")
    return HTTPException(status.HTTP_406_NOT_ACCEPTABLE, str(exc))


def _open(archive: Archive, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
    try:
        return archive.open_blob(key, start, end)
    except BlobNotFound as exc:
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR, "a stored object is missing; run `pacs check`"
        ) from exc
    except StorageError as exc:
        raise StorageUnavailable(f"storage: {exc}") from exc


def _chunks(fp: BinaryIO) -> Iterator[bytes]:
    with fp:
        while chunk := fp.read(CHUNK):
            yield chunk


def _lazy_chunks(
    archive: Archive, key: str, start: int = 0, end: int | None = None
) -> Iterator[bytes]:
    """Open the blob only when the part is reached, so a study never holds many files open."""
    yield from _chunks(archive.open_blob(key, start, end))


def _multipart_response(
    parts: list[multipart.Part], part_type: str, status_code: int = 200
) -> StreamingResponse:
    boundary = multipart.new_boundary()
    length = multipart.message_length(parts, boundary)
    headers = {"Content-Length": str(length)} if length is not None else {}
    return StreamingResponse(
        multipart.iter_message(parts, boundary),
        status_code=status_code,
        media_type=multipart.content_type(part_type, boundary),
        headers=headers,
    )


# -- instances --------------------------------------------------------------------------


class PixelFormats:
    """Each instance's pixel format from the index metadata, loaded once and only if needed."""

    def __init__(
        self, archive: Archive, study_uid: str, series_uid: str | None, sop_uid: str | None
    ) -> None:
        self._query = (archive, study_uid, series_uid, sop_uid)
        self._formats: dict[str, PixelFormat | None] | None = None

    def of(self, sop_uid: str) -> PixelFormat | None:
        if self._formats is None:
            archive, study_uid, series_uid, instance_uid = self._query
            self._formats = {
                uid: PixelFormat.from_json(json.loads(text))
                for uid, text in archive.metadata(study_uid, series_uid, instance_uid)
            }
        return self._formats.get(sop_uid)

    def feasibility(self, item: StoredInstance) -> Feasibility:
        def why_not(target: str) -> str | None:
            if item.size > TRANSCODE_MAX_BYTES and target != item.transfer_syntax_uid:
                return (
                    f"the instance is {item.size >> 20} MB; instances over "
                    f"{TRANSCODE_MAX_BYTES >> 20} MB are converted frame by frame only (/frames)"
                )
            return refusal(item.transfer_syntax_uid, target, self.of(item.sop_instance_uid))

        return why_not


def _transcoded(archive: Archive, item: StoredInstance, target: str) -> bytes:
    """The whole instance as a Part 10 file in ``target`` (one instance in memory)."""
    with archive.open_seekable(item.blob_key) as source:
        ds = transcode(source, target)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _byte_chunks(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        yield bytes(view[start : start + CHUNK])


def _lazy_transcoded(archive: Archive, item: StoredInstance, target: str) -> Iterator[bytes]:
    """Converted when the part is reached; a failure now can only cut the response short."""
    try:
        data = _transcoded(archive, item, target)
    except (CannotTranscode, StorageError) as exc:
        log.error("WADO-RS: %s to %s failed mid-response: %s", item.sop_instance_uid, target, exc)
        raise
    yield from _byte_chunks(data)


def _negotiate_each(
    archive: Archive,
    found: list[StoredInstance],
    accept: list[MediaRange],
    formats: PixelFormats,
    single: bool,
) -> tuple[list[tuple[StoredInstance, Representation]], list[str]]:
    """(instance, representation) for each instance that has one, and the reasons for the rest."""
    strict = archive.settings.wado_strict_default_syntax
    chosen: list[tuple[StoredInstance, Representation]] = []
    refused: list[str] = []
    for item in found:
        try:
            representation = choose_instance(
                accept,
                item.transfer_syntax_uid,
                single_allowed=single,
                strict_default=strict,
                feasible=formats.feasibility(item),
            )
        except NotAcceptable as exc:
            refused.append(str(exc))
            continue
        chosen.append((item, representation))
    return chosen, refused


def _first_body(
    archive: Archive,
    chosen: list[tuple[StoredInstance, Representation]],
    refused: list[str],
) -> Iterator[bytes] | None:
    """The first part's body, produced now so that a failure is a 406, not a cut stream.

    An instance whose conversion fails here joins the refused ones and the next is tried.
    """
    while chosen:
        item, representation = chosen[0]
        if not representation.transcoded:
            return _chunks(_open(archive, item.blob_key))
        try:
            return _byte_chunks(_transcoded(archive, item, representation.transfer_syntax))
        except CannotTranscode as exc:
            refused.append(str(exc))
            chosen.pop(0)
        except StorageError as exc:
            raise StorageUnavailable(f"storage: {exc}") from exc
    return None


def _instance_part(
    archive: Archive, item: StoredInstance, representation: Representation
) -> multipart.Part:
    if representation.transcoded:
        body = _lazy_transcoded(archive, item, representation.transfer_syntax)
        return multipart.Part(representation.part_content_type, body)
    body = _lazy_chunks(archive, item.blob_key)
    return multipart.Part(representation.part_content_type, body, item.size)


def _retrieve(
    request: Request,
    archive: Archive,
    principal: Principal,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> Response:
    detail = "instances"
    found = locate_or_404(archive, principal, detail, study_uid, series_uid, sop_uid)
    accept = parse_accept(request.headers.get("accept"))
    formats = PixelFormats(archive, study_uid, series_uid, sop_uid)
    chosen, refused = _negotiate_each(archive, found, accept, formats, sop_uid is not None)
    first = _first_body(archive, chosen, refused)
    if first is None:
        raise _refuse(archive, principal, study_uid, found, detail, NotAcceptable(refused[0]))
    syntaxes = sorted({r.transfer_syntax for _, r in chosen if r.transcoded})
    converted = f", transcoded to {','.join(syntaxes)}" if syntaxes else ""
    audit(archive, principal, study_uid, found, f"{detail}: {len(chosen)}{converted}")
    item, representation = chosen[0]
    if not representation.multipart:
        length = {} if representation.transcoded else {"Content-Length": str(item.size)}
        return StreamingResponse(first, media_type=representation.part_content_type, headers=length)
    head = multipart.Part(
        representation.part_content_type,
        first,
        None if representation.transcoded else item.size,
    )
    parts = [head, *(_instance_part(archive, i, r) for i, r in chosen[1:])]
    if not refused:
        return _multipart_response(parts, DICOM)
    response = _multipart_response(parts, DICOM, status.HTTP_206_PARTIAL_CONTENT)
    warning = f"{len(refused)} of {len(found)} instances omitted: {refused[0]}"
    response.headers["Warning"] = f'299 pacs "{warning[:400].replace(chr(34), chr(39))}"'
    return response


@router.get("/studies/{study_uid}")
def retrieve_study(
    study_uid: str, request: Request, archive: ArchiveDep, principal: RetrievePrincipal
) -> Response:
    return _retrieve(request, archive, principal, study_uid)


@router.get("/studies/{study_uid}/series/{series_uid}")
def retrieve_series(
    study_uid: str,
    series_uid: str,
    request: Request,
    archive: ArchiveDep,
    principal: RetrievePrincipal,
) -> Response:
    return _retrieve(request, archive, principal, study_uid, series_uid)


@router.get("/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}")
def retrieve_instance(
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    request: Request,
    archive: ArchiveDep,
    principal: RetrievePrincipal,
) -> Response:
    return _retrieve(request, archive, principal, study_uid, series_uid, sop_uid)


# -- metadata ---------------------------------------------------------------------------


def _etag(base: str, found: list[StoredInstance]) -> str:
    """Changes when any instance's content changes (or the URLs we would write do)."""
    digest = hashlib.sha256(base.encode())
    for item in found:
        digest.update(item.sha256.encode())
    return f'"{digest.hexdigest()[:32]}"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


def _metadata(
    request: Request,
    archive: Archive,
    principal: Principal,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> Response:
    detail = "metadata"
    found = locate_or_404(archive, principal, detail, study_uid, series_uid, sop_uid)
    if not accepts_json(parse_accept(request.headers.get("accept"))):
        raise _refuse(
            archive,
            principal,
            study_uid,
            found,
            detail,
            NotAcceptable("metadata is available as application/dicom+json only"),
        )
    root = dicomweb_root(request, archive.settings)
    etag = _etag(root, found)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    series_of = {item.sop_instance_uid: item.series_uid for item in found}
    syntax_of = {item.sop_instance_uid: item.transfer_syntax_uid for item in found}
    documents = []
    for uid, stored in archive.metadata(study_uid, series_uid, sop_uid):
        text = _with_pixel_uri(stored, syntax_of.get(uid, ""))
        base = root + instance_path(study_uid, series_of.get(uid, series_uid or ""), uid)
        # The stored JSON is compact and ours: this key/value pair can only be a BulkDataURI.
        documents.append(
            text.replace('"BulkDataURI":"bulkdata/', f'"BulkDataURI":"{base}/bulkdata/')
        )
    audit(archive, principal, study_uid, found, f"{detail}: {len(documents)}")
    body = "[" + ",".join(documents) + "]"
    return Response(body.encode("utf-8"), media_type=DICOM_JSON, headers=headers)


_BITS_ALLOCATED = re.compile(r'"00280100":\{"vr":"US","Value":\[(\d+)\]')


def _with_pixel_uri(text: str, transfer_syntax: str) -> str:
    """Instances indexed before ingest named Pixel Data's bulk data get its BulkDataURI here.

    Judged from the stored JSON alone (an image has Rows; its VR follows from the
    syntax and Bits Allocated): metadata never opens a blob.
    """
    if '"7FE000' in text or '"00280010"' not in text or not text.endswith("}"):
        return text
    bits = _BITS_ALLOCATED.search(text)
    native = transfer_syntax in NATIVE_SYNTAXES
    vr = "OW" if native and (bits is None or int(bits.group(1)) > 8) else "OB"
    return text[:-1] + f',"7FE00010":{{"vr":"{vr}","BulkDataURI":"bulkdata/7FE00010"}}}}'


@router.get("/studies/{study_uid}/metadata")
def study_metadata(
    study_uid: str, request: Request, archive: ArchiveDep, principal: RetrievePrincipal
) -> Response:
    return _metadata(request, archive, principal, study_uid)


@router.get("/studies/{study_uid}/series/{series_uid}/metadata")
def series_metadata(
    study_uid: str,
    series_uid: str,
    request: Request,
    archive: ArchiveDep,
    principal: RetrievePrincipal,
) -> Response:
    return _metadata(request, archive, principal, study_uid, series_uid)


@router.get("/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/metadata")
def instance_metadata(
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    request: Request,
    archive: ArchiveDep,
    principal: RetrievePrincipal,
) -> Response:
    return _metadata(request, archive, principal, study_uid, series_uid, sop_uid)


# -- frames -----------------------------------------------------------------------------


def parse_frame_list(text: str) -> list[int]:
    """``1,3,5`` -> [1, 3, 5]; anything but positive integers is a 400."""
    try:
        numbers = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        numbers = []
    if not numbers or any(number < 1 for number in numbers):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "frame list must be positive integers separated by commas"
        )
    return numbers


def frame_table(archive: Archive, item: StoredInstance) -> FrameTable:
    def open_range(start: int, end: int | None) -> BinaryIO:
        return archive.open_blob(item.blob_key, start, end)

    try:
        return frame_tables.get(
            item.blob_key, open_range, item.size, item.transfer_syntax_uid, item.number_of_frames
        )
    except FrameError as exc:
        # The object was accepted, so what it holds is answered with a reason, never a 5xx.
        code = 404 if "no pixel data" in str(exc) else 422
        raise HTTPException(code, str(exc)) from exc
    except StorageError as exc:
        raise StorageUnavailable(f"storage: {exc}") from exc


def _span_chunks(archive: Archive, key: str, spans: tuple[Span, ...]) -> Iterator[bytes]:
    for span in spans:
        yield from _lazy_chunks(archive, key, span.offset, span.offset + span.length)


def frame_part(
    archive: Archive, item: StoredInstance, table: FrameTable, number: int, chosen: Representation
) -> multipart.Part:
    """Frame ``number`` (1-based) as a part: byte ranges of the blob, never the whole instance."""
    if table.frame_bits % 8:

        def open_range(start: int, end: int | None) -> BinaryIO:
            return archive.open_blob(item.blob_key, start, end)

        data = read_bit_packed(open_range, table, number - 1)
        return multipart.Part(chosen.part_content_type, [data], len(data))
    spans = table.frames[number - 1]
    if table.word_swap:  # a big endian frame, served little endian: one frame in memory
        raw = b"".join(_span_chunks(archive, item.blob_key, spans))
        width = table.word_swap
        data = np.frombuffer(raw, f">u{width}").astype(f"<u{width}").tobytes()
        return multipart.Part(chosen.part_content_type, [data], len(data))
    return multipart.Part(
        chosen.part_content_type,
        _span_chunks(archive, item.blob_key, spans),
        sum(span.length for span in spans),
    )


class LazyHeader:
    """The stored header before Pixel Data, read (a ranged read) only when a frame is converted."""

    def __init__(self, archive: Archive, item: StoredInstance) -> None:
        self._archive, self._item = archive, item
        self._dataset: Dataset | None = None

    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            item = self._item

            def open_range(start: int, end: int | None) -> BinaryIO:
                return self._archive.open_blob(item.blob_key, start, end)

            try:
                header = read_header(open_range, item.size, item.transfer_syntax_uid)
            except FrameError as exc:
                raise HTTPException(500, f"cannot parse the stored instance: {exc}") from exc
            except StorageError as exc:
                raise StorageUnavailable(f"storage: {exc}") from exc
            self._dataset = header.dataset
        return self._dataset

    def feasibility(self, target: str) -> str | None:
        source = self._item.transfer_syntax_uid
        return refusal(source, target, PixelFormat.from_dataset(self.dataset))


def _frame_converted(
    archive: Archive, item: StoredInstance, header: Dataset, spans: tuple[Span, ...], target: str
) -> bytes:
    """One frame decoded and re-encoded: only this frame's bytes are read and held."""
    stored = b"".join(_span_chunks(archive, item.blob_key, spans))
    return transcode_frame(header, stored, header.file_meta.TransferSyntaxUID, target)


def _lazy_frame(
    archive: Archive, item: StoredInstance, header: Dataset, spans: tuple[Span, ...], target: str
) -> Iterator[bytes]:
    try:
        yield _frame_converted(archive, item, header, spans, target)
    except CannotTranscode as exc:
        log.error("WADO-RS: frame of %s to %s failed: %s", item.sop_instance_uid, target, exc)
        raise


def transcoded_frame_parts(
    archive: Archive,
    item: StoredInstance,
    header: LazyHeader,
    table: FrameTable,
    numbers: list[int],
    chosen: Representation,
) -> list[multipart.Part]:
    """Frames in another syntax: the first converted now (a failure is a 406), the rest lazily."""
    if table.frame_bits % 8:
        raise CannotTranscode("bit-packed (1-bit) frames are sent as stored only")
    dataset = header.dataset
    if not hasattr(dataset, "file_meta"):
        dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = UID(chosen.source_syntax)
    target = chosen.transfer_syntax
    first = _frame_converted(archive, item, dataset, table.frames[numbers[0] - 1], target)
    parts = [multipart.Part(chosen.part_content_type, [first], len(first))]
    for number in numbers[1:]:
        body = _lazy_frame(archive, item, dataset, table.frames[number - 1], target)
        parts.append(multipart.Part(chosen.part_content_type, body))
    return parts


@router.get("/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/{frame_list}")
def retrieve_frames(
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    frame_list: str,
    request: Request,
    archive: ArchiveDep,
    principal: RetrievePrincipal,
) -> Response:
    numbers = parse_frame_list(frame_list)
    detail = f"frames {frame_list[:64]}"
    found = locate_or_404(archive, principal, detail, study_uid, series_uid, sop_uid)
    return _frames_response(request, archive, principal, found, numbers, detail)


def _frames_response(
    request: Request,
    archive: Archive,
    principal: Principal,
    found: list[StoredInstance],
    numbers: list[int] | None,
    detail: str,
) -> Response:
    """Frames ``numbers`` (``None``: every frame) of ``found[0]``, as the Accept header asks."""
    study_uid = found[0].study_uid
    item = found[0]
    header = LazyHeader(archive, item)
    try:
        chosen = choose_frames(
            parse_accept(request.headers.get("accept")),
            item.transfer_syntax_uid,
            strict_default=archive.settings.wado_strict_default_syntax,
            feasible=header.feasibility,
        )
    except NotAcceptable as exc:
        raise _refuse(archive, principal, study_uid, found, detail, exc) from exc
    table = frame_table(archive, item)
    if numbers is None:
        numbers = list(range(1, len(table.frames) + 1))
    missing = [number for number in numbers if number > len(table.frames)]
    if missing:
        audit(archive, principal, study_uid, found, detail, "failure: frame out of range")
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"frame {missing[0]} does not exist; the instance has {len(table.frames)} frame(s)",
        )
    if chosen.transcoded:
        try:
            parts = transcoded_frame_parts(archive, item, header, table, numbers, chosen)
        except CannotTranscode as exc:
            raise _refuse(
                archive, principal, study_uid, found, detail, NotAcceptable(str(exc))
            ) from exc
    else:
        parts = [frame_part(archive, item, table, number, chosen) for number in numbers]
    audit(archive, principal, study_uid, found, detail)
    if not chosen.multipart and len(parts) == 1:
        return StreamingResponse(
            iter(parts[0].body),
            media_type=chosen.part_content_type,
            headers={"Content-Length": str(parts[0].length)},
        )
    return _multipart_response(parts, chosen.media_type)


# -- bulk data --------------------------------------------------------------------------


def _bulk_path(path: str) -> tuple[list[tuple[int, int]], int]:
    """``tag`` or ``seq/item/.../tag`` (as the metadata's BulkDataURIs write them) parsed."""
    parts = path.split("/")
    if len(parts) % 2 == 0 or len(parts) > 15:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "bulk data is addressed by tag paths")
    tags, items = parts[::2], parts[1::2]
    if not all(_TAG.match(tag) for tag in tags) or not all(i.isdigit() for i in items):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "bulk data is addressed by an 8-digit tag, or sequence/item/.../tag",
        )
    steps = [(int(tag, 16), int(index)) for tag, index in zip(tags, items, strict=False)]
    return steps, int(tags[-1], 16)


def _bulk_value(
    archive: Archive, item: StoredInstance, address: tuple[list[tuple[int, int]], int]
) -> Span | bytes:
    """Where the addressed value lies in the stored object, or, inside a sequence, the value.

    Values inside sequence items were read with the head of the object (pydicom
    gives their positions relative to the sequence, not the file), and are small.
    """
    steps, tag = address
    if tag in _PIXEL_TAGS and not steps:
        table = frame_table(archive, item)
        first, last = table.frames[0][0], table.frames[-1][-1]
        return Span(first.offset, last.offset + last.length - first.offset)
    if item.transfer_syntax_uid in ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"):
        raise HTTPException(
            status.HTTP_406_NOT_ACCEPTABLE,
            "bulk data of big endian or deflated instances needs transcoding (not available yet)",
        )

    def open_range(start: int, end: int | None) -> BinaryIO:
        return archive.open_blob(item.blob_key, start, end)

    try:  # the header before Pixel Data, read in ranges: works on any store
        ds = read_header(open_range, item.size, item.transfer_syntax_uid).dataset
    except FrameError as exc:
        raise HTTPException(500, f"cannot parse the stored instance: {exc}") from exc
    except StorageError as exc:
        raise StorageUnavailable(f"storage: {exc}") from exc
    for sequence, index in steps:  # down to the item that holds the element
        items = ds[sequence].value if sequence in ds and ds[sequence].VR == "SQ" else []
        if index >= len(items):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such sequence item")
        ds = items[index]
    raw = ds.get_item(tag, keep_deferred=True) if tag in ds else None
    if steps:
        nested = getattr(raw, "value", None)
        if not isinstance(nested, bytes):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no bulk data at that path")
        return nested
    value_tell = getattr(raw, "value_tell", None)
    length = getattr(raw, "length", None)
    if raw is None or value_tell is None or length in (None, 0xFFFFFFFF):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "no bulk data under that tag (only elements before Pixel Data)",
        )
    return Span(int(value_tell), int(length))


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of one ``bytes=`` range; ``None``: send it all; 416 if unsatisfiable."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # other units or several ranges: ignored, the whole value is sent
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:
            start, end = max(0, size - int(last)), size  # the last N bytes
            if int(last) <= 0:
                return None
        else:
            start, end = int(first), size
            if last:
                if int(last) < start:
                    return None  # syntactically invalid: ignored (RFC 9110 14.2)
                end = min(size, int(last) + 1)
    except ValueError:
        return None
    if start >= size or start < 0:
        raise HTTPException(
            status.HTTP_416_RANGE_NOT_SATISFIABLE,
            f"range {spec} is outside the {size}-byte value",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


@router.get("/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/bulkdata/{path:path}")
def retrieve_bulkdata(
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    path: str,
    request: Request,
    archive: ArchiveDep,
    principal: RetrievePrincipal,
) -> Response:
    detail = f"bulkdata {path[:64]}"
    found = locate_or_404(archive, principal, detail, study_uid, series_uid, sop_uid)
    item = found[0]
    address = _bulk_path(path)
    if address[1] in _PIXEL_TAGS and not address[0]:
        table = frame_table(archive, item)
        if table.encapsulated or table.word_swap:
            # Encapsulated pixel data has no one value to send, and big endian words are
            # not what octet-stream means: frames go one per part, in the syntax the
            # Accept header negotiates (as the frames resource does).
            return _frames_response(request, archive, principal, found, None, detail)
    try:
        chosen = choose_bulkdata(parse_accept(request.headers.get("accept")))
    except NotAcceptable as exc:
        raise _refuse(archive, principal, study_uid, found, detail, exc) from exc
    value = _bulk_value(archive, item, address)
    length = value.length if isinstance(value, Span) else len(value)
    wanted = _byte_range(request.headers.get("range"), length)
    start, end = wanted or (0, length)
    if isinstance(value, Span):
        body = _lazy_chunks(archive, item.blob_key, value.offset + start, value.offset + end)
    else:
        body = iter([value[start:end]])
    audit(archive, principal, study_uid, found, detail)
    code = status.HTTP_206_PARTIAL_CONTENT if wanted else status.HTTP_200_OK
    content_range = f"bytes {start}-{end - 1}/{length}"
    headers = {"Accept-Ranges": "bytes"}
    if not chosen.multipart:
        headers["Content-Length"] = str(end - start)
        if wanted:
            headers["Content-Range"] = content_range
        return StreamingResponse(body, code, headers, media_type=chosen.media_type)
    part = multipart.Part(
        chosen.media_type,
        body,
        end - start,
        {"Content-Range": content_range} if wanted else {},
    )
    response = _multipart_response([part], chosen.media_type, code)
    response.headers["Accept-Ranges"] = "bytes"
    return response
