"""``pacs reindex``: rebuild the index from storage alone.

Blob keys are derived from validated UIDs and the content hash, and every blob
is a complete DICOM file, so the bucket is the source of truth: walking it and
adopting every object recreates patients, studies, series and instances
(including the stored DICOM JSON) without rewriting a byte.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from sqlalchemy import delete

from pacs.archive import Archive
from pacs.archive.ingest import Adoption, IngestError, Origin
from pacs.blobfile import seekable_blob
from pacs.index.models import Instance, Patient, PatientIdentifier, Series, Study
from storage import StorageError

log = logging.getLogger(__name__)


def clear_index(archive: Archive) -> None:
    """Delete every patient, study, series and instance row (blobs are untouched)."""
    with archive.sessions.begin() as session:
        for model in (Instance, Series, Study, PatientIdentifier, Patient):
            session.execute(delete(model))


def stored_objects(archive: Archive) -> int:
    """How many blobs the store holds: the length of a reindex, for its progress bar."""
    return sum(1 for _ in archive.store.list())


def reindex(archive: Archive, progress: Callable[[str], None] | None = None) -> Counter[str]:
    """Adopt every blob; return how many ended in each outcome (plus 'invalid', 'error',
    'deleted': blobs of deleted instances awaiting their purge, 'original': objects as received
    beside their corrected copy; both left alone).

    Blobs are never rewritten; a copy under a key ingest would not choose (moved
    in by hand) is indexed under its proper key and the copy removed. Blobs that
    are not valid DICOM are left in place for ``pacs check`` to report.
    """
    outcomes: Counter[str] = Counter()
    origin = Origin(door="reindex")
    deleted = archive.lifecycle.awaiting_purge()  # deleted studies stay deleted
    originals = archive.lifecycle.kept_originals()  # a corrected copy is what gets indexed
    for blob in archive.store.list():
        if blob.key in deleted:
            outcomes["deleted"] += 1
            continue
        if blob.key in originals:
            outcomes["original"] += 1
            continue
        try:
            with seekable_blob(archive.store, blob.key) as fp:
                outcome = archive.ingestor.adopt(blob.key, fp, origin)
            outcomes[outcome.value] += 1
            if outcome in (Adoption.REKEYED, Adoption.REDUNDANT_COPY):
                archive.store.delete(blob.key)  # its content is indexed under the proper key
        except IngestError as exc:
            log.warning("not indexed: %s: %s", blob.key, exc)
            outcomes["invalid"] += 1
        except StorageError as exc:
            log.error("cannot read %s: %s", blob.key, exc)
            outcomes["error"] += 1
        if progress is not None:
            progress(blob.key)
    return outcomes
