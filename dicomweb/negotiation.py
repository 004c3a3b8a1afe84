"""Transfer-syntax and media-type negotiation for WADO-RS and WADO-URI: one place to decide.

Given what the client accepts (parsed Accept media ranges, in preference
order) and how an instance is stored, pick what we send, or say why nothing
fits (406). Today we send only what is stored: the stored bytes, or the
stored frames. Transcoding plugs in here: where a range asks for another
syntax, :func:`choose_instance` and :func:`choose_frames` will return a
representation that names the target and the route will convert.

A missing ``transfer-syntax`` parameter strictly means Explicit VR Little
Endian (PS3.18 8.7.3.5.2). Until transcoding is available we read it as "as
stored" (as Orthanc does) and every part says its real syntax in its
Content-Type, so a client always knows what it got.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomweb.accept import MediaRange, matches

DICOM = "application/dicom"
OCTET_STREAM = "application/octet-stream"
DICOM_JSON = "application/dicom+json"

NATIVE = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}

# PS3.18 Table 8.7.3-5 (and dicomweb-client's table): media type of a compressed frame.
_COMPRESSED_MEDIA = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}


class NotAcceptable(Exception):
    """Nothing the client accepts can be produced; the message is the reason for the 406."""


@dataclass(frozen=True)
class Representation:
    media_type: str  # of each part (or of the whole body when not multipart)
    transfer_syntax: str  # what is sent
    multipart: bool = True

    @property
    def part_content_type(self) -> str:
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"


def _syntax_ok(wanted: str | None, stored: str) -> bool:
    return wanted in (None, "", "*") or wanted == stored


def _unavailable(stored: str, wanted: list[str]) -> NotAcceptable:
    asked = ", ".join(sorted(set(wanted))) or "nothing we can produce"
    return NotAcceptable(
        f"the instance is stored as {stored} ({UID(stored).name}); the request accepts {asked}; "
        "transcoding is not available yet, ask for transfer-syntax=* or the stored syntax"
    )


def choose_instance(accept: list[MediaRange], stored: str, single_allowed: bool) -> Representation:
    """How to send a whole instance: multipart application/dicom (or a bare one if allowed)."""
    asked: list[str] = []
    for media in accept:
        if media.is_multipart:
            multipart = True
            if not matches(media.part_type, DICOM):
                asked.append(f"multipart/related; type={media.part_type}")
                continue
        elif media.media_type == DICOM:
            multipart = False
            if not single_allowed:
                asked.append("a bare application/dicom (only a single instance comes unwrapped)")
                continue
        elif matches(media.media_type, DICOM):
            multipart = True  # */* or application/*: our default, multipart
        else:
            asked.append(media.media_type)
            continue
        if _syntax_ok(media.transfer_syntax, stored):
            return Representation(DICOM, stored, multipart)
        asked.append(f"transfer-syntax={media.transfer_syntax}")
    raise _unavailable(stored, asked)


def compressed_media_type(stored: str) -> str | None:
    return _COMPRESSED_MEDIA.get(stored)


def choose_frames(accept: list[MediaRange], stored: str) -> Representation:
    """How to send frames: raw bytes for native syntaxes, the compressed bitstream otherwise."""
    if stored in (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        raise NotAcceptable(
            f"frames of instances stored as {UID(stored).name} need transcoding, "
            "which is not available yet; retrieve the instance instead"
        )
    native = stored in NATIVE
    media_type = OCTET_STREAM if native else compressed_media_type(stored)
    if media_type is None:
        raise NotAcceptable(
            f"the instance is stored as {UID(stored).name}, which has no frame media type "
            "(video or unknown); retrieve the instance or its bulk data"
        )
    sent_syntax = ExplicitVRLittleEndian if native else stored
    asked: list[str] = []
    for media in accept:
        part = media.part_type
        wanted = media.transfer_syntax
        if native and matches(part, OCTET_STREAM):
            if wanted in (None, "", "*", ExplicitVRLittleEndian, ImplicitVRLittleEndian):
                return Representation(OCTET_STREAM, sent_syntax, media.is_multipart)
        elif not native and matches(part, media_type):
            if _syntax_ok(wanted, stored):
                return Representation(media_type, stored, media.is_multipart)
        elif not native and part == OCTET_STREAM and wanted in ("*", stored):
            # OHIF's "application/octet-stream; transfer-syntax=*": the compressed bitstream.
            return Representation(media_type, stored, media.is_multipart)
        asked.append(f"{part}" + (f"; transfer-syntax={wanted}" if wanted else ""))
    raise _unavailable(stored, asked)


def choose_bulkdata(accept: list[MediaRange]) -> Representation:
    """Bulk data is sent as stored (little endian): multipart unless a bare type is preferred."""
    for media in accept:
        if matches(media.part_type, OCTET_STREAM):
            multipart = media.is_multipart
            return Representation(OCTET_STREAM, ExplicitVRLittleEndian, multipart)
    raise NotAcceptable("bulk data is available as application/octet-stream only")


def accepts_json(accept: list[MediaRange]) -> bool:
    """Metadata: DICOM JSON (application/dicom+json or application/json, or any)."""
    return any(
        not media.is_multipart
        and (matches(media.media_type, DICOM_JSON) or matches(media.media_type, "application/json"))
        for media in accept
    )
