"""Blob stores behind one small interface: filesystem (embedded default) and S3."""

from storage.base import BlobInfo, BlobNotFound, BlobStore, InvalidKey, StorageError, check_key
from storage.factory import open_store

__all__ = [
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "InvalidKey",
    "StorageError",
    "check_key",
    "open_store",
]
