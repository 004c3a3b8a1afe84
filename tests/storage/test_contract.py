"""One contract, every backend: the filesystem and S3 (moto's server over HTTP)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from storage import BlobInfo, BlobNotFound, InvalidKey, StorageError
from storage.filesystem import FileSystemStore
from storage.s3 import PART_SIZE, S3Store

Store = FileSystemStore | S3Store


class Generated:
    """A stream of ``size`` pseudo-random bytes that never exists in memory at once."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.digest = hashlib.sha256()
        self.counter = 0

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        block = hashlib.sha256(str(self.counter).encode()).digest() * (size // 32 + 1)
        self.counter += 1
        data = block[:size]
        self.remaining -= len(data)
        self.digest.update(data)
        return data


def test_put_then_open_round_trip(store: Store) -> None:
    info = store.put("a/b/c.dcm", io.BytesIO(b"hello world"), 11)
    assert info == BlobInfo("a/b/c.dcm", 11)
    with store.open("a/b/c.dcm") as fh:
        assert fh.read() == b"hello world"
    assert store.stat("a/b/c.dcm") == BlobInfo("a/b/c.dcm", 11)


def test_put_file_stores_a_local_file_that_may_then_go(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "received.dcm"
    source.write_bytes(b"DICM" * 1000)
    assert store.put_file("a/b/f.dcm", source) == BlobInfo("a/b/f.dcm", 4000)
    store.put_file("a/b/f.dcm", source)  # the same content again: still one whole blob
    source.unlink()  # the receiver removes its spool file
    with store.open("a/b/f.dcm") as fh:
        assert fh.read() == b"DICM" * 1000
    assert [info.key for info in store.list("a/")] == ["a/b/f.dcm"]  # no temporary left over


def test_filesystem_put_file_links_on_the_same_filesystem(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path / "blobs")
    source = tmp_path / "spooled.dcm"
    source.write_bytes(b"x" * 4096)
    store.put_file("s/i.dcm", source)
    blob = tmp_path / "blobs" / "s" / "i.dcm"
    assert blob.stat().st_ino == source.stat().st_ino  # taken, not copied


def test_filesystem_put_file_copies_across_filesystems(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) to link across")
    store = FileSystemStore(tmp_path / "blobs")
    source = shm / f"pacs-test-{tmp_path.name}.dcm"
    source.write_bytes(b"y" * 4096)
    try:
        assert store.put_file("s/i.dcm", source) == BlobInfo("s/i.dcm", 4096)
    finally:
        source.unlink()
    assert (tmp_path / "blobs" / "s" / "i.dcm").read_bytes() == b"y" * 4096


def test_streaming_put_of_unknown_size_goes_multipart(store: Store) -> None:
    size = PART_SIZE + PART_SIZE // 2 + 123  # more than one part
    stream = Generated(size)
    assert store.put("big/object.bin", stream).size == size
    digest = hashlib.sha256()
    for chunk in store.iter_chunks("big/object.bin"):
        digest.update(chunk)
    assert digest.hexdigest() == stream.digest.hexdigest()
    if isinstance(store, S3Store):  # an S3 multipart object's ETag ends in "-<part count>"
        etag = store.client.stat_object(store.bucket, store._name("big/object.bin")).etag
        assert (etag or "").endswith("-2")


def test_declared_size_mismatch_is_an_error(store: Store) -> None:
    with pytest.raises(StorageError):
        store.put("x/y.bin", io.BytesIO(b"12345"), 10)


def test_byte_ranges(store: Store) -> None:
    store.put("r/blob", io.BytesIO(bytes(range(256))), 256)
    with store.open("r/blob", 10, 20) as fh:
        assert fh.read() == bytes(range(10, 20))
    with store.open("r/blob", 250) as fh:
        assert fh.read() == bytes(range(250, 256))
    assert b"".join(store.iter_chunks("r/blob", 0, 5, chunk_size=2)) == bytes(range(5))
    with store.open("r/blob", 5, 5) as fh:
        assert fh.read() == b""


def test_missing_blobs(store: Store) -> None:
    assert store.stat("no/such") is None
    with pytest.raises(BlobNotFound):
        store.open("no/such")
    store.delete("no/such")  # idempotent


def test_delete(store: Store) -> None:
    store.put("d/one", io.BytesIO(b"1"), 1)
    store.delete("d/one")
    assert store.stat("d/one") is None
    store.delete("d/one")


def test_list_by_prefix_in_key_order(store: Store) -> None:
    for key in ("s1/b", "s1/a", "s2/a", "s10/a"):
        store.put(key, io.BytesIO(key.encode()), len(key))
    assert [b.key for b in store.list("s1/")] == ["s1/a", "s1/b"]
    assert [b.key for b in store.list()] == sorted(["s1/a", "s1/b", "s2/a", "s10/a"])
    assert [b.size for b in store.list("s2")] == [4]


def test_overwrite_replaces_whole_object(store: Store) -> None:
    store.put("o/k", io.BytesIO(b"first version"), 13)
    store.put("o/k", io.BytesIO(b"second"), 6)
    with store.open("o/k") as fh:
        assert fh.read() == b"second"


@pytest.mark.parametrize("key", ["../x", "/abs", "a\\b", "a\x00b", "", "a/../b", "a//b", "./a"])
def test_unsafe_keys_refused(store: Store, key: str) -> None:
    with pytest.raises(InvalidKey):
        store.put(key, io.BytesIO(b"x"), 1)
    with pytest.raises(InvalidKey):
        store.open(key)


def test_check_on_a_reachable_store(store: Store) -> None:
    store.check()


def test_s3_unreachable_is_a_storage_error() -> None:
    dead = S3Store(
        "bucket", endpoint="http://127.0.0.1:9", access_key="k", secret_key="k", timeout=2
    )
    with pytest.raises(StorageError, match=r"unreachable|127\.0\.0\.1"):
        dead.check()
    with pytest.raises(StorageError):
        dead.put("a/b", io.BytesIO(b"x"), 1)


def test_s3_missing_bucket_reported(s3_endpoint: str) -> None:
    store = S3Store(
        "never-created", endpoint=s3_endpoint, access_key="testing", secret_key="testing"
    )
    with pytest.raises(StorageError, match="does not exist"):
        store.check()


def test_filesystem_root_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = FileSystemStore.__new__(FileSystemStore)
    store.root, store.fsync = blocker, True
    with pytest.raises(StorageError):
        store.check()
    with pytest.raises(StorageError):
        store.put("a/b", io.BytesIO(b"x"), 1)
