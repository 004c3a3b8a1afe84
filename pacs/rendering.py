"""Turn one frame of a stored instance into a picture a browser can show (JPEG or PNG).

This is what ``rendered`` and ``thumbnail`` (PS3.18 10.4.1.1.3, 8.3.5.1) and
WADO-URI ``image/jpeg`` return. The order of the transforms is the standard's
grayscale pipeline: stored values -> Modality LUT (rescale) -> VOI LUT or the
requested/attached window -> Presentation (MONOCHROME1 inverts) -> 8-bit.
Colour images are converted to RGB (YBR and palette included). Only the
requested frame is decoded, read straight from the stored file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    pixel_array,
)

from pacs.codecs import register as register_codecs
from pacs.dicom.native_frame import read_native_frame
from pacs.part10 import NotDicom, inflated

register_codecs()

JPEG = "image/jpeg"
PNG = "image/png"
GIF = "image/gif"
MEDIA_TYPES = (JPEG, PNG, GIF)


class RenderError(Exception):
    """The frame cannot be rendered (no pixel data, frame out of range, unsupported data)."""


@dataclass(frozen=True)
class RenderOptions:
    media_type: str = JPEG
    quality: int = 90  # JPEG quality, 1-100
    window: tuple[float, float] | None = None  # (center, width) overriding the dataset's
    viewport: tuple[int, int] | None = None  # fit inside (width, height), keeping the aspect


def number_of_frames(ds: Dataset) -> int:
    """Number of Frames; a value that is not a number (stored with a warning) is a RenderError."""
    try:
        return int(getattr(ds, "NumberOfFrames", 1) or 1)
    except (TypeError, ValueError) as exc:
        raise RenderError(f"NumberOfFrames is not a number: {exc}") from exc


def render_frame(source: BinaryIO, frame: int, options: RenderOptions) -> bytes:
    """Render 0-based ``frame`` of the Part 10 file in ``source`` (seekable).

    Every way a stored object can fail to become a picture (no pixels, a
    stream no installed decoder reads, a decoder that panics, attributes that
    contradict the pixels) is a :class:`RenderError` with the reason: the
    object was accepted, so the request is answered, never dropped.
    """
    try:
        with inflated(source) as readable:
            return _render(readable, frame, options)
    except NotDicom as exc:
        raise RenderError(f"unreadable instance: {exc}") from exc


def _render(source: BinaryIO, frame: int, options: RenderOptions) -> bytes:
    try:
        start = source.tell()
        header = dcmread(source, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise RenderError(f"unreadable instance: {exc}") from exc
    if not 0 <= frame < number_of_frames(header):
        raise RenderError(f"frame {frame + 1} out of range (1-{number_of_frames(header)})")
    values = read_native_frame(source, header, frame)
    if values is None:
        source.seek(start)
        values = _decode(source, frame)
    try:
        image = to_display(values, header, options.window)
    except (ArithmeticError, AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise RenderError(f"frame {frame + 1} cannot be displayed: {_reason(exc)}") from exc
    return encode(image, options)


def _decode(source: BinaryIO, frame: int) -> np.ndarray:
    """One frame through pydicom's decoders; a decoder failure or panic is a RenderError."""
    try:
        return pixel_array(source, index=frame)
    except AttributeError as exc:
        if "no 'Pixel Data'" in str(exc):
            raise RenderError("the instance holds no image") from exc
        raise RenderError(f"cannot decode frame {frame + 1}: {_reason(exc)}") from exc
    except Exception as exc:  # decoders raise anything: RuntimeError, NotImplementedError...
        raise RenderError(f"cannot decode frame {frame + 1}: {_reason(exc)}") from exc
    except BaseException as exc:
        # A Rust decoder's panic (pyo3 PanicException) derives from BaseException.
        if type(exc).__name__ != "PanicException":
            raise
        raise RenderError(f"cannot decode frame {frame + 1}: the decoder failed") from exc


