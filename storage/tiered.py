"""Two tiers behind one store: new blobs on a fast filesystem, old ones in S3 (issue 20 item 3).

Reads look in the hot tier first and then in the cold one, so a blob is found
wherever it is, and at every moment of a move: :meth:`TieredStore.demote` copies
it to the cold tier and only then removes the hot copy. Writes always go to the
hot tier (new objects, compressed or corrected copies); deletes remove both.
Keys never get other content (they carry the content's hash), so a copy in
each tier is never two versions of one blob.

Which blobs are old enough, and the record of where each one is, belong to the
archive (:mod:`pacs.archive.tiers`); this store only knows its two stores.
A missing hot file costs one failed ``stat`` before the cold read.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from storage.base import BlobInfo, BlobNotFound, BlobStore, Readable, StorageError


class TieredStore:
    def __init__(self, hot: BlobStore, cold: BlobStore) -> None:
        self.hot = hot
        self.cold = cold

    def __repr__(self) -> str:
        return f"TieredStore({self.hot!r} -> {self.cold!r})"

    def _holder(self, key: str) -> BlobStore:
        return self.hot if self.hot.stat(key) is not None else self.cold

    def put(self, key: str, stream: Readable, size: int | None = None) -> BlobInfo:
        return self.hot.put(key, stream, size)

    def put_file(self, key: str, path: Path) -> BlobInfo:
        return self.hot.put_file(key, path)

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        try:
            return self.hot.open(key, start, end)
        except BlobNotFound:
            return self.cold.open(key, start, end)

    def iter_chunks(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        return self._holder(key).iter_chunks(key, start, end, chunk_size)

    def stat(self, key: str) -> BlobInfo | None:
        return self.hot.stat(key) or self.cold.stat(key)

    def delete(self, key: str) -> None:
        self.hot.delete(key)
        self.cold.delete(key)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Both tiers in key order; a blob caught in both during a move is listed once."""
        last = None
        for info in heapq.merge(self.hot.list(prefix), self.cold.list(prefix), key=_key):
            if info.key != last:
                yield info
            last = info.key

    def check(self) -> None:
        self.hot.check()
        self.cold.check()

    def in_hot_tier(self, key: str) -> bool:
        return self.hot.stat(key) is not None

    def demote(self, key: str) -> BlobInfo | None:
        """Copy a hot blob to the cold tier (unless a copy of its size is there), verify the
        copy's size, then drop the hot one. ``None`` when the hot tier does not hold it."""
        held = self.hot.stat(key)
        if held is None:
            return None
        copied = self.cold.stat(key)
        if copied is None or copied.size != held.size:
            with self.hot.open(key) as stream:
                copied = self.cold.put(key, stream, held.size)
        if copied.size != held.size:
            raise StorageError(f"{key}: cold copy has {copied.size} bytes of {held.size}")
        self.hot.delete(key)
        return copied


def _key(info: BlobInfo) -> str:
    return info.key
