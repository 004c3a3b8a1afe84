"""Pick a blob store from a storage URL (``file://...`` or ``s3://bucket/prefix``)."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from storage.base import BlobStore


def open_store(
    url: str,
    *,
    s3_endpoint: str | None = None,
    s3_access_key: str | None = None,
    s3_secret_key: str | None = None,
    s3_region: str | None = None,
    s3_secure: bool | None = None,
    s3_create_bucket: bool = False,
    fsync: bool = True,
) -> BlobStore:
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        from storage.filesystem import FileSystemStore

        path = unquote(parsed.netloc + parsed.path) if parsed.scheme else url
        return FileSystemStore(path, fsync=fsync)
    if parsed.scheme == "s3":
        from storage.s3 import S3Store

        if not parsed.netloc:
            raise ValueError(f"storage URL {url!r} names no bucket")
        return S3Store(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            endpoint=s3_endpoint,
            access_key=s3_access_key,
            secret_key=s3_secret_key,
            region=s3_region,
            secure=s3_secure,
            create_bucket=s3_create_bucket,
        )
    raise ValueError(f"unsupported storage URL scheme {parsed.scheme!r} (use file:// or s3://)")
