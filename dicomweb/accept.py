"""Lenient parsing of HTTP ``Accept`` headers (RFC 9110 12.5.1, PS3.18 8.7).

Viewers and EHRs write Accept in every shape: quoted or unquoted parameters
(``type="application/dicom"`` or ``type=application/dicom``), several media
ranges with q-values, ``*/*``, stray spaces and empty items. Parsing them
leniently, once, here, means a route only ever sees a clean list in order of
preference and the negotiation decides from that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANY = "*/*"


@dataclass(frozen=True)
class MediaRange:
    """One item of an Accept header: ``type/subtype`` plus lower-cased parameter names."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def is_multipart(self) -> bool:
        return self.media_type == "multipart/related"

    @property
    def part_type(self) -> str:
        """The type of the parts (``type=`` of multipart/related), or the type itself."""
        if self.is_multipart:
            return self.params.get("type", ANY).lower()
        return self.media_type

    @property
    def transfer_syntax(self) -> str | None:
        """The ``transfer-syntax`` parameter (``*`` means any), or ``None`` when absent."""
        return self.params.get("transfer-syntax")


def matches(pattern: str, media_type: str) -> bool:
    """Whether the media range ``pattern`` (``*/*``, ``image/*``, ``image/jpeg``) covers a type."""
    if pattern in (ANY, "*"):
        return True
    major, _, minor = pattern.partition("/")
    real_major, _, real_minor = media_type.partition("/")
    return major == real_major and minor in ("*", real_minor)


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return items


def _parse_item(item: str) -> MediaRange | None:
    pieces = [piece.strip() for piece in _split(item, ";")]
    media_type = pieces[0].lower()
    if not media_type:
        return None
    if media_type == "*":
        media_type = ANY
    if "/" not in media_type:
        return None
    params: dict[str, str] = {}
    q = 1.0
    for piece in pieces[1:]:
        name, _, value = piece.partition("=")
        name = name.strip().lower()
        value = value.strip().strip('"').strip()
        if not name:
            continue
        if name == "q":
            try:
                q = min(1.0, max(0.0, float(value)))
            except ValueError:
                q = 1.0
            continue
        params[name] = value.lower() if name == "type" else value
    return MediaRange(media_type, params, q)


def parse_accept(header: str | None) -> list[MediaRange]:
    """Media ranges of ``header`` with q > 0, most preferred first (``*/*`` when absent)."""
    if header is None or not header.strip():
        return [MediaRange(ANY)]
    ranges = [parsed for item in _split(header, ",") if (parsed := _parse_item(item))]
    ranges = [r for r in ranges if r.q > 0]
    # Stable sort: equal q keeps the client's order.
    return sorted(ranges, key=lambda r: -r.q)
