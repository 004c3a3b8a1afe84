"""Bytes to an HL7 message and back: character sets per MSH-18, ACKs with an ERR segment.

Parsing is python-hl7's (``hl7.parse``). Before the text can be decoded we must
know its character set, which MSH-18 names: the header is first read as
ISO 8859-1 (every byte decodes, and MSH's own fields are ASCII), then the whole
message is decoded strictly in the declared set, so a message that is not what
it says it is gets refused rather than stored with mangled names.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import hl7

# MSH-18 values (HL7 table 0211) we accept, and the Python codec of each.
CHARSETS: dict[str, str] = {
    "UNICODE UTF-8": "utf-8",
    "8859/1": "latin-1",
    "ASCII": "ascii",
}

# HL7 table 0357 (message error condition codes) used in ERR-3.
REQUIRED_FIELD_MISSING = ("101", "Required field missing")
DATA_TYPE_ERROR = ("102", "Data type error")
TABLE_VALUE_NOT_FOUND = ("103", "Table value not found")
UNSUPPORTED_MESSAGE_TYPE = ("200", "Unsupported message type")
UNSUPPORTED_EVENT = ("201", "Unsupported event code")
UNKNOWN_KEY = ("204", "Unknown key identifier")
DUPLICATE_KEY = ("205", "Duplicate key identifier")
APPLICATION_ERROR = ("207", "Application internal error")
SEGMENT_SEQUENCE_ERROR = ("100", "Segment sequence error")


class Hl7Error(Exception):
    """A message we refuse: ACK ``ack_code`` (AE: fix and resend; AR: never accepted),
    naming the HL7 ``field`` (``PID-3``, ``MSH-18``) and the table-0357 ``condition``."""

    def __init__(
        self,
        reason: str,
        field: str = "",
        condition: tuple[str, str] = APPLICATION_ERROR,
        ack_code: str = "AE",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.condition = condition
        self.ack_code = ack_code


@dataclass(frozen=True)
class Decoded:
    message: hl7.Message
    text: str
    charset: str  # the MSH-18 value ("" when absent)
    codec: str


def decode(raw: bytes, default_charset: str = "UNICODE UTF-8") -> Decoded:
    """Parse ``raw`` in the character set MSH-18 names (``default_charset`` when empty).

    Raises :class:`Hl7Error`: no MSH, unknown character set (AR), bytes invalid in it (AE).
    """
    if not raw.startswith(b"MSH") or len(raw) < 8:
        raise Hl7Error("the message does not start with an MSH segment", "MSH-1", ack_code="AR")
    text = _segments(raw.decode("latin-1"))
    try:
        header = hl7.parse(text.split("\r", 1)[0])
        declared = str(header["MSH.F18.R1"]).strip() if _has_field(header, 18) else ""
    except Exception as exc:  # python-hl7 raises plain exceptions on broken headers
        raise Hl7Error(f"the MSH segment cannot be read: {exc}", "MSH", ack_code="AR") from exc
    charset = declared or default_charset
    codec = CHARSETS.get(charset.upper())
    if codec is None:
        raise Hl7Error(
            f"character set {charset!r} is not supported (UNICODE UTF-8, 8859/1, ASCII)",
            "MSH-18",
            TABLE_VALUE_NOT_FOUND,
            ack_code="AR",
        )
    try:
        text = _segments(raw.decode(codec))
    except UnicodeDecodeError as exc:
        raise Hl7Error(
            f"the message is not valid {charset} (byte {exc.start})",
            "MSH-18",
            DATA_TYPE_ERROR,
        ) from exc
    try:
        message = hl7.parse(text)
    except Exception as exc:
        raise Hl7Error(f"the message cannot be parsed: {exc}", "MSH", ack_code="AR") from exc
    return Decoded(message, text, declared, codec)


def _segments(text: str) -> str:
    """Segments end with CR; senders that use LF or CRLF are common and harmless."""
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")


def _has_field(message: hl7.Message, number: int) -> bool:
    msh = message.segment("MSH")
    return len(msh) > number


def control_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)


def ack(
    decoded: Decoded | None,
    code: str,
    *,
    application: str,
    facility: str,
    error: Hl7Error | None = None,
) -> str:
    """The ACK text: MSH, MSA (code, the message's control ID, reason) and, on error, ERR.

    Built by python-hl7's ``create_ack`` when the message could be parsed; a message
    without a readable header gets a minimal ACK naming no control ID."""
    if decoded is not None:
        message = decoded.message
        reply = message.create_ack(
            code, message_id=control_id(), application=application, facility=facility
        )
        if decoded.charset:
            reply.segment("MSH").assign_field(decoded.charset, 18)
        text = str(reply)
        escape = message.escape
    else:
        now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        text = f"MSH|^~\\&|{application}|{facility}|||{now}||ACK|{control_id()}|P|2.5\rMSA|{code}|"
        escape = hl7.parse(text).escape
    if error is None:
        return text
    reason = escape(error.reason[:200])
    lines = text.rstrip("\r").split("\r")
    msa = [*lines[1].split("|"), "", ""][:3]  # MSA, MSA-1 code, MSA-2 control ID
    lines[1] = "|".join([*msa, reason])  # MSA-3: text message
    location = _location(error.field)
    number, name = error.condition
    severity = "E"
    lines.append(f"ERR||{location}|{number}^{name}^HL70357|{severity}||||{reason}")
    return "\r".join(lines)


def _location(field: str) -> str:
    """``PID-3`` -> ``PID^1^3`` (ERR-2, ERL: segment, sequence, field)."""
    segment, _, number = field.partition("-")
    if not segment:
        return ""
    return f"{segment}^1^{number}" if number.isdigit() else segment
