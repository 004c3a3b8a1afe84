"""What the archive raises, by meaning rather than by the library that failed.

Doors map these to their protocol in one place each (HTTP: one exception
handler per class in the composition root, app/http/errors.py; DIMSE: a
status from :mod:`pacs.dicom.status`), so no door imports the index or the
store, catches a SQLAlchemy exception or matches an error's text. The facade
raises them at its boundary: an outage of the index or of the blob store
becomes :class:`IndexUnavailable` or :class:`StorageUnavailable` (503 with
Retry-After over HTTP, 0xA700 over DIMSE), whatever path reached it.

The blob store's own errors are re-exported under their names: a door catches
:class:`StorageError` (store unreachable, retry later) and
:class:`BlobNotFound` (an indexed object's bytes are gone) from here.
"""

from __future__ import annotations

from storage import BlobNotFound, StorageError

# Seconds a client is told to wait before retrying when the archive is unavailable:
# long enough for a database fail-over or a restart, short enough for a modality's queue.
RETRY_AFTER_S = 30


class ArchiveError(Exception):
    """Base of the failures the facade reports on purpose."""


class Unavailable(ArchiveError):
    """The index or the blob store cannot serve now; the same request may succeed later.

    ``retry_after`` is the hint, in seconds, that HTTP sends as Retry-After.
    """

    retry_after: int = RETRY_AFTER_S


class IndexUnavailable(Unavailable):
    """The index database is unreachable, locked, full or failing: retry later."""


class StorageUnavailable(Unavailable, StorageError):
    """The blob store cannot read or write now (down, full, failing): retry later.

    It is also a :class:`StorageError`, so code that handles the store's own
    errors handles it alike.
    """


class NotFound(ArchiveError):
    """The study, series or instance named is not in the archive (or already deleted)."""


class Conflict(ArchiveError):
    """The request contradicts what the archive holds (a different object under the same UID,
    a state that does not allow the change)."""


class InvalidRequest(ArchiveError):
    """The request itself is malformed or unsupported: sending it again will not help."""


class LegalHoldActive(Conflict):
    """The study is under a legal hold: it cannot be deleted until an administrator releases it."""


class InvalidCorrection(InvalidRequest):
    """A correction names an attribute that cannot be corrected, or a value that is not valid."""


__all__ = [
    "RETRY_AFTER_S",
    "ArchiveError",
    "BlobNotFound",
    "Conflict",
    "IndexUnavailable",
    "InvalidCorrection",
    "InvalidRequest",
    "LegalHoldActive",
    "NotFound",
    "StorageError",
    "StorageUnavailable",
    "Unavailable",
]
