"""Blob store on S3 (MinIO, AWS, any S3-compatible service) through the ``minio`` client.

An S3 PUT is atomic by nature: readers see the old object or the whole new
one, and a successful response means the service has made it durable (MinIO
with erasure coding, AWS across zones). Streams of unknown size go up as
multipart uploads in fixed parts, so memory stays bounded whatever the size.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from storage.base import BlobInfo, BlobNotFound, Readable, StorageError, check_key, check_prefix

PART_SIZE = 16 << 20  # multipart chunk: 16 MiB keeps memory small and the part count low
_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")


class _ReadAdapter(io.RawIOBase):
    """Give any ``read(n)`` stream the file-like face minio's uploader expects."""

    def __init__(self, stream: Readable) -> None:
        super().__init__()
        self._stream = stream
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._stream.read(-1 if size is None else size)
        self.count += len(data)
        return data


class _ObjectStream(io.RawIOBase):
    """An object's body as a file; closing it returns the connection to the pool."""

    def __init__(self, response: Any) -> None:
        super().__init__()
        self._response = response

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            if size is None or size < 0:
                return cast(bytes, self._response.read())
            return cast(bytes, self._response.read(size))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageError(f"object stream interrupted: {exc}") from exc

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._response.release_conn()
        super().close()


class S3Store:
    """Blobs as objects ``<prefix>/<key>`` in one bucket."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
        secure: bool | None = None,
        create_bucket: bool = False,
        timeout: float = 30.0,
    ) -> None:
        parsed = urlparse(endpoint if endpoint and "://" in endpoint else f"//{endpoint or ''}")
        host = parsed.netloc or "s3.amazonaws.com"
        if secure is None:
            secure = parsed.scheme != "http"
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
            maxsize=32,
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)
            ),
        )
        self.client = Minio(
            host,
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            secure=secure,
            http_client=http,
        )
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = f"{'https' if secure else 'http'}://{host}"
        if create_bucket:
            self._ensure_bucket(region)

    def __repr__(self) -> str:
        return f"S3Store({self.endpoint}/{self.bucket}/{self.prefix})"

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, what: str, exc: Exception) -> StorageError:
        if isinstance(exc, S3Error):
            return StorageError(f"S3 {what}: {exc.code} ({exc.message})")
        return StorageError(f"S3 {what} at {self.endpoint}: {exc.__class__.__name__}: {exc}")

    def _ensure_bucket(self, region: str | None) -> None:
        try:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket, location=region or "us-east-1")
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._fail(f"create bucket {self.bucket}", exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise self._fail(f"create bucket {self.bucket}", exc) from exc

    def put(self, key: str, stream: Readable, size: int | None = None) -> BlobInfo:
        name = self._name(key)
        reader = _ReadAdapter(stream)
        try:
            self.client.put_object(
                self.bucket,
                name,
                cast(BinaryIO, reader),
                length=size if size is not None else -1,
                part_size=PART_SIZE if size is None or size > PART_SIZE else 0,
                content_type="application/dicom"
                if key.endswith(".dcm")
                else "application/octet-stream",
            )
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise self._fail(f"cannot write {key}", exc) from exc
        if size is not None and reader.count != size:
            raise StorageError(f"expected {size} bytes for {key}, got {reader.count}")
        return BlobInfo(key, reader.count)

    def put_file(self, key: str, path: Path) -> BlobInfo:
        try:
            source = path.open("rb")
        except OSError as exc:
            raise StorageError(f"cannot read {path.name} to store {key}: {exc.strerror}") from exc
        with source:
            return self.put(key, source, os.fstat(source.fileno()).st_size)

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        name = self._name(key)
        length = 0 if end is None else max(0, end - start)
        if end is not None and length == 0:
            return io.BytesIO(b"")
        try:
            response = self.client.get_object(self.bucket, name, offset=start, length=length)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise BlobNotFound(key) from exc
            if exc.code == "InvalidRange":
                return io.BytesIO(b"")
            raise self._fail(f"cannot read {key}", exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise self._fail(f"cannot read {key}", exc) from exc
        return cast(BinaryIO, _ObjectStream(response))

    def iter_chunks(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        with self.open(key, start, end) as fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def stat(self, key: str) -> BlobInfo | None:
        try:
            info = self.client.stat_object(self.bucket, self._name(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise self._fail(f"cannot stat {key}", exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise self._fail(f"cannot stat {key}", exc) from exc
        return BlobInfo(key, int(info.size or 0))

    def delete(self, key: str) -> None:
        try:
            self.client.remove_object(self.bucket, self._name(key))
        except S3Error as exc:
            if exc.code not in _MISSING:
                raise self._fail(f"cannot delete {key}", exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise self._fail(f"cannot delete {key}", exc) from exc

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        check_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        try:
            for obj in self.client.list_objects(self.bucket, prefix=base + prefix, recursive=True):
                name = obj.object_name or ""
                if name.endswith("/"):
                    continue
                yield BlobInfo(name[len(base) :], int(obj.size or 0))
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise self._fail("cannot list", exc) from exc

    def check(self) -> None:
        try:
            if not self.client.bucket_exists(self.bucket):
                raise StorageError(f"S3 bucket {self.bucket} does not exist at {self.endpoint}")
        except StorageError:
            raise
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise self._fail("unreachable", exc) from exc
