"""The MLLP listener: python-hl7's asyncio MLLP server on its own thread.

Each connection reads framed blocks (``<VT>message<FS><CR>``) of at most
``max_bytes``; each message is handled on a worker thread (the index is
synchronous) and answered on the same connection, in order. What breaks the
framing (no start block, a block over the limit, a connection closed mid-block)
gets an AR or AE with the reason where the peer can still read it, then that
connection is closed: the listener itself never stops for a sender's error.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hl7.mllp import InvalidBlockError, start_hl7_server

from hl7v2.codec import DATA_TYPE_ERROR, SEGMENT_SEQUENCE_ERROR, Hl7Error, ack
from hl7v2.fields import FieldMapping
from hl7v2.receiver import Receiver
from pacs.archive import Archive

log = logging.getLogger(__name__)

START, END = b"\x0b", b"\x1c\x0d"


class Listener:
    def __init__(
        self,
        receiver: Receiver,
        host: str,
        port: int,
        *,
        max_bytes: int = 1 << 20,
        idle_timeout_s: float = 300.0,
        workers: int = 4,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.receiver = receiver
        self.host = host
        self.port = port
        self.max_bytes = max_bytes
        self.idle_timeout_s = idle_timeout_s
        self.tls = tls
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="hl7")
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    def start(self) -> int:
        """Bind and serve on a thread; the port bound. Raises OSError when it cannot bind.

        The server is bound on the loop's own thread, never on the caller's: a caller
        may already run an event loop (an ASGI lifespan, or Playwright's sync API in
        a test session), and ``run_until_complete`` there raises "Cannot run the
        event loop while another loop is running".
        """
        self._thread = threading.Thread(target=self._loop.run_forever, name="hl7-mllp", daemon=True)
        self._thread.start()
        binding = asyncio.run_coroutine_threadsafe(
            start_hl7_server(
                self._connection, self.host, self.port, limit=self.max_bytes, ssl=self.tls
            ),
            self._loop,
        )
        try:
            self._server = binding.result(timeout=30)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("HL7 MLLP%s on %s:%s", " (TLS)" if self.tls else "", self.host, self.port)
        return self.port

    def stop(self) -> None:
        """Stop accepting, let messages being processed finish, close the loop."""
        if self._thread is None or self._server is None:
            return
        server = self._server

        async def _close() -> None:
            server.close()
            await server.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(timeout=10)
        except Exception:  # connections still open: stop regardless
            log.warning("HL7 listener did not close cleanly")
        self._executor.shutdown(wait=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    block = await asyncio.wait_for(
                        reader.readblock(),  # type: ignore[attr-defined]
                        self.idle_timeout_s,
                    )
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():  # closed mid-message: truncated
                        await self._refuse(
                            writer,
                            exc.partial,
                            where,
                            "the message is truncated (connection closed before the end block)",
                        )
                    return
                except InvalidBlockError:
                    await self._refuse(writer, b"", where, "data outside an MLLP block", "AR")
                    return
                except ValueError:  # over the limit: the rest of it cannot be framed
                    await self._refuse(
                        writer, b"", where, f"message longer than {self.max_bytes} bytes", "AR"
                    )
                    return
                except TimeoutError:
                    return
                reply = await loop.run_in_executor(
                    self._executor, self.receiver.handle, bytes(block), where
                )
                writer.write(START + reply + END)
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()

    async def _refuse(
        self,
        writer: asyncio.StreamWriter,
        partial: bytes,
        peer: str,
        reason: str,
        code: str = "AE",
    ) -> None:
        """Answer a framing error; a truncated message that still parses is kept and named."""
        loop = asyncio.get_running_loop()
        condition = SEGMENT_SEQUENCE_ERROR if partial else DATA_TYPE_ERROR
        error = Hl7Error(reason, "", condition, code)
        text = await loop.run_in_executor(
            self._executor, self.receiver.refuse_framing, partial.lstrip(START), peer, error
        )
        try:
            writer.write(START + text + END)
            await writer.drain()
        except (ConnectionError, OSError):
            pass


def listener_for(archive: Archive) -> Listener:
    """The listener the settings describe (``PACS_HL7_*``), not yet started.

    Raises :class:`~hl7v2.fields.FieldMappingError` when ``hl7_fields`` is malformed, so a
    wrong mapping stops ``pacs serve`` at start instead of misfiling orders."""
    s = archive.settings
    receiver = Receiver(
        archive,
        application=s.hl7_application,
        facility=s.ae_title,
        allowed_senders=s.hl7_allowed_senders,
        default_charset=s.hl7_default_charset,
        fields=FieldMapping.configured(
            s.hl7_fields,
            citizen_id_type=s.hl7_citizen_id_type,
            patient_id_type=s.hl7_patient_id_type,
        ),
    )
    return Listener(
        receiver,
        s.hl7_host,
        s.hl7_port,
        max_bytes=s.hl7_max_message_bytes,
        tls=tls_context(s.hl7_tls_cert_file, s.hl7_tls_key_file, s.hl7_tls_ca_file),
    )


def tls_context(
    cert: Path | None, key: Path | None, ca: Path | None = None
) -> ssl.SSLContext | None:
    """Server-side TLS for MLLP (TLS 1.2 or later); with ``ca``, client certificates required."""
    if not (cert and key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if ca:
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


__all__ = ["Listener", "ack", "listener_for", "tls_context"]
