"""pacs.dimse.direct_io: the same bytes as a plain write, the body past the page cache."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from pacs.dimse import direct_io
from pacs.dimse.direct_io import CHUNK, HEAD_BYTES, DirectWriter

SIZES = [
    0,
    100,
    HEAD_BYTES - 1,
    HEAD_BYTES,
    HEAD_BYTES + 1,
    HEAD_BYTES + 4096,
    HEAD_BYTES + CHUNK,
    HEAD_BYTES + CHUNK + 4095,
    3 * CHUNK + 12345,
]


def _write(path: Path, data: bytes, pieces: list[int], flush_each: bool, direct: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        writer = DirectWriter(fd, direct=direct)
        offset = 0
        for size in pieces:
            assert writer.write(memoryview(data)[offset : offset + size]) == size
            offset += size
            if flush_each:
                writer.flush()
        assert writer.size == len(data)
        writer.close()
    finally:
        os.close(fd)


def _pieces(total: int, rng: random.Random) -> list[int]:
    """Sizes like PDV fragments: mostly ~128 KiB, never aligned on purpose."""
    sizes = []
    while total > 0:
        size = min(total, rng.choice([1, 354, 4095, 131060, 131072, 200_003]))
        sizes.append(size)
        total -= size
    return sizes


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("flush_each", [False, True], ids=["flush-at-end", "flush-each"])
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
def test_the_file_holds_exactly_what_was_written(
    tmp_path: Path, size: int, flush_each: bool, direct: bool
) -> None:
    rng = random.Random(size)
    data = rng.randbytes(size)
    path = tmp_path / "out.dcm"
    _write(path, data, _pieces(size, rng), flush_each, direct)
    assert path.read_bytes() == data


def test_the_body_bypasses_the_page_cache_and_the_head_does_not(tmp_path: Path) -> None:
    """Read back without waiting for the disk (RWF_NOWAIT): the head is cached, the body not."""
    data = random.Random(1).randbytes(HEAD_BYTES + 2 * CHUNK + 100)
    path = tmp_path / "out.dcm"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        writer = DirectWriter(fd)
        writer.write(data)
        assert writer.direct
        writer.close()
        assert not writer.direct
    finally:
        os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    try:
        head = bytearray(4096)
        assert os.preadv(fd, [head], 0, os.RWF_NOWAIT) == 4096
        with pytest.raises(BlockingIOError):
            os.preadv(fd, [bytearray(4096)], HEAD_BYTES + CHUNK, os.RWF_NOWAIT)
    finally:
        os.close(fd)
    assert path.read_bytes() == data


def test_a_direct_write_the_kernel_refuses_is_written_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a filesystem without direct I/O: here, lengths no device block size divides."""
    monkeypatch.setattr(direct_io, "ALIGN", 1000)  # the kernel answers EINVAL
    data = random.Random(2).randbytes(HEAD_BYTES + 2 * CHUNK + 777)
    path = tmp_path / "out.dcm"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        writer = DirectWriter(fd)
        for size in _pieces(len(data), random.Random(3)):
            writer.write(data[writer.size : writer.size + size])
        assert not writer.direct  # refused once, buffered since
        writer.close()
    finally:
        os.close(fd)
    assert path.read_bytes() == data
