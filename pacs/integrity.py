"""Structural check of an encoded dataset: every declared length fits the bytes present.

pydicom reads a short value without complaint and skips deferred values with a
seek, so a truncated file or an absurd declared length would pass a parse and
end up in the archive as a file nobody can open. This walk visits every
element header (and sequence items and pixel data fragments) without reading
values, so it costs a few hundred small reads per instance and no memory.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO, cast

from pydicom.dataset import Dataset

UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
FLOAT_PIXEL_DATA = (0x7FE00008, 0x7FE00009)  # Float and Double Float Pixel Data
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_MAX_DEPTH = 32


class MalformedDataset(ValueError):
    """The encoded dataset is truncated or its lengths do not add up.

    ``top_tag`` is the top-level element the walk was in when it failed (set by
    :func:`check_structure`), so that a caller can judge whether the defect lies
    in a sequence it may leave out rather than in the dataset's frame.
    """

    top_tag: int | None = None


@dataclass
class PixelDataLocation:
    """Where the Pixel Data value sits in the stream (for frame retrieval without a parse)."""

    offset: int
    length: int  # UNDEFINED for encapsulated pixel data
    vr: str
    tag: int = PIXEL_DATA


class _Walker:
    def __init__(self, fp: BinaryIO, end: int, implicit: bool, little: bool) -> None:
        self.fp = fp
        self.end = end
        self.implicit = implicit
        self.order = "<" if little else ">"
        self.pixel_data: PixelDataLocation | None = None
        self.top_tag: int | None = None

    def _read(self, size: int, what: str) -> bytes:
        data = self.fp.read(size)
        if len(data) != size:
            raise MalformedDataset(f"dataset ends inside {what} at byte {self.fp.tell()}")
        return data

    def _skip(self, length: int, what: str) -> None:
        here = self.fp.tell()
        if here + length > self.end:
            raise MalformedDataset(
                f"{what} declares {length} bytes at byte {here} but only "
                f"{max(0, self.end - here)} remain (truncated or wrong length)"
            )
        self.fp.seek(here + length)

    def _tag(self, implicit_layout: bool) -> int:
        order = "<" if implicit_layout else self.order
        group, element = struct.unpack(order + "HH", self._read(4, "a tag"))
        return (group << 16) | element

    def dataset(self, depth: int, implicit: bool, stop_tag: int | None, limit: int) -> None:
        """Walk elements until ``limit`` bytes or ``stop_tag`` (an item delimiter)."""
        if depth > _MAX_DEPTH:
            raise MalformedDataset("sequences nested deeper than 32 levels")
        while self.fp.tell() < limit:
            tag = self._tag(implicit)
            name = f"element ({tag >> 16:04X},{tag & 0xFFFF:04X})"
            if depth == 0:
                self.top_tag = tag
            if tag in (ITEM_DELIMITER, SEQUENCE_DELIMITER):
                self._read(4, "a delimiter")
                if tag == stop_tag:
                    return
                raise MalformedDataset(f"unexpected delimiter {name} at byte {self.fp.tell()}")
            vr, length = self._header(implicit, name)
            if length == UNDEFINED:
                if tag == PIXEL_DATA and vr in (b"OB", b"OW", None) and depth == 0:
                    self.pixel_data = PixelDataLocation(self.fp.tell(), UNDEFINED, "OB")
                    self._fragments()
                elif vr in (b"SQ", b"UN", None):
                    # UN of undefined length holds implicit little endian (PS3.5 6.2.2).
                    self._sequence(depth + 1, implicit or vr == b"UN", name)
                else:
                    raise MalformedDataset(f"{name} has undefined length with VR {vr!r}")
            else:
                if (tag == PIXEL_DATA or tag in FLOAT_PIXEL_DATA) and depth == 0:
                    implied = "OW" if tag == PIXEL_DATA else ("OF" if tag & 0xFF == 8 else "OD")
                    vr_text = vr.decode("ascii", "replace") if vr else implied
                    self.pixel_data = PixelDataLocation(self.fp.tell(), length, vr_text, tag)
                self._skip(length, name)
        if stop_tag is not None:
            raise MalformedDataset("dataset ends inside a sequence item (missing delimiter)")

    def _header(self, implicit: bool, name: str) -> tuple[bytes | None, int]:
        if implicit:
            return None, struct.unpack("<I", self._read(4, f"the length of {name}"))[0]
        vr = self._read(2, f"the VR of {name}")
        if vr in _LONG_VRS:
            self._read(2, f"the header of {name}")
            return vr, struct.unpack(self.order + "I", self._read(4, f"the length of {name}"))[0]
        if not vr.isalpha() or not vr.isupper():
            raise MalformedDataset(f"{name} has an invalid VR {vr!r}")
        return vr, struct.unpack(self.order + "H", self._read(2, f"the length of {name}"))[0]

    def _item_header(self, implicit: bool) -> tuple[int, int]:
        tag = self._tag(implicit)
        order = "<" if implicit else self.order
        length = struct.unpack(order + "I", self._read(4, "an item length"))[0]
        return tag, length

    def _sequence(self, depth: int, implicit: bool, name: str) -> None:
        while True:
            tag, length = self._item_header(implicit)
            if tag == SEQUENCE_DELIMITER:
                return
            if tag != ITEM:
                raise MalformedDataset(f"{name} holds {tag:08X} where an item was expected")
            if length == UNDEFINED:
                self.dataset(depth, implicit, ITEM_DELIMITER, self.end)
            else:
                start = self.fp.tell()
                if start + length > self.end:
                    raise MalformedDataset(
                        f"an item of {name} declares {length} bytes past the end"
                    )
                self.dataset(depth, implicit, None, start + length)
                if self.fp.tell() != start + length:
                    raise MalformedDataset(f"an item of {name} does not match its declared length")

    def _fragments(self) -> None:
        while True:
            tag, length = self._item_header(self.implicit)
            if tag == SEQUENCE_DELIMITER:
                return
            if tag != ITEM or length == UNDEFINED:
                raise MalformedDataset(
                    "encapsulated pixel data holds something other than fragments"
                )
            self._skip(length, "a pixel data fragment")


def check_structure(
    fp: BinaryIO, start: int, end: int, *, implicit: bool, little: bool
) -> PixelDataLocation | None:
    """Raise :class:`MalformedDataset` unless ``fp[start:end]`` is a complete dataset.

    Returns where the pixel data is, when there is any.
    """
    fp.seek(start)
    walker = _Walker(fp, end, implicit, little)
    try:
        walker.dataset(0, implicit, None, end)
    except MalformedDataset as exc:
        exc.top_tag = walker.top_tag
        raise
    if fp.tell() != end:
        raise MalformedDataset(f"the last element runs past the end of the data at byte {end}")
    return walker.pixel_data


def check_deflated_structure(fp: BinaryIO, start: int, end: int) -> PixelDataLocation | None:
    """:func:`check_structure` for Deflated Explicit VR Little Endian.

    The declared lengths count inflated bytes, so the walk runs over the
    inflated dataset (spooled to disk past 8 MB). Without it a deflated object
    whose inner lengths do not add up would parse (pixel data is deferred) and
    be stored unreadable.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as plain:
        fp.seek(start)
        remaining = end - start
        try:
            while remaining > 0 and not inflater.eof:
                chunk = fp.read(min(1 << 20, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                plain.write(inflater.decompress(chunk))
            plain.write(inflater.flush())
        except zlib.error as exc:
            raise MalformedDataset(f"the deflated dataset cannot be inflated: {exc}") from exc
        if not inflater.eof:
            raise MalformedDataset("the deflated dataset is truncated")
        # The location is in the inflated dataset: its length and VR are what callers use.
        return check_structure(cast(BinaryIO, plain), 0, plain.tell(), implicit=False, little=True)


#: Frames one object may declare. Real multi-frame objects (cine, tomosynthesis, whole
#: slide tiles) stay far below; the frame table of a retrieval grows with this count.
MAX_FRAMES = 1_000_000


def stored_samples(ds: Dataset, samples: int) -> int:
    """Samples stored per pixel in native data: YBR 4:2:2 keeps two for every pixel (PS3.3
    C.7.6.3.1.2), whatever Samples per Pixel says."""
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    return 2 if samples == 3 and photometric in ("YBR_FULL_422", "YBR_PARTIAL_422") else samples


def pixel_refusal(ds: Dataset, pixels: PixelDataLocation | None) -> str | None:
    """Why an object's pixel data can never be served as its header describes it, or ``None``.

    Native pixel data must hold Rows x Columns x Samples x Bits Allocated for
    each declared frame (the frame table and every decoder trust that), and the
    frame count must be a sane positive number. Encapsulated data is checked
    against its fragments when frames are located. Objects without pixel data,
    or without the attributes to judge, are not refused here.
    """
    if pixels is None:
        return None
    try:
        frames = int(str(ds.get("NumberOfFrames", 1) or 1))
    except ValueError:
        return None  # reported as a defect of the value; the object is kept
    if not 1 <= frames <= MAX_FRAMES:
        return f"NumberOfFrames {frames} is outside 1-{MAX_FRAMES}"
    if pixels.length == UNDEFINED or pixels.tag != PIXEL_DATA:
        return None
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return None
    if rows < 1 or columns < 1 or samples not in (1, 3, 4) or bits < 1:
        return f"image of {rows} x {columns} pixels, {samples} samples, {bits} bits cannot be shown"
    needed = (rows * columns * stored_samples(ds, samples) * bits * frames + 7) // 8
    if pixels.length < needed:
        return (
            f"pixel data holds {pixels.length} bytes but Rows x Columns x Samples x "
            f"Bits Allocated x {frames} frame(s) needs {needed}"
        )
    return None
