"""What the archive facade raises, so that doors never import the index or the store.

A door maps these to its protocol (an HTTP status, a DIMSE status); it does
not need to know which part of the archive failed, only what kind of failure.
The blob store's own errors are re-exported under their names: a door catches
:class:`StorageError` (store unreachable, retry later) and :class:`BlobNotFound`
(an indexed object's bytes are gone) from here.
"""

from __future__ import annotations

from storage import BlobNotFound, StorageError


class ArchiveError(Exception):
    """Base of the failures the facade reports on purpose."""


class NotFound(ArchiveError):
    """The study, series or instance named is not in the archive (or already deleted)."""


class LegalHoldActive(ArchiveError):
    """The study is under a legal hold: it cannot be deleted until an administrator releases it."""


class InvalidCorrection(ArchiveError):
    """A correction names an attribute that cannot be corrected, or a value that is not valid."""


__all__ = [
    "ArchiveError",
    "BlobNotFound",
    "InvalidCorrection",
    "LegalHoldActive",
    "NotFound",
    "StorageError",
]
