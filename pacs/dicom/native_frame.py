"""One frame of native (uncompressed) little-endian greyscale pixel data, read in place.

Rendering one CT frame read the header with pydicom, then asked pydicom's
``pixel_array`` for the frame, which parses the same header a second time
before reading the pixels: about a quarter of the render time of a 512x512
frame. For the common case (Explicit or Implicit VR Little Endian, one sample
per pixel, 8 or 16 bits allocated) the frame sits at a fixed offset after the
Pixel Data element header, so it is read directly and given the same values
pydicom gives (bits above Bits Stored masked, or sign-extended for signed
data). Anything else, or anything that does not add up (a short element,
an undefined length), returns ``None`` and goes through pydicom, which also
reports what is wrong with it.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian
UNDEFINED_LENGTH = 0xFFFFFFFF
_DTYPES = {(8, 0): "u1", (8, 1): "i1", (16, 0): "<u2", (16, 1): "<i2"}


def read_native_frame(source: BinaryIO, header: Dataset, index: int) -> np.ndarray | None:
    """Frame ``index`` (0-based) as a Rows x Columns array, or ``None`` when pydicom must decode.

    ``source`` is positioned at the Pixel Data element, where
    ``dcmread(stop_before_pixels=True)`` leaves it; ``header`` is what that read returned.
    """
    layout = _layout(header)
    if layout is None:
        return None
    rows, columns, allocated, stored, signed = layout
    start = source.tell()
    element = source.read(12)
    offset = _value_offset(element, _transfer_syntax(header) == ExplicitVRLittleEndian)
    if offset is None:
        return None
    length = int.from_bytes(element[offset - 4 : offset], "little")
    frame_bytes = rows * columns * allocated // 8
    if length == UNDEFINED_LENGTH or (index + 1) * frame_bytes > length:
        return None
    source.seek(start + offset + index * frame_bytes)
    data = source.read(frame_bytes)
    if len(data) != frame_bytes:
        return None
    values = np.frombuffer(data, _DTYPES[(allocated, int(signed))]).reshape(rows, columns)
    return _only_stored_bits(values, allocated, stored, signed)


def _transfer_syntax(header: Dataset) -> str:
    meta = getattr(header, "file_meta", None)
    return str(getattr(meta, "TransferSyntaxUID", ""))


def _layout(header: Dataset) -> tuple[int, int, int, int, bool] | None:
    """(rows, columns, bits allocated, bits stored, signed) when the fast read applies."""
    if _transfer_syntax(header) not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        return None
    try:
        samples = int(header.get("SamplesPerPixel", 1))
        rows, columns = int(header.Rows), int(header.Columns)
        allocated, stored = int(header.BitsAllocated), int(header.BitsStored)
        representation = int(header.get("PixelRepresentation", 0))
    except (AttributeError, TypeError, ValueError):
        return None
    if samples != 1 or allocated not in (8, 16) or not 1 <= stored <= allocated:
        return None
    if representation not in (0, 1) or rows < 1 or columns < 1:
        return None
    return rows, columns, allocated, stored, representation == 1


def _value_offset(element: bytes, explicit: bool) -> int | None:
    """Where the value starts after the Pixel Data element's header (8 or 12 bytes)."""
    if len(element) < 12 or element[:4] != PIXEL_DATA_TAG:
        return None
    if not explicit:
        return 8
    return 12 if element[4:6] in (b"OB", b"OW") else None


def _only_stored_bits(values: np.ndarray, allocated: int, stored: int, signed: bool) -> np.ndarray:
    """The values of the Bits Stored only, as pydicom returns them."""
    if stored == allocated:
        return values
    unused = allocated - stored
    if signed:
        return (values << unused) >> unused  # arithmetic shift: sign-extends
    return values & ((1 << stored) - 1)
