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
from typing import BinaryIO

import imagecodecs
import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.pixels import iter_pixels
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLSLossless,
    RLELossless,
)

# Explicit big endian is retired (PS3.5 A.3) and pydicom does not write it: a source only.
NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
PYDICOM_ENCODED = (RLELossless, JPEGLSLossless, JPEG2000Lossless, JPEG2000)
FrameEncoder = Callable[[np.ndarray, Dataset], bytes]


class CannotTranscode(Exception):
    """The requested syntax cannot be produced from this instance (the reason says why)."""


def _jpeg_baseline(frame: np.ndarray, ds: Dataset) -> bytes:
    if frame.dtype != np.uint8:
        raise CannotTranscode("JPEG baseline holds 8-bit samples only; this image has more")
    return bytes(imagecodecs.jpeg8_encode(frame, level=90))


def _jpeg_lossless(frame: np.ndarray, ds: Dataset) -> bytes:
    if frame.dtype.kind == "i" or frame.ndim == 3:
        raise CannotTranscode("lossless JPEG here encodes unsigned greyscale samples only")
    return bytes(imagecodecs.ljpeg_encode(frame))


def _htj2k_lossless(frame: np.ndarray, ds: Dataset) -> bytes:
    return bytes(imagecodecs.htj2k_encode(frame))


IMAGECODECS_ENCODED: dict[str, FrameEncoder] = {
    JPEGBaseline8Bit: _jpeg_baseline,
    JPEGLossless: _jpeg_lossless,
    HTJ2KLossless: _htj2k_lossless,
}
LOSSY = {JPEGBaseline8Bit, JPEG2000}


def supported_targets() -> tuple[str, ...]:
    return (*NATIVE, DeflatedExplicitVRLittleEndian, *PYDICOM_ENCODED, *IMAGECODECS_ENCODED)


def transcode(source: BinaryIO, target: str) -> Dataset:
    """The stored instance in ``target`` syntax (file meta updated), or :class:`CannotTranscode`."""
    target = UID(target)
    if target not in supported_targets():
        raise CannotTranscode(f"transfer syntax {target} is not one this archive can produce")
    ds = dcmread(source)
    current = ds.file_meta.TransferSyntaxUID
    if current == target:
        return ds
    if "PixelData" not in ds:
        ds.file_meta.TransferSyntaxUID = target  # no pixels: only the encoding of the header
        return ds
    try:
        if target in NATIVE or target == DeflatedExplicitVRLittleEndian:
            if current.is_compressed:
                ds.decompress()
            ds.file_meta.TransferSyntaxUID = target
            return ds
        if current.is_compressed:
            ds.decompress()
        if target in PYDICOM_ENCODED:
            if target == JPEG2000:
                ds.compress(target, j2k_cr=[20.0])  # about 20:1, diagnostic-review quality
            else:
                ds.compress(target)
        else:
            _compress_with(ds, target, IMAGECODECS_ENCODED[target])
    except CannotTranscode:
        raise
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        raise CannotTranscode(f"cannot convert {current.name} to {target.name}: {exc}") from exc
    if target in LOSSY:
        ds.LossyImageCompression = "01"
    return ds


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
