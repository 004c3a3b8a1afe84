"""One image on the media as the offline viewer reads it: frame files and what draws them.

Each frame becomes a classic script, ``PACS_MEDIA_FRAME("<id>", "<base64>");``,
because a page opened from ``file://`` can run a ``<script src>`` beside it but
cannot ``fetch()`` or ``XMLHttpRequest`` it (Chromium refuses file:// reads, and
Firefox limits them): a script tag is the one way in without a server or a click.

What the frame carries:

* JPEG Baseline (8-bit) greyscale and YBR colour: the stream as sent; the browser's
  own JPEG decoder draws it (``createImageBitmap``), so the copy costs 1.33x the
  compressed bytes. RGB JPEG is decoded here instead: a stream without a JFIF or
  Adobe marker would be taken for YCbCr by the browser.
* every other syntax the server decodes (native, RLE, JPEG lossless, JPEG-LS,
  JPEG 2000, through pydicom's plugins, :mod:`pacs.codecs`): the stored values
  of the frame, little endian, deflated (zlib; the viewer inflates with the
  browser's ``DecompressionStream``). At level 1 a 512x512 12-bit phantom with
  noise deflates to 54 % of its size, pydicom-data's CT_small to 69 %, uniform
  12-bit noise to 87 %; level 6 saved 1-2 % more for 2-3x the time (measured on
  this shared machine, loaded). The base64 text adds a third again, so the
  viewer's copy of an uncompressed CT costs 0.7-0.9x its pixel data on the disc.
  Colour and palette colour arrive as 8-bit RGB; greyscale keeps its stored
  values, Rescale Slope/Intercept and the window travel beside them, so the viewer
  applies the standard's linear window (PS3.3 C.11.2.1.2.1) to the modality values.
* a syntax no installed decoder reads (MPEG-2, HEVC, JPEG XL ...) or a frame its
  decoder rejects: no frame, and the syntax's name, which the viewer shows in the
  reader's language instead of a picture.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, iter_pixels
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID, JPEGBaseline8Bit

from pacs.codecs import register as register_codecs

register_codecs()

DEFLATE_LEVEL = 1  # level 6: 2-3x the time for 1-2 % less (see above)
MAX_FRAMES = 5000  # a whole-slide image's tiles are no stack to scroll through
MAX_PIXELS = 64 << 20  # per frame; larger frames would not fit a browser's canvas either
_GREY_TYPES = {"u1", "i1", "u2", "i2"}


class Undecodable(Exception):
    """No installed decoder reads this frame's syntax, or its decoder failed."""


@dataclass
class ImageEntry:
    """What the viewer's index says of one image (instance); ``frames`` files were written."""

    number: int
    rows: int
    cols: int
    first: int
    frames: int = 0
    kind: str = "none"  # grey | rgb | jpeg-grey | jpeg-rgb | none | too-large
    dtype: str = "u1"
    slope: float = 1.0
    intercept: float = 0.0
    center: float = 128.0  # with width 256: stored 0-255 shown as they are
    width: float = 256.0
    invert: bool = False
    syntax: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "rows": self.rows,
            "cols": self.cols,
            "first": self.first,
            "frames": self.frames,
            "kind": self.kind,
            "dtype": self.dtype,
            "slope": self.slope,
            "intercept": self.intercept,
            "center": self.center,
            "width": self.width,
            "invert": self.invert,
            "syntax": self.syntax,
        }


def frame_id(folder: str, number: int) -> str:
    """The id of frame ``number`` of a series folder: its file is ``<id>.JS`` (8.3 names)."""
    return f"{folder}/F{number:07d}"


def write_image(ds: Dataset, data: Path, folder: str, first: int) -> ImageEntry:
    """Write the frames of ``ds`` (read whole, pixel data included) under ``data/folder``,
    numbered from ``first``; the entry that tells the viewer how to draw them."""
    entry = ImageEntry(
        number=_int(ds.get("InstanceNumber"), 0),
        rows=_int(ds.get("Rows"), 0),
        cols=_int(ds.get("Columns"), 0),
        first=first,
        syntax=_syntax_name(ds),
    )
    count = _int(ds.get("NumberOfFrames"), 1) or 1
    if count > MAX_FRAMES or entry.rows * entry.cols > MAX_PIXELS:
        entry.kind = "too-large"
        return entry
    (data / folder).mkdir(parents=True, exist_ok=True)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    entry.invert = photometric == "MONOCHROME1"
    entry.slope = _number(ds.get("RescaleSlope"), 1.0) or 1.0
    entry.intercept = _number(ds.get("RescaleIntercept"), 0.0)
    try:
        if _browser_decodes(ds, photometric):
            _write_jpeg(ds, data, folder, entry, count)
        else:
            _write_decoded(ds, data, folder, entry, photometric)
    except Undecodable:
        for n in range(entry.frames):
            (data / f"{frame_id(folder, first + n)}.JS").unlink(missing_ok=True)
        entry.kind, entry.frames = "none", 0
    return entry


def _browser_decodes(ds: Dataset, photometric: str) -> bool:
    syntax = ds.file_meta.get("TransferSyntaxUID", "")
    return (
        syntax == JPEGBaseline8Bit
        and _int(ds.get("BitsAllocated"), 8) == 8
        and photometric in ("MONOCHROME1", "MONOCHROME2", "YBR_FULL_422", "YBR_FULL")
    )


