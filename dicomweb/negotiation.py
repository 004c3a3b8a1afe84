"""Transfer-syntax and media-type negotiation for WADO-RS and WADO-URI: one place to decide.

Given what the client accepts (parsed Accept media ranges, in preference
order) and how an instance is stored, pick what we send, or say why nothing
fits (406). A range that names another syntax than the stored one gets a
:class:`Representation` with ``source_syntax`` set: the route then converts
(:mod:`pacs.transcode`) instead of copying bytes. Whether a conversion can
work is judged first from the header facts (``refusal``), so a refusal is a
406 with the reason, not a stream that breaks half-way.

Decisions worth knowing:

- A missing ``transfer-syntax`` parameter strictly means Explicit VR Little
  Endian for ``application/dicom`` and ``application/octet-stream``, and the
  media type's default syntax for the image types (PS3.18 8.7.3.5.2).
  dicomweb-client and several viewers send none and expect the stored bytes,
  so by default (``Settings.wado_strict_default_syntax = False``) we read it
  as "as stored", as Orthanc does; every part says its real syntax in its
  Content-Type, so a client always knows what it got. With the flag set,
  the strict default applies and the archive converts.
- Several instances (a study, a series): each instance gets the first
  acceptable range it can be produced in. When some instances can be
  produced in no acceptable form, the others are sent with 206 Partial
  Content and a Warning header that counts and explains the omission (the
  PS3.18 Retrieve Transaction's "only some of the requested instances");
  when none can, the answer is 406 with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomweb.accept import MediaRange, matches
from pacs.transcode import supported_targets

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
# PS3.18 Table 8.7.3-5: the syntax an image media type means without a transfer-syntax.
_MEDIA_DEFAULT = {
    "image/jpeg": "1.2.840.10008.1.2.4.50",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/jphc": "1.2.840.10008.1.2.4.201",
    "image/dicom-rle": "1.2.840.10008.1.2.5",
    "image/x-dicom-rle": "1.2.840.10008.1.2.5",
    "image/x-jls": "1.2.840.10008.1.2.4.80",
}

# (target syntax) -> why it cannot be produced for this instance, or None when it can.
Feasibility = Callable[[str], str | None]


class NotAcceptable(Exception):
    """Nothing the client accepts can be produced; the message is the reason for the 406."""


@dataclass(frozen=True)
class Representation:
    media_type: str  # of each part (or of the whole body when not multipart)
    transfer_syntax: str  # what is sent
    multipart: bool = True
    source_syntax: str = ""  # the stored syntax when the route must convert; "" sends as stored

    @property
    def transcoded(self) -> bool:
        return bool(self.source_syntax) and self.source_syntax != self.transfer_syntax

    @property
    def part_content_type(self) -> str:
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"


def no_transcoding(target: str) -> str | None:
    return "no conversion is available here"


def _name(uid: str) -> str:
    name = UID(uid).name
    return uid if name == uid else f"{uid} ({name})"


def _wanted_syntax(wanted: str | None, stored: str, strict_default: bool, default: str) -> str:
    """The syntax a range asks for: ``*`` and (leniently) absence mean the stored one."""
    if wanted == "*" or (not wanted and not strict_default):
        return stored
    return wanted or default


def _produce(
    media_type: str,
    target: str,
    stored: str,
    multipart: bool,
    feasible: Feasibility,
    reasons: list[str],
) -> Representation | None:
    if target == stored:
        return Representation(media_type, stored, multipart)
    reason = feasible(target)
    if reason is None:
        return Representation(media_type, target, multipart, source_syntax=stored)
    reasons.append(f"{_name(target)}: {reason}")
    return None


def choose_instance(
    accept: list[MediaRange],
    stored: str,
    single_allowed: bool,
    *,
    strict_default: bool = False,
    feasible: Feasibility = no_transcoding,
) -> Representation:
    """How to send a whole instance: multipart application/dicom (or a bare one if allowed)."""
    reasons: list[str] = []
    for media in accept:
        if media.is_multipart:
            multipart = True
            if not matches(media.part_type, DICOM):
                reasons.append(f"multipart/related; type={media.part_type} is not offered")
                continue
        elif media.media_type == DICOM:
            multipart = False
            if not single_allowed:
                reasons.append("a bare application/dicom holds a single instance only")
                continue
        elif matches(media.media_type, DICOM):
            multipart = True  # */* or application/*: our default, multipart
        else:
            reasons.append(f"{media.media_type} is not offered")
            continue
        target = _wanted_syntax(
            media.transfer_syntax, stored, strict_default, ExplicitVRLittleEndian
        )
        chosen = _produce(DICOM, target, stored, multipart, feasible, reasons)
        if chosen is not None:
            return chosen
    raise _unavailable(stored, reasons)


def _unavailable(stored: str, reasons: list[str]) -> NotAcceptable:
    why = "; ".join(dict.fromkeys(reasons)) or "the Accept header names nothing we produce"
    offered = ", ".join(dict.fromkeys([stored, *supported_targets()]))
    return NotAcceptable(
        f"the instance is stored as {_name(stored)}; transcoding cannot give what the request"
        f" accepts: {why}"
        f" (transfer-syntax=* always returns the stored bytes; syntaxes offered: {offered})"
    )


def compressed_media_type(stored: str) -> str | None:
    return _COMPRESSED_MEDIA.get(stored)


def frame_media_type(syntax: str) -> str | None:
    """How a frame in ``syntax`` is labelled: octet-stream when native, else its image type."""
    return OCTET_STREAM if syntax in NATIVE else _COMPRESSED_MEDIA.get(syntax)


def _frame_target(media: MediaRange, stored: str, strict_default: bool) -> tuple[str, str] | str:
    """(media type, target syntax) a range asks frames in, or the reason it asks nothing."""
    part, wanted = media.part_type, media.transfer_syntax
    stored_media = frame_media_type(stored)
    if wanted == "*" or (not wanted and not strict_default):
        if stored_media and (matches(part, stored_media) or part == OCTET_STREAM):
            # OHIF's "application/octet-stream; transfer-syntax=*" on compressed data: the
            # compressed bitstream, labelled with its own type.
            if part == OCTET_STREAM and wanted != "*" and stored_media != OCTET_STREAM:
                return (
                    f"{part} without transfer-syntax means the stored bytes here, which are "
                    f"{stored_media}; ask transfer-syntax={ExplicitVRLittleEndian} for pixels"
                )
            return stored_media, stored
        if wanted == "*":
            return f"{part} cannot carry frames stored as {_name(stored)}"
    if not wanted or wanted == "*":
        default = ExplicitVRLittleEndian if part in (OCTET_STREAM, "*/*", "application/*") else None
        target = default or _MEDIA_DEFAULT.get(part)
        if target is None:
            return f"{part} is not a frame media type"
    else:
        target = ExplicitVRLittleEndian if wanted == ImplicitVRLittleEndian else wanted
    target_media = frame_media_type(target)
    if target_media is None:
        return f"{_name(target)} has no frame media type"
    if not (matches(part, target_media) or part == OCTET_STREAM):
        return f"{part} cannot carry {_name(target)}"
    return target_media, target


def choose_frames(
    accept: list[MediaRange],
    stored: str,
    *,
    strict_default: bool = False,
    feasible: Feasibility = no_transcoding,
) -> Representation:
    """How to send frames: raw bytes, the stored bitstream, or one frame re-encoded at a time."""
    if stored == DeflatedExplicitVRLittleEndian:
        raise NotAcceptable(
            f"frames of instances stored as {UID(stored).name} are not served; "
            "retrieve the instance instead"
        )
    if frame_media_type(stored) is None and stored != ExplicitVRBigEndian:
        raise NotAcceptable(
            f"the instance is stored as {_name(stored)}, which has no frame media type "
            "(video or unknown); retrieve the instance or its bulk data"
        )
    # Big endian frames are served as little endian words (swapped one frame at a time).
    source = ExplicitVRLittleEndian if stored in NATIVE or stored == ExplicitVRBigEndian else stored
    reasons: list[str] = []
    for media in accept:
        found = _frame_target(media, source, strict_default)
        if isinstance(found, str):
            reasons.append(found)
            continue
        media_type, target = found
        chosen = _produce(media_type, target, source, media.is_multipart, feasible, reasons)
        if chosen is not None:
            return chosen
    raise _unavailable(stored, reasons)


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
