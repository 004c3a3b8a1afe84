"""Lossless compression of stored images, by modality, at ingest or by age (issue 20 item 3).

Storage is the recurring cost of a PACS; a noisy CT slice stored as sent
(uncompressed) shrinks by about half with JPEG-LS lossless, with no pixel
changed. The rule (settings ``compression_modalities``, ``compression_after_days``)
names the modalities; each study is compressed by a durable, idempotent job,
queued when the study becomes stable (after 0 days) or by the leader's daily scan
of older studies. For each uncompressed image:

1. the stored object is re-encoded with :func:`pacs.transcode.transcode_dataset`;
2. the new object is decoded again and its pixels compared with the original's:
   any difference (or no saving) keeps the original, untouched;
3. the new blob is written, then one transaction points the index at it, sets its
   transfer syntax and records the original's SHA-256, size and transfer syntax
   (``compressed_instance``); ``content_sha256`` (the dataset hash duplicates are
   judged by, which ingest leaves empty until needed) becomes or stays the
   original's, so a modality resending the image is still a duplicate, not a
   conflict;
4. only then is the original blob deleted.

Retrieval is unchanged: every door already answers in the syntax the client asks
for, transcoding from the stored one (an uncompressed request gets the original
pixels back). Images whose study was corrected (served from a corrected copy)
are left alone.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless
from sqlalchemy import Engine, exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from pacs.archive.ingest import blob_key, content_sha256
from pacs.blobfile import seekable_blob
from pacs.index.lifecycle_models import CompressedInstance, InstanceOriginal
from pacs.index.models import Instance, Series, Study
from pacs.part10 import read_header
from pacs.transcode import CannotTranscode, transcode_dataset
from storage import BlobStore

log = logging.getLogger(__name__)

JOB = "compress-study"
TARGET = JPEGLSLossless
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


@dataclass
class CompressionReport:
    compressed: int = 0
    kept: int = 0  # not smaller, not identical, or not encodable: the original stays
    bytes_before: int = 0
    bytes_after: int = 0

    def add(self, other: CompressionReport) -> None:
        self.compressed += other.compressed
        self.kept += other.kept
        self.bytes_before += other.bytes_before
        self.bytes_after += other.bytes_after


@dataclass(frozen=True)
class Encoded:
    data: bytes
    sha256: str


def compress_losslessly(data: bytes, target: str = TARGET) -> Encoded | None:
    """``data`` (a Part 10 object) re-encoded in ``target`` and proven pixel-identical, or None
    (not encodable, pixels would differ, or no smaller)."""
    original = dcmread(io.BytesIO(data))
    if "PixelData" not in original:
        return None
    try:
        expected = original.pixel_array
        encoded = transcode_dataset(dcmread(io.BytesIO(data)), target)
    except (CannotTranscode, NotImplementedError, ValueError, RuntimeError) as exc:
        log.info("not compressed (%s): %s", original.get("SOPInstanceUID", "?"), exc)
        return None
    out = io.BytesIO()
    encoded.save_as(out, enforce_file_format=True)
    result = out.getvalue()
    decoded = dcmread(io.BytesIO(result)).pixel_array
    if decoded.shape != expected.shape or not np.array_equal(decoded, expected):
        log.warning("compression of %s changed pixels: kept as sent", original.SOPInstanceUID)
        return None
    if len(result) >= len(data):
        return None
    return Encoded(result, hashlib.sha256(result).hexdigest())


class Compression:
    """The compression rule and its jobs; registered by the archive when a rule is set."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        engine: Engine,
        store: BlobStore,
        modalities: Iterable[str],
        after_days: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.engine = engine
        self.store = store
        self.modalities = frozenset(m.upper() for m in modalities)
        self.after = timedelta(days=after_days)
        self.clock = clock

    def _candidates(self, study_uid: str) -> list[Any]:
        with self.sessions() as session:
            return list(
                session.execute(
                    select(
                        Instance.pk,
                        Instance.sop_instance_uid,
                        Instance.blob_key,
                        Instance.sha256,
                        Instance.size,
                        Instance.transfer_syntax_uid,
                        Series.series_uid,
                    )
                    .join(Series, Instance.series_pk == Series.pk)
                    .join(Study, Series.study_pk == Study.pk)
                    .where(
                        Study.study_uid == study_uid,
                        Series.modality.in_(self.modalities),
                        Instance.transfer_syntax_uid.in_([str(u) for u in UNCOMPRESSED]),
                        ~exists().where(
                            InstanceOriginal.sop_instance_uid == Instance.sop_instance_uid
                        ),
                    )
                ).all()
            )

    def compress_study(self, study_uid: str) -> CompressionReport:
        """Compress the study's uncompressed images of the rule's modalities (idempotent)."""
        report = CompressionReport()
        for row in self._candidates(study_uid):
            report.add(self._compress_one(study_uid, row))
        return report

    def _compress_one(self, study_uid: str, row: Any) -> CompressionReport:
        with seekable_blob(self.store, row.blob_key) as blob:
            data = blob.read()
        encoded = compress_losslessly(data)
        if encoded is None:
            return CompressionReport(kept=1)
        key = blob_key(study_uid, row.series_uid, row.sop_instance_uid, encoded.sha256)
        original = io.BytesIO(data)
        content = content_sha256(original, read_header(original))
        stored = self.store.put(key, io.BytesIO(encoded.data), len(encoded.data))
        with self.sessions.begin() as session:
            moved = (
                session.connection()
                .execute(
                    update(Instance)
                    .where(Instance.pk == row.pk, Instance.blob_key == row.blob_key)
                    .values(
                        blob_key=key,
                        sha256=encoded.sha256,
                        size=stored.size,
                        transfer_syntax_uid=str(TARGET),
                        # ingest leaves it to the first differing resend; the original's
                        # bytes are about to go, and a resend of them stays a duplicate
                        content_sha256=func.coalesce(Instance.content_sha256, content),
                    )
                )
                .rowcount
            )
            if moved:
                session.add(
                    CompressedInstance(
                        sop_instance_uid=row.sop_instance_uid,
                        original_transfer_syntax_uid=row.transfer_syntax_uid,
                        original_sha256=row.sha256,
                        original_size=row.size,
                        compressed_size=stored.size,
                        compressed_at=self.clock(),
                    )
                )
        if not moved:  # replaced or deleted meanwhile: our copy is not needed
            self.store.delete(key)
            return CompressionReport(kept=1)
        self.store.delete(row.blob_key)
        return CompressionReport(1, 0, row.size, stored.size)

    def due_studies(self, limit: int = 1000) -> list[str]:
        """Studies first received before the rule's age with uncompressed images to do."""
        before = self.clock() - self.after
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(Study.study_uid)
                    .where(
                        Study.created_at < before,
                        exists()
                        .where(Series.study_pk == Study.pk)
                        .where(Series.modality.in_(self.modalities))
                        .where(Instance.series_pk == Series.pk)
                        .where(Instance.transfer_syntax_uid.in_([str(u) for u in UNCOMPRESSED])),
                    )
                    .limit(limit)
                )
            )

    def saved(self) -> dict[str, int]:
        """Totals over every compressed image: how many, bytes as sent, bytes stored now."""
        from sqlalchemy import func

        with self.sessions() as session:
            count, before, after = session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(CompressedInstance.original_size), 0),
                    func.coalesce(func.sum(CompressedInstance.compressed_size), 0),
                )
            ).one()
        return {"instances": int(count), "bytes_as_sent": int(before), "bytes_stored": int(after)}
