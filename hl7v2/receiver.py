"""One HL7 message in, one ACK out: decode, check the sender, deduplicate, map, apply, keep.

Every message is kept (``archive.workflow``), whatever happens to it: the raw
text, what we understood, the ACK code and the reason. A control ID already
answered for the same sending application and facility gets the same ACK again
and no second effect. Nothing a sender can send raises out of :meth:`handle`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from hl7v2 import mapping
from hl7v2.codec import APPLICATION_ERROR, UNKNOWN_KEY, Decoded, Hl7Error, ack, decode
from hl7v2.fields import FieldMapping
from pacs.archive import Archive
from pacs.archive.errors import ArchiveError, Conflict, NotFound, Unavailable
from pacs.workflow import MessageRecord

log = logging.getLogger(__name__)


class Receiver:
    def __init__(
        self,
        archive: Archive,
        *,
        application: str = "PACS",
        facility: str = "",
        allowed_senders: Collection[str] = (),
        default_charset: str = "UNICODE UTF-8",
        fields: FieldMapping | None = None,
    ) -> None:
        self.archive = archive
        self.application = application
        self.facility = facility
        # "APP" or "APP^FACILITY"; empty: any sender (the listener is on loopback by default).
        self.allowed = {sender.upper() for sender in allowed_senders}
        self.default_charset = default_charset
        self.fields = fields or FieldMapping()

    def handle(self, raw: bytes, peer: str = "") -> bytes:
        """The ACK for ``raw`` (one message without its MLLP framing), encoded like it."""
        decoded: Decoded | None = None
        record = MessageRecord(
            peer=peer,
            sending_app="",
            sending_facility="",
            control_id=None,
            message_type="",
            raw=raw.decode("latin-1") if raw else "",
        )
        try:
            decoded = decode(raw, self.default_charset)
            self._describe(decoded, record)
            text = self._process(decoded, record)
        except Hl7Error as exc:
            text = self._refuse(decoded, record, exc)
        except Unavailable as exc:
            log.warning("HL7 message refused for now: %s", exc)
            error = Hl7Error("the archive is unavailable; send again later", "", APPLICATION_ERROR)
            text = ack(
                decoded, "AE", application=self.application, facility=self.facility, error=error
            )
        except Exception:  # never let one message stop the listener
            log.exception("HL7 message from %s failed", peer)
            error = Hl7Error("internal error while processing the message", "", APPLICATION_ERROR)
            text = ack(
                decoded, "AE", application=self.application, facility=self.facility, error=error
            )
        codec = decoded.codec if decoded is not None else "utf-8"
        return text.encode(codec, errors="replace")

    def refuse_framing(self, partial: bytes, peer: str, error: Hl7Error) -> bytes:
        """Keep and answer what broke the MLLP framing (``partial``: what arrived of it)."""
        record = MessageRecord(
            peer=peer,
            sending_app="",
            sending_facility="",
            control_id=None,
            message_type="",
            raw=partial.decode("latin-1"),
        )
        decoded: Decoded | None = None
        try:
            decoded = decode(partial, self.default_charset)
            self._describe(decoded, record)
        except Exception:  # too broken to name its sender: kept as it came
            decoded = None
        text = self._refuse(decoded, record, error)
        return text.encode(decoded.codec if decoded is not None else "utf-8", errors="replace")

    @staticmethod
    def _describe(decoded: Decoded, record: MessageRecord) -> None:
        record.raw = decoded.text
        message = decoded.message
        record.sending_app = mapping.get(message, "MSH.F3.R1.C1")
        record.sending_facility = mapping.get(message, "MSH.F4.R1.C1")
        record.control_id = mapping.get(message, "MSH.F10") or None
        kind, event = mapping.message_type(message)
        record.message_type = f"{kind}^{event}" if event else kind

    def _process(self, decoded: Decoded, record: MessageRecord) -> str:
        if record.control_id is None:
            raise Hl7Error("MSH-10 (message control ID) is empty", "MSH-10", ack_code="AR")
        if self.allowed and not (
            record.sending_app.upper() in self.allowed
            or f"{record.sending_app}^{record.sending_facility}".upper() in self.allowed
        ):
            raise Hl7Error(
                f"sending application {record.sending_app!r} is not allowed",
                "MSH-3",
                UNKNOWN_KEY,
                ack_code="AR",
            )
        workflow = self.archive.workflow
        earlier = workflow.previous_ack(
            record.sending_app, record.sending_facility, record.control_id
        )
        if earlier is not None:  # kept too, marked, with the first answer sent again
            record.summary = {"duplicate_of": record.control_id}
            record.ack_code = earlier.split("\rMSA|", 1)[-1][:2]
            record.ack = earlier
            return workflow.record(record)
        command = mapping.command(decoded.message, self.fields)
        record.summary = mapping.summary(command)
        record.ack_code = "AA"
        record.ack = ack(decoded, "AA", application=self.application, facility=self.facility)
        try:
            return workflow.apply(command, record)
        except (NotFound, Conflict) as exc:
            raise Hl7Error(str(exc), getattr(exc, "field", ""), UNKNOWN_KEY) from exc
        except ArchiveError as exc:
            if isinstance(exc, Unavailable):
                raise
            raise Hl7Error(str(exc), getattr(exc, "field", ""), APPLICATION_ERROR) from exc

    def _refuse(self, decoded: Decoded | None, record: MessageRecord, error: Hl7Error) -> str:
        text = ack(
            decoded,
            error.ack_code,
            application=self.application,
            facility=self.facility,
            error=error,
        )
        record.ack_code = error.ack_code
        record.error = f"{error.field}: {error.reason}" if error.field else error.reason
        record.ack = text
        try:
            return self.archive.workflow.record(record)
        except Exception:  # the ACK still goes out; the log says why it was not kept
            log.exception("could not keep a refused HL7 message")
            return text