def _reason(exc: BaseException) -> str:
    """The first line of an exception's text, bounded (decoder messages can be long)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def to_display(
    values: np.ndarray, ds: Dataset, window: tuple[float, float] | None = None
) -> Image.Image:
    """An 8-bit greyscale or RGB picture of one decoded frame."""
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(values, ds)
        return Image.fromarray(_to_uint8(rgb, bits=16 if rgb.dtype != np.uint8 else 8), "RGB")
    if int(getattr(ds, "SamplesPerPixel", 1)) == 3:
        # pydicom's decoders already hand back RGB for every YBR flavour (as_rgb).
        bits = int(getattr(ds, "BitsStored", 8))
        return Image.fromarray(_to_uint8(values, bits=bits), "RGB")
    grey = _greyscale(values, ds, window)
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey, "L")


def _greyscale(values: np.ndarray, ds: Dataset, window: tuple[float, float] | None) -> np.ndarray:
    """8-bit display values of a greyscale frame.

    Integer frames of at most 16 bits with a linear rescale go through a lookup table:
    the whole pipeline runs once per stored value in the frame's range, then one
    indexing pass maps the frame. Measured on a 512x512 CT frame: 10.2 ms for the
    float pipeline over every pixel, 0.6 ms with the table; the output is identical
    (the same pipeline computes the table). A Modality or VOI LUT sequence (tables
    that need not be monotonic, where min/max over the range is not min/max over the
    frame) keeps the per-pixel path.
    """
    if _lut_applies(values, ds):
        low, high = int(values.min()), int(values.max())
        domain = np.arange(low, high + 1, dtype=np.int64).astype(values.dtype)
        table = _greyscale_pixels(domain, ds, window)
        return table[values.astype(np.int64) - low]
    return _greyscale_pixels(values, ds, window)


def _lut_applies(values: np.ndarray, ds: Dataset) -> bool:
    return (
        values.dtype.kind in "iu"
        and values.dtype.itemsize <= 2
        and values.size > 4096
        and "ModalityLUTSequence" not in ds
        and "VOILUTSequence" not in ds
    )


def _greyscale_pixels(
    values: np.ndarray, ds: Dataset, window: tuple[float, float] | None
) -> np.ndarray:
    modality = apply_modality_lut(values, ds).astype(np.float64)
    if window is not None:
        center, width = window
        return _linear_window(modality, center, width)
    if "VOILUTSequence" in ds and "WindowCenter" not in ds:
        shown = apply_voi_lut(modality, ds, index=0, prefer_lut=True).astype(np.float64)
        return _stretch(shown)
    if "WindowCenter" in ds:
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        return _linear_window(modality, center, width)
    return _stretch(modality)


def _first(value: object) -> float:
    """The first of a multi-valued Window Center/Width (several windows may be offered)."""
    if isinstance(value, MultiValue | list | tuple):
        return float(value[0])
    return float(value)  # type: ignore[arg-type]


def _linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 linear window to 0..255."""
    if width <= 1:  # a threshold at the center
        return np.where(values < center - 0.5, 0, 255).astype(np.uint8)
    low = center - 0.5 - (width - 1) / 2
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    scaled = np.where(values <= low, 0, scaled)
    scaled = np.where(values > center - 0.5 + (width - 1) / 2, 255, scaled)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, np.uint8)
    return ((values - low) * (255.0 / (high - low))).clip(0, 255).astype(np.uint8)


def _to_uint8(values: np.ndarray, bits: int) -> np.ndarray:
    if values.dtype == np.uint8:
        return values
    return (values.astype(np.float64) * (255.0 / ((1 << bits) - 1))).clip(0, 255).astype(np.uint8)


def encode(image: Image.Image, options: RenderOptions) -> bytes:
    if options.viewport is not None:
        width, height = options.viewport
        if width < 1 or height < 1:
            raise RenderError("viewport must be positive")
        image = image.copy()
        image.thumbnail((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if options.media_type == JPEG:
        image.save(out, "JPEG", quality=max(1, min(100, options.quality)))
    elif options.media_type == PNG:
        image.save(out, "PNG", compress_level=1)  # speed over a few percent of size
    elif options.media_type == GIF:
        image.save(out, "GIF")
    else:
        raise RenderError(f"cannot render as {options.media_type}")
    return out.getvalue()
