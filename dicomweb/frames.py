"""Where each frame (and each bulk data value) lies inside a stored instance.

A viewer asks for frame 37 of a 1 GB multi-frame object many times a second;
parsing the object, or reading it up to frame 37, each time is not an option.
So the header is parsed once (only the bytes before Pixel Data, read in
growing ranged reads), and for encapsulated pixel data the fragment item
headers are walked once (seeking over the values). The result, a list of byte
spans per frame, is cached by blob key: keys contain the content hash, so a
cached table can never describe other bytes.
"""

from __future__ import annotations

import io
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.filereader import read_partial
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRBigEndian, ImplicitVRLittleEndian

from pacs.integrity import stored_samples

ITEM = 0xFFFEE000
SEQUENCE_DELIMITER = 0xFFFEE0DD
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT"}
_FIRST_READ = 64 * 1024
_MAX_HEAD_IN_MEMORY = 4 * 1024 * 1024
_DEFER = 1 << 20  # values above this stay in the blob (offset tables are smaller)
_CACHE_SIZE = 256
_CACHE_BYTES = 32 << 20  # what cached tables may hold in all (estimated, see _cost)
_SPAN_COST = 120  # bytes a cached Span and its tuple slot take, about

Opener = Callable[[int, int | None], BinaryIO]  # (start, end) -> stream over blob bytes


class FrameError(Exception):
    """The frames cannot be located (no pixel data, inconsistent offsets)."""


@dataclass(frozen=True)
class Span:
    offset: int
    length: int


class NativeFrames(Sequence[tuple[Span, ...]]):
    """The spans of native frames, computed when asked: memory does not grow with the count.

    A small object may declare millions of 1-bit frames; a table that held a
    tuple per frame cost hundreds of MiB for one request (issue 15).
    """

    def __init__(self, start: int, frame_bits: int, count: int) -> None:
        self._start, self._bits, self._count = start, frame_bits, count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> tuple[Span, ...]:  # type: ignore[override]
        if not isinstance(index, int):
            raise TypeError("frame spans are indexed one at a time")
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError("frame index out of range")
        first = index * self._bits
        start = self._start + first // 8
        end = self._start + (first + self._bits + 7) // 8
        return (Span(start, end - start),)


@dataclass(frozen=True)
class FrameTable:
    """Byte spans of every frame; native frames may be bit-packed (BitsAllocated 1)."""

    frames: Sequence[tuple[Span, ...]]
    encapsulated: bool
    frame_bits: int = 0  # for bit-packed native frames: bits per frame (0: byte aligned)
    word_swap: int = 0  # big endian OW pixels: bytes per word to swap into little endian


@dataclass(frozen=True)
class Header:
    dataset: Dataset  # everything before Pixel Data
    pixel_offset: int  # first byte of the Pixel Data element header (-1: none)
    value_offset: int  # first byte of its value
    value_length: int  # 0xFFFFFFFF when encapsulated
    little: bool = True  # False: Explicit VR Big Endian (retired, still sent by old modalities)


def _stop_at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
    return int(tag) in PIXEL_TAGS


def read_header(open_range: Opener, size: int, transfer_syntax: str) -> Header:
    """Parse the dataset up to Pixel Data: ranged reads of the head, growing up to 4 MiB.

    A longer head (a big embedded document, a dataset without pixels) is parsed
    from a seekable stream with large values deferred, so memory stays small.
    """
    little = transfer_syntax != ExplicitVRBigEndian
    implicit = transfer_syntax == ImplicitVRLittleEndian
    want = _FIRST_READ
    while want <= _MAX_HEAD_IN_MEMORY:
        with open_range(0, min(want, size)) as fp:
            head = fp.read()
        stream = io.BytesIO(head)
        try:
            ds = read_partial(stream, _stop_at_pixels)
        except Exception as exc:
            if len(head) >= size:
                raise FrameError(f"cannot parse the stored instance: {exc}") from exc
            ds = None
        if ds is not None:
            found = _pixel_header(head, stream.tell(), implicit, little)
            if found is not None:
                return Header(ds, *found, little)
            if len(head) >= size:
                return Header(ds, -1, -1, 0, little)
        if len(head) >= size:
            raise FrameError("no pixel data header found in the stored instance")
        want *= 4
    return _read_header_streaming(open_range, implicit, little)


