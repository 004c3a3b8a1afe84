"""imagecodecs as one more pixel decoder behind pydicom's own (a fallback, never the first try).

pydicom decodes JPEG with pylibjpeg-libjpeg or Pillow. Neither reads every
real JPEG Extended 12-bit stream (pydicom-data's ``JPEG-lossy.dcm``: libjpeg
stops at "misplaced marker segment", Pillow has no 12-bit JPEG), while
libjpeg-turbo 3 inside imagecodecs does. Registered as a pydicom decoder
plugin after the stock ones, it is tried only when they have all failed, so
what decodes today keeps decoding the same way.

Colour JPEG is left to the stock plugins: they hand back the stream's own
colour space (the ``raw`` contract pydicom's YBR conversion relies on), which
libjpeg-turbo would convert on the way out.
"""

from __future__ import annotations

import threading

import imagecodecs
import numpy as np
from pydicom import uid
from pydicom.pixels.decoders.base import DecodeRunner, get_decoder

LABEL = "pacs-imagecodecs"
_JPEG = (
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,
    uid.JPEGLosslessSV1,
)
_JPEG_LS = (uid.JPEGLSLossless, uid.JPEGLSNearLossless)
DECODER_DEPENDENCIES = {syntax: ("imagecodecs>=2024.1",) for syntax in (*_JPEG, *_JPEG_LS)}
_registered = False
_lock = threading.Lock()


def is_available(syntax: str) -> bool:
    """pydicom's plugin contract: whether this plugin decodes ``syntax`` here."""
    if syntax in _JPEG:
        return bool(imagecodecs.JPEG8.available)
    if syntax in _JPEG_LS:
        return bool(imagecodecs.JPEGLS.available)
    return False


def decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """pydicom's plugin contract: one frame's samples, little endian, colour-by-pixel."""
    if runner.samples_per_pixel != 1 and runner.transfer_syntax in _JPEG:
        raise NotImplementedError("colour JPEG is left to pydicom's own decoders")
    if runner.transfer_syntax in _JPEG_LS:
        array = np.asarray(imagecodecs.jpegls_decode(src))
        runner.set_option("planar_configuration", 0)
    else:
        array = np.asarray(imagecodecs.jpeg8_decode(src))
    if array.dtype.itemsize == 1:
        runner.set_option("bits_allocated", 8)
    elif array.dtype.itemsize == 2:
        runner.set_option("bits_allocated", 16)
    return bytes(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


def register() -> None:
    """Add the fallback to pydicom's decoders (once per process; later calls do nothing)."""
    global _registered
    with _lock:
        if _registered:
            return
        for syntax in (*_JPEG, *_JPEG_LS):
            get_decoder(syntax).add_plugin(LABEL, (__name__, "decode_frame"))
        _registered = True
