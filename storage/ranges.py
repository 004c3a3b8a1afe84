"""A read-only view of a byte range of an underlying stream."""

from __future__ import annotations

import io
from typing import BinaryIO


class RangeReader(io.RawIOBase):
    """Expose bytes ``[start, end)`` of ``inner`` as a stream of its own.

    Used for HTTP byte ranges and for reading one frame out of a blob without
    reading the bytes before it.
    """

    def __init__(self, inner: BinaryIO, start: int, end: int | None) -> None:
        super().__init__()
        self._inner = inner
        self._inner.seek(start)
        self._remaining = None if end is None else max(0, end - start)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._remaining is not None and (size is None or size < 0 or size > self._remaining):
            size = self._remaining
        data = self._inner.read(-1 if size is None else size)
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()