def _read_header_streaming(open_range: Opener, implicit: bool, little: bool) -> Header:
    with open_range(0, None) as fp:
        if not fp.seekable():
            raise FrameError("the header before Pixel Data is over 4 MiB on a store without seek")
        try:
            ds = read_partial(fp, _stop_at_pixels, defer_size=_DEFER)
        except Exception as exc:
            raise FrameError(f"cannot parse the stored instance: {exc}") from exc
        position = fp.tell()
        raw = fp.read(12)
    found = _pixel_header(raw, 0, implicit, little)
    if found is None:
        return Header(ds, -1, -1, 0, little)
    return Header(ds, found[0] + position, found[1] + position, found[2], little)


def _pixel_header(
    head: bytes, position: int, implicit: bool, little: bool = True
) -> tuple[int, int, int] | None:
    """(element offset, value offset, value length) if a Pixel Data header starts here."""
    order = "<" if little else ">"
    raw = head[position : position + 12]
    if len(raw) < 8:
        return None
    group, element = struct.unpack(f"{order}HH", raw[:4])
    if (group << 16) | element not in PIXEL_TAGS:
        return None
    if implicit:
        return position, position + 8, struct.unpack("<I", raw[4:8])[0]
    if raw[4:6] in _LONG_VRS:
        if len(raw) < 12:
            return None
        return position, position + 12, struct.unpack(f"{order}I", raw[8:12])[0]
    return position, position + 8, struct.unpack(f"{order}H", raw[6:8])[0]


def _native(header: Header, number_of_frames: int) -> FrameTable:
    ds = header.dataset
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1))
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise FrameError(f"image pixel attributes missing: {exc}") from exc
    frame_bits = rows * columns * stored_samples(ds, samples) * bits
    if frame_bits < 1 or number_of_frames < 1:
        raise FrameError("image pixel attributes describe an empty frame")
    if frame_bits * number_of_frames > header.value_length * 8:
        raise FrameError("pixel data is shorter than Rows x Columns x frames")
    frames = NativeFrames(header.value_offset, frame_bits, number_of_frames)
    swap = 2 if not header.little and bits > 8 else 0  # OW words, stored big endian
    if swap and frame_bits % 8:
        raise FrameError("bit-packed frames stored big endian are not served")
    return FrameTable(frames, False, frame_bits if frame_bits % 8 else 0, swap)


class _Cursor:
    """Sequential item-header reads over the blob, seeking over values when it can."""

    def __init__(self, open_range: Opener, start: int) -> None:
        self._fp = open_range(0, None)
        self._seekable = self._fp.seekable()
        if self._seekable:
            self._fp.seek(start)
        else:
            self._fp.close()
            self._fp = open_range(start, None)
        self.position = start

    def read(self, size: int) -> bytes:
        data = self._fp.read(size)
        self.position += len(data)
        return data

    def skip(self, size: int) -> None:
        if self._seekable:
            self._fp.seek(self.position + size)
            self.position += size
            return
        while size:
            got = len(self._fp.read(min(size, 1 << 20)))
            if not got:
                break
            size -= got
            self.position += got

    def close(self) -> None:
        self._fp.close()


def _items(open_range: Opener, start: int) -> list[tuple[int, Span]]:
    """(item header offset, value span) of every item of the encapsulated sequence."""
    cursor = _Cursor(open_range, start)
    found: list[tuple[int, Span]] = []
    try:
        while True:
            item_at = cursor.position
            head = cursor.read(8)
            if len(head) < 8:
                raise FrameError("encapsulated pixel data ends without a sequence delimiter")
            group, element, length = struct.unpack("<HHI", head)
            tag = (group << 16) | element
            if tag == SEQUENCE_DELIMITER:
                return found
            if tag != ITEM or length == 0xFFFFFFFF:
                raise FrameError("encapsulated pixel data holds something other than items")
            found.append((item_at, Span(cursor.position, length)))
            cursor.skip(length)
    finally:
        cursor.close()


