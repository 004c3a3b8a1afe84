"""Transfer-syntax conversion for retrieval (WADO-RS ``transfer-syntax=``, C-MOVE/C-GET fallback).

The archive keeps what the modality sent; a viewer that cannot decode it asks
for another syntax. Decoding uses pydicom's pixel decoders (pylibjpeg,
openjpeg, pyjpegls); encoding uses pydicom's encoders where it has them (RLE,
JPEG-LS, JPEG 2000) and imagecodecs for the rest (JPEG baseline, lossless
JPEG, HTJ2K). What cannot be produced raises :class:`CannotTranscode` with a
reason, which the doors turn into 406 or a rejected presentation context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import imagecodecs
import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.pixels import iter_pixels
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from pacs.codecs import register as register_codecs

register_codecs()

# Explicit big endian is retired (PS3.5 A.3) and pydicom does not write it: a source only.
NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
PYDICOM_ENCODED = (RLELossless, JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000)
FrameEncoder = Callable[[np.ndarray, Dataset], bytes]


class CannotTranscode(Exception):
    """The requested syntax cannot be produced from this instance (the reason says why)."""


def _jpeg_baseline(frame: np.ndarray, ds: Dataset) -> bytes:
    if frame.dtype != np.uint8:
        raise CannotTranscode("JPEG baseline holds 8-bit samples only; this image has more")
    return bytes(imagecodecs.jpeg8_encode(frame, level=90))


def _jpeg_extended(frame: np.ndarray, ds: Dataset) -> bytes:
    """JPEG Extended (process 2 & 4): lossy, 8 or 12 bits per sample (libjpeg-turbo 3)."""
    bits = int(ds.get("BitsStored", 8))
    if frame.dtype.kind == "i" or bits > 12:
        raise CannotTranscode("JPEG Extended holds unsigned samples of 12 bits at most")
    precision = 8 if frame.dtype == np.uint8 else 12
    return bytes(imagecodecs.jpeg8_encode(frame, level=90, bitspersample=precision))


def _jpeg_lossless(frame: np.ndarray, ds: Dataset) -> bytes:
    """Lossless JPEG, first-order prediction (selection value 1: valid for .57 and .70).

    Signed samples go in as their two's complement bit pattern at Bits Stored
    precision, as PS3.5 8.2.1 has it; decoders restore the sign from Pixel
    Representation.
    """
    bits = int(ds.get("BitsStored", frame.dtype.itemsize * 8))
    if frame.dtype.kind == "i":
        frame = frame.view(frame.dtype.str.replace("i", "u")) & np.array((1 << bits) - 1).astype(
            frame.dtype.str.replace("i", "u")
        )
    precision = max(2, min(16, bits))
    return bytes(
        imagecodecs.jpeg8_encode(frame, lossless=True, predictor=1, bitspersample=precision)
    )


def _htj2k_lossless(frame: np.ndarray, ds: Dataset) -> bytes:
    return bytes(imagecodecs.htj2k_encode(frame))


IMAGECODECS_ENCODED: dict[str, FrameEncoder] = {
    JPEGBaseline8Bit: _jpeg_baseline,
    JPEGExtended12Bit: _jpeg_extended,
    JPEGLossless: _jpeg_lossless,
    JPEGLosslessSV1: _jpeg_lossless,
    HTJ2KLossless: _htj2k_lossless,
}
LOSSY = {JPEGBaseline8Bit, JPEGExtended12Bit, JPEG2000, JPEGLSNearLossless}


def supported_targets() -> tuple[str, ...]:
    return (*NATIVE, DeflatedExplicitVRLittleEndian, *PYDICOM_ENCODED, *IMAGECODECS_ENCODED)


def transcode(source: BinaryIO, target: str) -> Dataset:
    """The stored instance in ``target`` syntax (file meta updated), or :class:`CannotTranscode`."""
    if UID(target) not in supported_targets():
        raise CannotTranscode(f"transfer syntax {target} is not one this archive can produce")
    return transcode_dataset(dcmread(source), target)


def transcode_dataset(ds: Dataset, target: str) -> Dataset:
    """``ds`` (with file meta) converted in place to ``target``; :class:`CannotTranscode` if not.

    The SOP Instance UID is kept: a retrieval names the instance it asked for, and
    the part's Content-Type (and LossyImageCompression) say how it was encoded.
    """
    target = UID(target)
    if target not in supported_targets():
        raise CannotTranscode(f"transfer syntax {target} is not one this archive can produce")
    current = ds.file_meta.TransferSyntaxUID
    if current == target:
        return ds
    if current == ExplicitVRBigEndian:
        to_little_endian(ds)
        current = ds.file_meta.TransferSyntaxUID
        if current == target:
            return ds
    if "PixelData" not in ds:
        ds.file_meta.TransferSyntaxUID = target  # no pixels: only the encoding of the header
        return ds
    try:
        if target in NATIVE or target == DeflatedExplicitVRLittleEndian:
            if current.is_compressed:
                ds.decompress(generate_instance_uid=False)
            ds.file_meta.TransferSyntaxUID = target
            return ds
        if current.is_compressed:
            ds.decompress(generate_instance_uid=False)
        if target in PYDICOM_ENCODED:
            if target == JPEG2000:
                # About 20:1, diagnostic-review quality.
                ds.compress(target, j2k_cr=[20.0], generate_instance_uid=False)
            elif target == JPEGLSNearLossless:
                ds.compress(target, jls_error=2, generate_instance_uid=False)
            else:
                ds.compress(target, generate_instance_uid=False)
        else:
            _compress_with(ds, target, IMAGECODECS_ENCODED[target])
    except CannotTranscode:
        raise
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        raise CannotTranscode(f"cannot convert {current.name} to {target.name}: {exc}") from exc
    if target in LOSSY:
        ds.LossyImageCompression = "01"
    return ds


_SWAPPED = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def to_little_endian(ds: Dataset) -> None:
    """Re-lay a dataset read as Explicit VR Big Endian (retired) as Explicit VR Little Endian.

    pydicom decodes numbers by their own byte order and writes them in the new
    one; words held as bytes (OW, OF, OL, OD, OV, Pixel Data among them) are
    swapped here, which pydicom leaves to the caller.
    """
    for element in ds.iterall():  # converts every raw element with the byte order it was read
        width = _SWAPPED.get(str(element.VR))
        value = element.value
        defined = not getattr(element, "is_undefined_length", False)
        if width and defined and isinstance(value, bytes) and len(value) % width == 0:
            element.value = np.frombuffer(value, f">u{width}").astype(f"<u{width}").tobytes()
    ds.set_original_encoding(False, True, ds.original_character_set)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def _compress_with(ds: Dataset, target: UID, encode: FrameEncoder) -> None:
    frames = [encode(frame, ds) for frame in iter_pixels(ds, raw=True)]
    if int(ds.get("SamplesPerPixel", 1)) == 3 and target == JPEGBaseline8Bit:
        ds.PhotometricInterpretation = "YBR_FULL_422"  # libjpeg stores colour as YCbCr 4:2:2
    total = sum(len(f) for f in frames)
    if total > 0xFFFF_FFF0:
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(
            frames
        )
    else:
        ds.PixelData = encapsulate(frames, has_bot=len(frames) > 1)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = target
    if "PlanarConfiguration" in ds:
        ds.PlanarConfiguration = 0


@dataclass(frozen=True)
class PixelFormat:
    """The few header facts that decide whether a target syntax can hold an image."""

    bits_allocated: int
    samples_per_pixel: int
    signed: bool

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> PixelFormat | None:
        """From a DICOM JSON instance (the index's metadata); ``None`` when it has no image."""

        def number(tag: str, default: int | None = None) -> int | None:
            values = document.get(tag, {}).get("Value") or [default]
            return None if values[0] is None else int(values[0])

        bits = number("00280100")
        if bits is None:
            return None
        return cls(bits, number("00280002", 1) or 1, number("00280103", 0) == 1)

    @classmethod
    def from_dataset(cls, ds: Dataset) -> PixelFormat | None:
        if "BitsAllocated" not in ds:
            return None
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        return cls(int(ds.BitsAllocated), int(ds.get("SamplesPerPixel", 1) or 1), signed)


def refusal(source: str, target: str, pixels: PixelFormat | None) -> str | None:
    """Why :func:`transcode` would refuse, judged from the header alone; ``None``: it should work.

    The doors ask this before answering 200, so a whole study is not streamed
    only to fail half-way; the reasons match the ones :func:`transcode` raises.
    """
    source, target = UID(source), UID(target)
    if source == target:
        return None
    if target not in supported_targets():
        return f"transfer syntax {target} ({target.name}) is not one this archive can produce"
    if pixels is None:
        return None
    if source.is_compressed:
        try:
            decodable = get_decoder(source).is_available
        except NotImplementedError:
            decodable = False
        if not decodable:
            return f"no decoder is installed for pixel data stored as {source.name}"
    if target == JPEGBaseline8Bit and pixels.bits_allocated != 8:
        return "JPEG baseline holds 8-bit samples only; this image has more"
    if target == JPEGExtended12Bit and (pixels.signed or pixels.bits_allocated > 16):
        return "JPEG Extended holds unsigned samples of 12 bits at most"
    if target in (JPEGLossless, JPEGLosslessSV1) and pixels.bits_allocated > 16:
        return "lossless JPEG holds samples of 16 bits at most"
    if pixels.bits_allocated == 1 and target.is_compressed:
        return f"1-bit (bit-packed) images cannot be encoded as {target.name}"
    return None


_PIXEL_MODULE = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PlanarConfiguration",
)


def transcode_frame(header: Dataset, frame: bytes, source: str, target: str) -> bytes:
    """One frame stored as ``source`` (native bytes or one bitstream) re-encoded as ``target``.

    Only this frame is ever in memory: a one-frame dataset is built from the
    image pixel attributes of ``header`` and goes through :func:`transcode_dataset`.
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(source)
    for keyword in _PIXEL_MODULE:
        if keyword in header:
            setattr(ds, keyword, header[keyword].value)
    ds.NumberOfFrames = 1
    bits = int(ds.get("BitsAllocated", 8))
    if UID(source).is_compressed:
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = frame
        ds["PixelData"].VR = "OW" if bits > 8 else "OB"
    converted = transcode_dataset(ds, target)
    if not UID(target).is_compressed:
        size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * bits // 8
        return bytes(converted.PixelData[:size])
    return next(generate_frames(converted.PixelData, number_of_frames=1))
