"""Blob store on a local folder: the embedded default.

Writes go to a temporary file in the destination folder, are fsynced, then
renamed over the final name and the folder is fsynced, so a crash leaves
either nothing or the whole blob (plus at worst a ``.tmp`` file that
:meth:`FileSystemStore.list` skips and the reconciler removes).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

from storage.base import (
    BlobInfo,
    BlobNotFound,
    Readable,
    StorageError,
    check_key,
    check_prefix,
)
from storage.ranges import RangeReader

_TMP_SUFFIX = ".tmp"
# link() refused: another filesystem, or one without hard links; the file is copied instead.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


class FileSystemStore:
    """Blobs as files below ``root``; keys map one-to-one onto relative paths."""

    def __init__(self, root: str | os.PathLike[str], fsync: bool = True) -> None:
        self.root = Path(root).resolve()
        self.fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"FileSystemStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        """The file of ``key``: a lexical join, since :func:`check_key` admits no ``..``.

        Resolving every path (one ``lstat`` per component) cost nearly a tenth of an
        ingest; links inside the root are the operator's, not a sender's.
        """
        return self.root / check_key(key)

    def put(self, key: str, stream: Readable, size: int | None = None) -> BlobInfo:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=_TMP_SUFFIX)
        except OSError as exc:
            raise StorageError(f"cannot write below {self.root}: {exc.strerror}") from exc
        written = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(1 << 20):
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                if self.fsync:
                    os.fsync(out.fileno())
            if size is not None and written != size:
                raise StorageError(f"expected {size} bytes for {key}, got {written}")
            os.replace(tmp, path)
            if self.fsync:
                _fsync_dir(path.parent)
        except OSError as exc:
            _unlink_quietly(tmp)
            reason = "storage is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise StorageError(f"cannot write {key}: {reason}") from exc
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return BlobInfo(key, written)

    def put_file(self, key: str, path: Path) -> BlobInfo:
        """Take ``path`` by a hard link (no copy) when it lies on this filesystem.

        The file's data is fsynced, linked under a temporary name, renamed over
        the key and the folder fsynced: the same durability and atomicity as
        :meth:`put`, without writing the bytes a second time. Across
        filesystems (or where links are refused) it is copied with :meth:`put`.
        """
        target = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise StorageError(f"cannot read {path.name} to store {key}: {exc.strerror}") from exc
        try:
            if self.fsync:
                os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        tmp = str(target.parent / f".{uuid.uuid4().hex}{_TMP_SUFFIX}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, tmp)
        except OSError as exc:
            if exc.errno in _NO_LINK:
                with path.open("rb") as source:
                    return self.put(key, source, size)
            raise StorageError(f"cannot write {key}: {exc.strerror}") from exc
        try:
            os.replace(tmp, target)
            if self.fsync:
                _fsync_dir(target.parent)
        except OSError as exc:
            _unlink_quietly(tmp)
            raise StorageError(f"cannot write {key}: {exc.strerror}") from exc
        return BlobInfo(key, size)

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        path = self._path(key)
        try:
            fh = path.open("rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror}") from exc
        if start == 0 and end is None:
            return fh
        return cast(BinaryIO, RangeReader(fh, start, end))

    def iter_chunks(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        with self.open(key, start, end) as fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def stat(self, key: str) -> BlobInfo | None:
        try:
            return BlobInfo(key, self._path(key).stat().st_size)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat {key}: {exc.strerror}") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot delete {key}: {exc.strerror}") from exc
        # Drop folders left empty so the tree mirrors the index.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        check_prefix(prefix)
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, self.root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
            if not (rel_dir.startswith(prefix) or prefix.startswith(rel_dir)):
                dirnames.clear()
                continue
            for name in sorted(filenames):
                key = rel_dir + name
                if name.endswith(_TMP_SUFFIX) or not key.startswith(prefix):
                    continue
                try:
                    yield BlobInfo(key, os.stat(os.path.join(dirpath, name)).st_size)
                except FileNotFoundError:
                    continue

    def list_temporary(self) -> Iterator[Path]:
        """Leftover temporary files from interrupted writes (for the reconciler)."""
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if name.endswith(_TMP_SUFFIX):
                    yield Path(dirpath) / name

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            usage = shutil.disk_usage(self.root)
        except OSError as exc:
            raise StorageError(f"storage root {self.root} unusable: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"storage root {self.root} is not writable")
        if usage.free < 1 << 20:
            raise StorageError(f"storage root {self.root} is full")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
