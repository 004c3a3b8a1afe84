"""Writing a new file's body with direct I/O: from aligned buffers to the disk, not the page cache.

An image is written once and read rarely, but a buffered write copies it into
the page cache first and leaves the kernel to write it back. On the machines
we measured (microVMs whose memory the host hands out on first touch) that copy
cost ~1.5 ms of CPU per 512 KiB CT slice, a third of a whole C-STORE, and
evicted pages worth keeping (the index) for pages nobody reads soon. Object
stores such as MinIO write object data with ``O_DIRECT`` for the same reasons.

:class:`DirectWriter` writes the first :data:`HEAD_BYTES` through the page
cache (that is what ingest reads back at once: the DICOM header), stages the
rest in a reused, page-aligned buffer and writes it in aligned chunks with
``O_DIRECT``, and writes the unaligned tail through the page cache again when
flushed. Where the filesystem refuses direct I/O (tmpfs, some network mounts)
it quietly writes everything through the page cache. Durability is unchanged:
the caller still fsyncs, which also flushes the disk's own cache.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading

ALIGN = 4096  # a multiple of every logical block size we expect
HEAD_BYTES = 16 << 10  # through the page cache, for the readers that follow at once
CHUNK = 256 << 10  # staged bytes per direct write
_O_DIRECT = getattr(os, "O_DIRECT", 0)
# What a filesystem without direct I/O (or one refusing our alignment) answers.
_REFUSED = {errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}


class _Buffers:
    """Page-aligned staging buffers, reused: a fresh page costs more to touch than to copy."""

    def __init__(self, keep: int = 16) -> None:
        self._free: list[mmap.mmap] = []
        self._keep = keep
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, CHUNK + ALIGN)

    def give(self, buffer: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buffer)
                return
        buffer.close()


_buffers = _Buffers()


class DirectWriter:
    """Appends to an open, new, empty file: head and tail buffered, the body direct.

    ``direct`` False writes everything through the page cache.
    """

    def __init__(self, fd: int, direct: bool = True) -> None:
        self.fd = fd
        self.size = 0  # bytes appended so far
        self._direct = direct and bool(_O_DIRECT)
        self._staging: mmap.mmap | None = None
        self._staged = 0  # bytes waiting in the staging buffer
        self._flag_set = False  # O_DIRECT set on the descriptor

    @property
    def direct(self) -> bool:
        """Whether the body is still being written directly."""
        return self._direct

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        count = len(view)
        if self._direct and self.size < HEAD_BYTES:
            head = min(count, HEAD_BYTES - self.size)
            _write_all(self.fd, view[:head])
            view = view[head:]
        while view and self._direct:
            view = view[self._stage(view) :]
        if view:
            _write_all(self.fd, view)
        self.size += count
        return count

    def flush(self) -> None:
        """Everything appended so far reaches the file; after this the writer stays buffered.

        The tail that does not fill an aligned block is written through the page
        cache, so direct writing cannot resume after it.
        """
        if self._direct:
            self._write_staged(final=True)

    def close(self) -> None:
        """Flush and give back the staging buffer (the descriptor stays the caller's)."""
        try:
            self.flush()
        finally:
            self._release()

    def _stage(self, view: memoryview) -> int:
        if self._staging is None:
            self._staging = _buffers.take()
        taken = min(len(view), CHUNK - self._staged)
        self._staging[self._staged : self._staged + taken] = view[:taken]
        self._staged += taken
        if self._staged == CHUNK:
            self._write_staged(final=False)
        return taken

    def _write_staged(self, final: bool) -> None:
        """Write the aligned part of the staged bytes directly; the rest too if ``final``.

        Once direct writing has ended (``final``, or refused), whatever is staged
        is written through the page cache at once, ahead of anything appended later.
        """
        aligned = self._staged - self._staged % ALIGN
        if aligned and self._direct_write(aligned):
            rest = self._staged - aligned
            if rest:
                assert self._staging is not None
                self._staging.move(0, aligned, rest)
            self._staged = rest
        if final:
            self._end_direct()
        if not self._direct:
            if self._staged:
                assert self._staging is not None
                with memoryview(self._staging) as staged:
                    _write_all(self.fd, staged[: self._staged])
                self._staged = 0
            self._release()

    def _direct_write(self, count: int) -> bool:
        """Write ``count`` staged bytes with O_DIRECT; ``False`` (now buffered) if refused."""
        assert self._staging is not None
        try:
            if not self._flag_set:
                flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
                fcntl.fcntl(self.fd, fcntl.F_SETFL, flags | _O_DIRECT)
                self._flag_set = True
            with memoryview(self._staging) as staged:
                written = os.write(self.fd, staged[:count])
        except OSError as exc:
            if exc.errno not in _REFUSED:
                raise
            self._end_direct()  # this filesystem takes no direct I/O: buffered from here on
            return False
        if written != count:  # a short direct write: the rest of it goes buffered
            self._end_direct()
            with memoryview(self._staging) as staged:
                _write_all(self.fd, staged[written:count])
        return True

    def _end_direct(self) -> None:
        self._direct = False
        if self._flag_set:
            self._flag_set = False
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            fcntl.fcntl(self.fd, fcntl.F_SETFL, flags & ~_O_DIRECT)

    def _release(self) -> None:
        if self._staging is not None and not self._staged:
            _buffers.give(self._staging)
            self._staging = None


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]
