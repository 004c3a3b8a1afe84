"""The one small interface every blob store implements.

The archive never touches files or buckets directly: it asks a ``BlobStore``
to keep a stream under a key and to give it back. Keys are built by the
archive from validated UIDs; stores still refuse anything that is not a plain
relative key so that a bug upstream can never turn into a path traversal.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class StorageError(Exception):
    """The store could not do what was asked (unreachable, full, refused)."""


class BlobNotFound(StorageError, KeyError):
    """No blob under that key."""


class InvalidKey(StorageError, ValueError):
    """A key that is not a plain relative path of safe characters."""


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int


def check_key(key: str) -> str:
    """Return ``key`` if it is safe to map onto a path or object name."""
    if len(key) > 512 or not _KEY.match(key) or any(p in (".", "..") for p in key.split("/")):
        raise InvalidKey(f"unsafe blob key: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """Like :func:`check_key` but an empty prefix (everything) and a trailing slash are allowed."""
    stripped = prefix.rstrip("/")
    if stripped:
        check_key(stripped)
    return prefix


class Readable(Protocol):
    """Anything with ``read(n)``: files, sockets' bodies, generated streams."""

    def read(self, size: int = -1, /) -> bytes: ...


@runtime_checkable
class BlobStore(Protocol):
    """Write a stream, read a stream or a byte range, stat, delete, list by prefix."""

    def put(self, key: str, stream: Readable, size: int | None = None) -> BlobInfo:
        """Store ``stream`` under ``key`` durably; on return the bytes survive a crash.

        The write is atomic: readers see either the old blob or the whole new one.
        """
        ...

    def put_file(self, key: str, path: Path) -> BlobInfo:
        """Store the complete local file ``path`` under ``key``, durably, as :meth:`put` does.

        The file must not change afterwards. A store on the same filesystem takes
        it without copying (a hard link); others upload it.
        """
        ...

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """A readable stream of the blob, or of bytes ``[start, end)`` of it."""
        ...

    def iter_chunks(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        """The blob (or a byte range) as chunks, for streaming responses."""
        ...

    def stat(self, key: str) -> BlobInfo | None:
        """Size of the blob, or ``None`` when there is none."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; removing a missing blob is not an error."""
        ...

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Every blob whose key starts with ``prefix``, in key order."""
        ...

    def check(self) -> None:
        """Raise :class:`StorageError` when the store cannot be reached or written."""
        ...