def _write_jpeg(ds: Dataset, data: Path, folder: str, entry: ImageEntry, count: int) -> None:
    """The JPEG streams as sent, one per frame; greyscale windows over 0-255 by default."""
    colour = _int(ds.get("SamplesPerPixel"), 1) == 3
    entry.kind = "jpeg-rgb" if colour else "jpeg-grey"
    if colour:
        entry.slope, entry.intercept = 1.0, 0.0
    else:
        identity = (entry.intercept + 128 * entry.slope, abs(256 * entry.slope))
        entry.center, entry.width = _window(ds) or identity
    try:
        frames = generate_frames(ds.PixelData, number_of_frames=count)
        for n, stream in enumerate(frames):
            _write_frame(data, frame_id(folder, entry.first + n), bytes(stream))
            entry.frames = n + 1
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Undecodable(str(exc)) from exc


def _write_decoded(
    ds: Dataset, data: Path, folder: str, entry: ImageEntry, photometric: str
) -> None:
    """Decode each frame here; stored values (greyscale) or 8-bit RGB, deflated."""
    for n, values in enumerate(_decoded_frames(ds)):
        if photometric == "PALETTE COLOR":
            rgb = apply_color_lut(values, ds)  # as pacs.rendering: 16-bit tables span 0-65535
            values = _rgb8(rgb, 16 if rgb.dtype != np.uint8 else 8)
        elif values.ndim == 3:
            values = _rgb8(values, _int(ds.get("BitsStored"), 8))
        else:
            values = _grey(values)
        if n == 0:
            _describe(entry, ds, values)
        payload = zlib.compress(np.ascontiguousarray(values).tobytes(), DEFLATE_LEVEL)
        _write_frame(data, frame_id(folder, entry.first + n), payload)
        entry.frames = n + 1


def _decoded_frames(ds: Dataset) -> Iterator[np.ndarray]:
    """pydicom's decoders, frame by frame; anything they raise is :class:`Undecodable`."""
    syntax = ds.file_meta.get("TransferSyntaxUID", "")
    try:
        if not get_decoder(syntax).is_available:
            raise Undecodable(f"no decoder installed for {syntax}")
    except NotImplementedError as exc:
        raise Undecodable(str(exc)) from exc
    frames = iter_pixels(ds)
    while True:
        try:
            values = next(frames)
        except StopIteration:
            return
        except Exception as exc:  # decoders raise anything: RuntimeError, ValueError ...
            raise Undecodable(str(exc)) from exc
        except BaseException as exc:  # a Rust decoder's panic derives from BaseException
            if type(exc).__name__ != "PanicException":
                raise
            raise Undecodable("the decoder failed") from exc
        yield values


def _describe(entry: ImageEntry, ds: Dataset, values: np.ndarray) -> None:
    """Kind, sample type and the first window, from the first frame."""
    if values.ndim == 3:
        entry.kind, entry.dtype = "rgb", "u1"
        entry.slope, entry.intercept, entry.center, entry.width = 1.0, 0.0, 128.0, 256.0
        entry.invert = False
        return
    entry.kind, entry.dtype = "grey", values.dtype.str[1:]
    window = _window(ds)
    if window is None:
        low = float(values.min()) * entry.slope + entry.intercept
        high = float(values.max()) * entry.slope + entry.intercept
        low, high = min(low, high), max(low, high)
        window = ((low + high) / 2, max(high - low, 1.0))
    entry.center, entry.width = window


def _grey(values: np.ndarray) -> np.ndarray:
    """Stored values in a type the viewer has an array for (wider ones as float32)."""
    kind = values.dtype.newbyteorder("<").str[1:]
    if kind == "b1":
        return values.astype("<u1")
    if kind not in _GREY_TYPES:
        return values.astype("<f4")
    return values.astype(values.dtype.newbyteorder("<"), copy=False)


def _rgb8(values: np.ndarray, bits: int) -> np.ndarray:
    if values.dtype == np.uint8:
        return values
    top = float((1 << max(bits, 1)) - 1)
    return np.clip(values.astype(np.float32) * (255.0 / top), 0, 255).astype(np.uint8)


def _write_frame(data: Path, ident: str, payload: bytes) -> None:
    with (data / f"{ident}.JS").open("w", encoding="ascii") as out:
        out.write(f'PACS_MEDIA_FRAME({json.dumps(ident)},"')
        out.write(base64.b64encode(payload).decode("ascii"))
        out.write('");\n')


def _window(ds: Dataset) -> tuple[float, float] | None:
    center = _number(_first(ds.get("WindowCenter")), math.nan)
    width = _number(_first(ds.get("WindowWidth")), math.nan)
    if math.isnan(center) or math.isnan(width) or width < 1:
        return None
    return center, width


def _first(value: object) -> object:
    if isinstance(value, MultiValue | list | tuple):
        return value[0] if len(value) else None
    return value


def _number(value: object, default: float) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _int(value: object, default: int) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


def _syntax_name(ds: Dataset) -> str:
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    name = syntax.name
    return name if name and name != str(syntax) else str(syntax)
