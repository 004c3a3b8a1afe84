"""The archive facade and what it owns: ingest, retrieval, lifecycle, events.

Doors import :class:`Archive` (and the value types it returns) from here and
nothing from the index or the blob store.
"""

from pacs.archive.facade import Archive
from pacs.archive.presence import ArchiveNotFound

__all__ = ["Archive", "ArchiveNotFound"]