_SOI_MARKERS = (b"\xff\xd8", b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0c\x6a\x50")


def _encapsulated(open_range: Opener, header: Header, number_of_frames: int) -> FrameTable:
    items = _items(open_range, header.value_offset)
    if not items:
        raise FrameError("encapsulated pixel data has no offset table item")
    (_bot_at, bot), fragments = items[0], items[1:]
    if not fragments:
        raise FrameError("encapsulated pixel data has no fragments")
    first = fragments[0][0]
    starts: list[int] | None = None
    eot = header.dataset.get("ExtendedOffsetTable")
    if isinstance(eot, bytes) and eot:
        starts = [first + value for value in struct.unpack(f"<{len(eot) // 8}Q", eot)]
    elif bot.length:
        with open_range(bot.offset, bot.offset + bot.length) as fp:
            table = fp.read()
        starts = [first + value for value in struct.unpack(f"<{len(table) // 4}I", table)]
    if starts is None:
        if number_of_frames == 1:
            return FrameTable((tuple(span for _, span in fragments),), True)
        if len(fragments) == number_of_frames:
            return FrameTable(tuple((span,) for _, span in fragments), True)
        starts = _marker_starts(open_range, fragments)
    boundaries = set(starts)
    frames: list[list[Span]] = []
    for item_at, span in fragments:
        if item_at in boundaries or not frames:
            frames.append([])
        frames[-1].append(span)
    if len(frames) != number_of_frames:
        raise FrameError(
            f"found {len(frames)} frames in the pixel data but NumberOfFrames is {number_of_frames}"
        )
    return FrameTable(tuple(tuple(frame) for frame in frames), True)


def _marker_starts(open_range: Opener, fragments: list[tuple[int, Span]]) -> list[int]:
    """Frame starts without an offset table: fragments that begin with a start-of-image marker."""
    starts = []
    for item_at, span in fragments:
        with open_range(span.offset, span.offset + min(span.length, 6)) as fp:
            if fp.read().startswith(_SOI_MARKERS):
                starts.append(item_at)
    return starts


def build_table(
    open_range: Opener, size: int, transfer_syntax: str, frames: int | None
) -> FrameTable:
    header = read_header(open_range, size, transfer_syntax)
    if header.pixel_offset < 0:
        raise FrameError("the instance has no pixel data")
    number = frames or _int(header.dataset.get("NumberOfFrames")) or 1
    if header.value_length == 0xFFFFFFFF:
        return _encapsulated(open_range, header, number)
    if UID(transfer_syntax).is_compressed:
        raise FrameError("compressed transfer syntax with native pixel data")
    return _native(header, number)


def _int(value: object) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _cost(table: FrameTable) -> int:
    """About what a cached table holds in memory: spans of encapsulated frames, little else."""
    if isinstance(table.frames, NativeFrames):
        return 256
    return 256 + sum(len(frame) for frame in table.frames) * _SPAN_COST


class FrameCache:
    """An LRU of frame tables by blob key (content-addressed, so never stale), bounded in bytes.

    The bound is on what the tables hold, not on how many there are: one table of
    a fragment-per-line object can outweigh thousands of CT slices'. A table over
    a quarter of the budget is used for its request and not kept.
    """

    def __init__(self, size: int = _CACHE_SIZE, max_bytes: int = _CACHE_BYTES) -> None:
        self._tables: OrderedDict[str, tuple[FrameTable, int]] = OrderedDict()
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def get(
        self, key: str, open_range: Opener, size: int, transfer_syntax: str, frames: int | None
    ) -> FrameTable:
        with self._lock:
            cached = self._tables.get(key)
            if cached is not None:
                self._tables.move_to_end(key)
                return cached[0]
        table = build_table(open_range, size, transfer_syntax, frames)
        cost = _cost(table)
        if cost > self._max_bytes // 4:
            return table
        with self._lock:
            if key not in self._tables:
                self._tables[key] = (table, cost)
                self._bytes += cost
            while len(self._tables) > self._size or self._bytes > self._max_bytes:
                _key, (_table, dropped) = self._tables.popitem(last=False)
                self._bytes -= dropped
        return table


def read_bit_packed(open_range: Opener, table: FrameTable, index: int) -> bytes:
    """One bit-packed frame, shifted to start at bit 0 (PS3.5 8.1.1, little endian bit order)."""
    import numpy as np

    span = table.frames[index][0]
    with open_range(span.offset, span.offset + span.length) as fp:
        data = np.frombuffer(fp.read(), dtype=np.uint8)
    first_bit = (index * table.frame_bits) % 8
    bits = np.unpackbits(data, bitorder="little")[first_bit : first_bit + table.frame_bits]
    return bytes(np.packbits(bits, bitorder="little").tobytes())
