"""The one writer path: C-STORE, STOW-RS and ``pacs import`` all end here.

Order of work, and why:
1. read and check everything we can before touching storage, so bad input
   costs nothing and leaves nothing behind;
2. write the blob durably (its key is derived from validated UIDs and the
   content hash, so it never overwrites a different object);
3. commit the index rows;
4. only then report success.
A crash between 2 and 3 leaves an orphan blob, which ``pacs check`` adopts.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import _at_pixel_data, read_dataset
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pacs.archive import errors
from pacs.archive.errors import ArchiveError, Conflict, InvalidRequest
from pacs.archive.lifecycle import revive_blob
from pacs.blobfile import seekable_blob
from pacs.dicom_json import to_json
from pacs.index.writer import HeldInstance, IndexWriter, NewInstance, integer, text
from pacs.integrity import (
    UNDEFINED,
    MalformedDataset,
    PixelDataLocation,
    check_deflated_structure,
    check_structure,
    pixel_refusal,
)
from pacs.part10 import (
    PREAMBLE,
    ChunkStream,
    NotDicom,
    Part10Header,
    iter_stored_bytes,
    read_header,
    with_synthesized_meta,
)
from pacs.settings import DuplicatePolicy
from pacs.uids import InvalidUID, check_uid
from storage import BlobStore, StorageError

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # identical resend: nothing to do, success
    CONFLICT_KEPT = "conflict-kept"  # different object, original kept, newcomer refused
    REPLACED = "replaced"  # different object, newcomer kept by policy


class Adoption(enum.StrEnum):
    """What happened to a blob found in storage (see :meth:`Ingestor.adopt`)."""

    INDEXED = "indexed"  # it had no index row; now it has, under its own key
    REKEYED = "rekeyed"  # ingested again under the key ingest derives; the stray can go
    ALREADY_INDEXED = "already-indexed"
    REDUNDANT_COPY = "redundant-copy"  # the same content is indexed under another key
    CONFLICT = "conflict"  # another object holds that SOP Instance UID: left for a human


class IngestError(ArchiveError):
    """Base of the reasons an object was not taken.

    ``sop_class_uid`` and ``sop_instance_uid`` are the object's, when it was
    read far enough to know them: a door's failure report names the object.
    """

    sop_class_uid: str = ""
    sop_instance_uid: str = ""


class InvalidObject(IngestError, InvalidRequest):
    """The object itself is wrong (not DICOM, truncated, bad UIDs): resending will not help.

    ``mismatch`` marks an object that contradicts its request (another SOP Class,
    Instance or Study than announced), which each door reports with its own status.
    """

    def __init__(self, reason: str, mismatch: bool = False) -> None:
        super().__init__(reason)
        self.mismatch = mismatch


class Unavailable(IngestError, errors.Unavailable):
    """Storage or the index cannot take the object now: the sender should retry later."""


class Rejected(IngestError, Conflict):
    """A policy refused the object (a conflicting duplicate under the 'reject' policy)."""


@dataclass(frozen=True)
class Origin:
    """Who sent an object and through which door (kept for audit and charset fallback)."""

    door: str  # "dimse", "stow", "import"
    calling_ae: str = ""
    address: str = ""
    user: str = ""


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    sha256: str
    size: int
    blob_key: str
    warning: str = ""
    patient_id: str = ""  # for the audit trail


@dataclass
class _Parsed:
    header: Part10Header
    dataset: Dataset
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    dicom_json: str
    defects: str = ""  # tolerated defects: stored as sent, answered with a warning


@dataclass(frozen=True)
class Spool:
    """A file a door wrote for ingest alone (the DIMSE door's spool), and what its writer knows.

    When its bytes are exactly what we store, it becomes the blob by a hard
    link instead of a copy. ``sha256`` (of the whole file, computed as it was
    written) and ``header`` (its head, when the writer wrote the preamble and
    meta itself) spare ingest reading the file again for them. Never a file a
    user handed us, which may change or be reused.
    """

    path: Path
    sha256: str = ""
    header: Part10Header | None = None


def blob_key(study_uid: str, series_uid: str, sop_uid: str, sha256: str) -> str:
    """Storage key of an instance: validated UIDs plus the content hash, nothing else."""
    return f"{study_uid}/{series_uid}/{sop_uid}.{sha256[:16]}.dcm"


class Ingestor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        *,
        duplicate_policy: DuplicatePolicy = DuplicatePolicy.KEEP,
        charset_fallback: Callable[[str], str] = lambda _ae: "ISO_IR 100",
    ) -> None:
        self.writer = IndexWriter(sessions)
        self.sessions = sessions
        self.store = store
        self.duplicate_policy = duplicate_policy
        self.charset_fallback = charset_fallback

    def ingest(
        self,
        fp: BinaryIO,
        origin: Origin,
        *,
        expect_sop_class_uid: str = "",
        expect_sop_instance_uid: str = "",
        expect_study_uid: str = "",
        spool: Spool | None = None,
    ) -> IngestResult:
        """Take one DICOM object from a seekable stream; raise an :class:`IngestError` if not.

        ``expect_*`` are the UIDs the request announced (C-STORE command, STOW
        study URL or a grant's study); an object that contradicts them is
        refused, before anything is written, rather than filed under the wrong
        identity. Checking here spares a door a second parse of the object.
        ``spool`` describes the file ``fp`` reads when a door wrote it for us
        alone (see :class:`Spool`).
        """
        parsed = self._parse(fp, origin, spool.header if spool is not None else None)
        try:
            self._check_expected(
                parsed, expect_sop_class_uid, expect_sop_instance_uid, expect_study_uid
            )
            return self._store(fp, parsed, origin, spool)
        except IngestError as exc:
            exc.sop_class_uid = exc.sop_class_uid or parsed.sop_class_uid
            exc.sop_instance_uid = exc.sop_instance_uid or parsed.sop_uid
            raise
        except errors.Unavailable as exc:  # an outage met on the way (the index, read)
            unavailable = Unavailable(str(exc))
            unavailable.sop_class_uid, unavailable.sop_instance_uid = (
                parsed.sop_class_uid,
                parsed.sop_uid,
            )
            raise unavailable from exc

    @staticmethod
    def _check_expected(
        parsed: _Parsed, sop_class_uid: str, sop_instance_uid: str, study_uid: str
    ) -> None:
        if sop_instance_uid and sop_instance_uid != parsed.sop_uid:
            raise InvalidObject(
                f"SOPInstanceUID {parsed.sop_uid} differs from the request's", mismatch=True
            )
        if sop_class_uid and sop_class_uid != parsed.sop_class_uid:
            raise InvalidObject(
                f"SOPClassUID {parsed.sop_class_uid} differs from the request's", mismatch=True
            )
        if study_uid and study_uid != parsed.study_uid:
            raise InvalidObject(
                f"instance belongs to study {parsed.study_uid}, not {study_uid}", mismatch=True
            )

    def _store(
        self, fp: BinaryIO, parsed: _Parsed, origin: Origin, spool: Spool | None
    ) -> IngestResult:
        as_is = spool is not None and (
            parsed.header is spool.header or _stored_as_is(fp, parsed.header)
        )
        if spool is not None and as_is and spool.sha256:
            sha256 = spool.sha256
        else:
            sha256 = file_sha256(fp, parsed.header)
        key = blob_key(parsed.study_uid, parsed.series_uid, parsed.sop_uid, sha256)
        hashes = Hashes(sha256, fp, parsed.header)

        existing = self._existing(parsed.sop_uid)
        if existing is not None:
            decided = self._decide_duplicate(existing, parsed, hashes, origin)
            if decided is not None:
                return decided

        self._revive_if_deleted(key)
        try:
            if spool is not None and as_is:
                stored = self.store.put_file(key, spool.path)
            else:
                stored = self.store.put(key, ChunkStream(iter_stored_bytes(fp, parsed.header)))
        except (StorageError, OSError) as exc:  # OSError: a store that does not wrap its own
            raise Unavailable(f"storage unavailable: {exc}") from exc

        try:
            self._index(parsed, key, hashes, stored.size, origin, replace=existing is not None)
        except IntegrityError:
            # Another association stored the same SOP Instance UID a moment ago.
            existing = self._existing(parsed.sop_uid)
            if existing is None:  # and gone again: let the sender retry
                raise Unavailable("index conflict, retry") from None
            if existing.blob_key == key:  # the very same object: our blob is its blob
                decided = self._decide_duplicate(existing, parsed, hashes, origin)
                assert decided is not None and decided.outcome is Outcome.DUPLICATE
                return decided
            self._drop_blob(key)
            decided = self._decide_duplicate(existing, parsed, hashes, origin)
            if decided is None:
                raise Unavailable("index conflict, retry") from None
            return decided
        except SQLAlchemyError as exc:
            if existing is None or existing.blob_key != key:
                self._drop_blob(key)
            raise Unavailable(f"index unavailable: {exc.__class__.__name__}") from exc

        if existing is not None and existing.blob_key != key:
            self._drop_blob(existing.blob_key)
            outcome = Outcome.REPLACED
            log.warning("replaced %s (policy 'replace', from %s)", parsed.sop_uid, origin)
        else:
            outcome = Outcome.STORED
        return IngestResult(
            outcome,
            parsed.study_uid,
            parsed.series_uid,
            parsed.sop_uid,
            parsed.sop_class_uid,
            sha256,
            stored.size,
            key,
            warning=parsed.defects,
            patient_id=text(parsed.dataset, "PatientID"),
        )

    def adopt(self, key: str, fp: BinaryIO, origin: Origin) -> Adoption:
        """Index a blob already in storage (reconciling, or rebuilding the index).

        ``fp`` is the blob's content, seekable. The blob is never rewritten when
        its key is the one ingest would have chosen; otherwise the object is
        ingested under the right key and the caller removes the stray one.
        """
        parsed = self._parse(fp, origin)
        sha256 = file_sha256(fp, parsed.header)
        hashes = Hashes(sha256, fp, parsed.header)
        derived = blob_key(parsed.study_uid, parsed.series_uid, parsed.sop_uid, sha256)
        existing = self._existing(parsed.sop_uid)
        if existing is not None:
            if existing.blob_key == key:
                return Adoption.ALREADY_INDEXED
            if existing.sha256 == sha256 and self.store.stat(existing.blob_key) is not None:
                return Adoption.REDUNDANT_COPY
            return Adoption.CONFLICT  # or the indexed blob is gone: keep this copy
        if derived != key:
            fp.seek(0)
            if self.ingest(fp, origin).outcome is not Outcome.STORED:
                return Adoption.CONFLICT  # indexed concurrently: leave the copy for a human
            return Adoption.REKEYED
        size = sum(len(chunk) for chunk in iter_stored_bytes(fp, parsed.header))
        try:
            self._index(parsed, key, hashes, size, origin, replace=False)
        except IntegrityError:
            return Adoption.ALREADY_INDEXED  # indexed concurrently by its own ingest
        except SQLAlchemyError as exc:
            raise Unavailable(f"index unavailable: {exc.__class__.__name__}") from exc
        return Adoption.INDEXED

    # -- reading -----------------------------------------------------------------------

    def _parse(self, fp: BinaryIO, origin: Origin, known: Part10Header | None = None) -> _Parsed:
        """Read and check the object; ``known`` is its head, if the caller wrote it itself."""
        try:
            header = known if known is not None and _meta_ends(fp, known) else read_header(fp)
        except NotDicom as exc:
            raise InvalidObject(str(exc)) from exc
        try:
            ds = _read_dataset(fp, header)
        except Exception as exc:
            raise InvalidObject(f"cannot parse dataset: {exc}") from exc
        try:
            return self._check_parsed(fp, origin, header, ds)
        except InvalidObject as exc:  # name the object in the door's failure report
            exc.sop_class_uid = _raw_uid(ds, "SOPClassUID")
            exc.sop_instance_uid = _raw_uid(ds, "SOPInstanceUID")
            raise

    def _check_parsed(
        self, fp: BinaryIO, origin: Origin, header: Part10Header, ds: Dataset
    ) -> _Parsed:
        try:
            sop_class = check_uid(ds.get("SOPClassUID"), "SOPClassUID")
            sop_uid = check_uid(ds.get("SOPInstanceUID"), "SOPInstanceUID")
            study_uid = check_uid(ds.get("StudyInstanceUID"), "StudyInstanceUID")
            series_uid = check_uid(ds.get("SeriesInstanceUID"), "SeriesInstanceUID")
            check_uid(header.transfer_syntax_uid, "TransferSyntaxUID")
        except InvalidUID as exc:
            raise InvalidObject(str(exc)) from exc
        except Exception as exc:
            raise InvalidObject(f"unreadable identifying attributes: {exc}") from exc
        if header.meta_synthesized:
            header = with_synthesized_meta(header, sop_class, sop_uid)
        defects: list[str] = []
        try:
            if header.deflated:
                pixels = check_deflated_structure(fp, header.body_offset, header.source_size)
            else:
                pixels = _check_encoding(fp, header, ds, defects)
        except MalformedDataset as exc:
            raise InvalidObject(str(exc)) from exc
        if (refusal := pixel_refusal(ds, pixels)) is not None:
            raise InvalidObject(refusal)
        injected = "SpecificCharacterSet" not in ds
        if injected:
            ds.SpecificCharacterSet = self.charset_fallback(origin.calling_ae)
        try:
            # A value that does not decode (an IS of "1A") is tolerated: the object is
            # kept as sent, indexed without that value, and the sender warned (as
            # Orthanc does). Identity and structure were checked strictly above.
            dicom_json = to_json(ds, drop_charset=injected, defects=defects)
        except Exception as exc:
            raise InvalidObject(f"cannot decode attributes: {exc}") from exc
        dicom_json = with_pixel_uri(dicom_json, pixels)
        if defects:
            log.warning("%s stored with defects: %s", sop_uid, "; ".join(defects))
        return _Parsed(
            header, ds, study_uid, series_uid, sop_uid, sop_class, dicom_json, "; ".join(defects)
        )

    def _revive_if_deleted(self, key: str) -> None:
        """A key awaiting purge (deleted, sent again): off the purge's list before writing."""
        try:
            if self.writer.awaiting_purge(key):
                revive_blob(self.sessions, key)
        except SQLAlchemyError as exc:
            raise Unavailable(f"index unavailable: {exc.__class__.__name__}") from exc

    # -- duplicates --------------------------------------------------------------------

    def _existing(self, sop_uid: str) -> HeldInstance | None:
        try:
            return self.writer.held(sop_uid)
        except SQLAlchemyError as exc:
            raise Unavailable(f"index unavailable: {exc.__class__.__name__}") from exc

    def _decide_duplicate(
        self, existing: HeldInstance, parsed: _Parsed, hashes: Hashes, origin: Origin
    ) -> IngestResult | None:
        """Result for a SOP Instance UID we hold already, or ``None`` to store it anyway.

        The same dataset is a duplicate whatever file meta its door wrote
        (implementation class, source AE): it is judged by the content hash.
        """

        def result(outcome: Outcome, warning: str = "") -> IngestResult:
            return IngestResult(
                outcome,
                parsed.study_uid,
                parsed.series_uid,
                parsed.sop_uid,
                parsed.sop_class_uid,
                existing.sha256,
                existing.size,
                existing.blob_key,
                warning,
                patient_id=text(parsed.dataset, "PatientID"),
            )

        if existing.sha256 == hashes.file or self._content_of(existing) == hashes.content():
            return result(Outcome.DUPLICATE)
        message = (
            f"SOP Instance {parsed.sop_uid} already stored with different content "
            f"(from {origin.calling_ae or origin.door})"
        )
        if self.duplicate_policy is DuplicatePolicy.REPLACE:
            return None
        log.warning("%s; policy %s", message, self.duplicate_policy.value)
        if self.duplicate_policy is DuplicatePolicy.REJECT:
            raise Rejected(message + "; refused")
        return result(Outcome.CONFLICT_KEPT, message + "; original kept")

    def _content_of(self, existing: HeldInstance) -> str:
        """The held instance's content hash; read once from its blob for rows older than 0008.

        Rows indexed before revision 0008 have none. Rather than read every
        blob of an archive during the upgrade, the hash is computed here, the
        first time a resend differs from the stored file, and kept in the row.
        """
        if existing.content_sha256:
            return existing.content_sha256
        try:
            with seekable_blob(self.store, existing.blob_key) as blob:
                content = content_sha256(blob, read_header(blob))
        except (StorageError, OSError, NotDicom) as exc:
            log.warning("content hash of %s unavailable: %s", existing.blob_key, exc)
            return ""
        try:
            self.writer.record_content_hash(existing.blob_key, content)
        except SQLAlchemyError as exc:
            log.warning("could not keep the content hash of %s: %s", existing.blob_key, exc)
        return content

    # -- writing -----------------------------------------------------------------------

    def _index(
        self, parsed: _Parsed, key: str, hashes: Hashes, size: int, origin: Origin, replace: bool
    ) -> None:
        ds = parsed.dataset
        now = datetime.now(UTC)
        row: dict[str, Any] = dict(
            sop_class_uid=parsed.sop_class_uid,
            instance_number=integer(ds, "InstanceNumber"),
            transfer_syntax_uid=parsed.header.transfer_syntax_uid,
            number_of_frames=integer(ds, "NumberOfFrames"),
            rows=integer(ds, "Rows"),
            columns=integer(ds, "Columns"),
            blob_key=key,
            size=size,
            sha256=hashes.file,
            content_sha256=None,  # taken when a resend first differs (see Hashes)
            dicom_json=parsed.dicom_json,
            source_ae=origin.calling_ae[:16],
            received_at=now,
        )
        new = NewInstance(ds, parsed.study_uid, parsed.series_uid, parsed.sop_uid, row, now)
        self.writer.write(new, replace=replace)

    def _drop_blob(self, key: str) -> None:
        try:
            self.store.delete(key)
        except StorageError:
            log.warning("could not remove blob %s; `pacs check` will", key)


def _raw_uid(ds: Dataset, keyword: str) -> str:
    """A UID as the object states it, for a failure report (empty when unreadable)."""
    try:
        return str(ds.get(keyword, "") or "")[:64]
    except Exception:
        return ""


def with_pixel_uri(dicom_json: str, pixels: PixelDataLocation | None) -> str:
    """The stored JSON with a BulkDataURI for the pixel data (PS3.18 F.2.6), as viewers expect.

    The JSON holds what precedes the pixel data, in tag order, so the element goes
    last. The URI is relative like the others; the metadata door makes it absolute.
    """
    if pixels is None or not dicom_json.endswith("}"):
        return dicom_json
    vr = "OB" if pixels.length == UNDEFINED else pixels.vr
    element = f'"{pixels.tag:08X}":{{"vr":"{vr}","BulkDataURI":"bulkdata/{pixels.tag:08X}"}}'
    return dicom_json[:-1] + ("," if dicom_json != "{}" else "") + element + "}"


def _check_encoding(
    fp: BinaryIO, header: Part10Header, ds: Dataset, defects: list[str]
) -> PixelDataLocation | None:
    """:func:`check_structure` in the declared encoding, or with a tolerated defect.

    Tolerated, with a warning (on this failure path only): a malformed sequence
    outside the identity attributes that pydicom reads past (see
    :func:`_past_malformed_sequence`), and a dataset labelled with the other VR
    form. Some writers label an implicit VR dataset explicit (or the reverse);
    pydicom reads such a file by looking at its first element, so it is kept
    when it is complete in the other form. Anything else stays refused.
    """
    try:
        return check_structure(
            fp,
            header.body_offset,
            header.source_size,
            implicit=header.implicit_vr,
            little=header.little_endian,
        )
    except MalformedDataset as declared:
        try:
            return _past_malformed_sequence(fp, header, ds, declared, defects)
        except MalformedDataset:
            pass
        if not header.little_endian:
            raise declared from None
        try:
            pixels = check_structure(
                fp,
                header.body_offset,
                header.source_size,
                implicit=not header.implicit_vr,
                little=True,
            )
        except MalformedDataset:
            raise declared from None
    actual, said = ("implicit", "explicit") if not header.implicit_vr else ("explicit", "implicit")
    defects.append(f"the dataset is encoded with {actual} VR; its transfer syntax says {said}")
    return pixels


#: Sequences the index reads (identity of the patient): a defect there stays refused.
INDEXED_SEQUENCES = frozenset({0x00101002})  # Other Patient IDs Sequence


def _past_malformed_sequence(
    fp: BinaryIO, header: Part10Header, ds: Dataset, error: MalformedDataset, defects: list[str]
) -> PixelDataLocation | None:
    """The pixel data location when ``error`` lies in one sequence that pydicom reads past.

    An undefined-length sequence whose item declares a wrong length or carries a
    wrong tag is read by pydicom (with a warning) up to its delimiter, and every
    other element is intact. Such an object is kept as sent (as Orthanc keeps
    it): the sequence is left out of its metadata and the sender warned. The
    elements before and after it are checked as strictly as ever, identity was
    read and checked already, and an indexed sequence stays refused. Raises
    ``error`` when the defect is anything else.
    """
    tag = error.top_tag
    element = ds.get_item(tag) if tag is not None else None
    if tag is None or element is None or element.VR != "SQ" or tag in INDEXED_SEQUENCES:
        raise error
    implicit, little = header.implicit_vr, header.little_endian
    try:
        fp.seek(header.body_offset)
        read_dataset(fp, implicit, little, stop_when=lambda t, *_: t >= tag)
        start = fp.tell()  # pydicom rewinds to the first element it stops at
        read_dataset(fp, implicit, little, stop_when=lambda t, *_: t > tag)
        after = fp.tell()
    except Exception:
        raise error from None
    check_structure(fp, header.body_offset, start, implicit=implicit, little=little)
    pixels = check_structure(fp, after, header.source_size, implicit=implicit, little=little)
    del ds[tag]
    keyword = element.keyword or "private sequence"
    defects.append(
        f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {keyword} is a malformed sequence ({error}); "
        "stored as sent, left out of the metadata"
    )
    return pixels


def _read_dataset(fp: BinaryIO, header: Part10Header) -> Dataset:
    """The dataset up to its Pixel Data, read from where ``header`` says it starts.

    ``read_header`` has already parsed the file meta; ``dcmread`` would parse it
    again (about 0.1 ms of a CT slice's 3 ms here). Deflated and bare
    datasets still go through ``dcmread``, which inflates or guesses for us.
    """
    if header.deflated or header.meta_synthesized:
        fp.seek(0)
        return dcmread(fp, stop_before_pixels=True, force=header.meta_synthesized)
    fp.seek(header.body_offset)
    implicit, little = header.implicit_vr, header.little_endian
    ds = read_dataset(fp, implicit, little, stop_when=_at_pixel_data)
    ds.set_original_encoding(implicit, little, ds._character_set)
    return ds


def _meta_ends(fp: BinaryIO, header: Part10Header) -> bool:
    """Whether the dataset after ``header`` starts past group 0002, as a file meta reader sees it.

    Some senders put file meta elements into the dataset itself; a reader of
    the stored file takes them as part of the meta, and so does :func:`read_header`
    (which reads the meta group little endian, whatever the dataset's syntax).
    """
    fp.seek(header.body_offset)
    return fp.read(2) != b"\x02\x00"


def _stored_as_is(fp: BinaryIO, header: Part10Header) -> bool:
    """Whether the source's bytes are exactly the ones we store (zero preamble, same meta)."""
    if header.meta_synthesized:
        return False
    head = PREAMBLE + header.meta_bytes
    if header.body_offset != len(head):
        return False
    fp.seek(0)
    return fp.read(len(head)) == head


def file_sha256(fp: BinaryIO, header: Part10Header) -> str:
    """SHA-256 of the file we store for ``fp``: zero preamble, its meta, then the dataset."""
    whole = hashlib.sha256(PREAMBLE + header.meta_bytes)
    fp.seek(header.body_offset)
    while data := fp.read(1 << 20):
        whole.update(data)
    return whole.hexdigest()


def content_sha256(fp: BinaryIO, header: Part10Header) -> str:
    """SHA-256 of the dataset after the meta: what duplicates are judged by."""
    content = hashlib.sha256()
    fp.seek(header.body_offset)
    while data := fp.read(1 << 20):
        content.update(data)
    return content.hexdigest()


class Hashes:
    """SHA-256 of the stored file (integrity, the blob key) and, only when asked, of the
    dataset after its meta (duplicates).

    The content hash matters only when an instance we hold arrives again with a
    different file: most never do, and taking it as every object arrived was a second
    SHA-256 pass over each (0.32 ms per 512 KiB CT slice here, about a tenth of a
    C-STORE's CPU). So the index row gets it on the first differing resend, the
    held one from its blob (:meth:`Ingestor._content_of`), the arrival from its source.
    """

    def __init__(self, file: str, source: BinaryIO, header: Part10Header) -> None:
        self.file = file
        self._source, self._header = source, header
        self._content = ""

    def content(self) -> str:
        if not self._content:
            self._content = content_sha256(self._source, self._header)
        return self._content
