"""Forward audit messages to a syslog collector (RFC 5424; UDP per RFC 5426, TCP per RFC 6587).

Sending happens on a background thread so an unreachable collector never
slows an image transfer; the database record, written first, stays the
authoritative trail.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from datetime import UTC, datetime

log = logging.getLogger(__name__)

FACILITY_AUTHPRIV = 10
SEVERITY_NOTICE = 5
SEVERITY_WARNING = 4
BOM = "\ufeff"


def format_message(
    xml: str, *, hostname: str, app: str = "pacs", failure: bool = False, at: datetime | None = None
) -> bytes:
    severity = SEVERITY_WARNING if failure else SEVERITY_NOTICE
    pri = FACILITY_AUTHPRIV * 8 + severity
    timestamp = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")
    header = f"<{pri}>1 {timestamp} {hostname[:255] or '-'} {app} - IHE+RFC-3881 -"
    return f"{header} {BOM}{xml}".encode()


class SyslogSender:
    def __init__(self, host: str, port: int = 514, protocol: str = "udp") -> None:
        self.address = (host, port)
        self.protocol = protocol
        self.hostname = socket.gethostname()
        self._queue: queue.Queue[tuple[str, bool] | None] = queue.Queue(maxsize=10_000)
        self._thread = threading.Thread(target=self._run, name="audit-syslog", daemon=True)
        self._thread.start()

    def send(self, xml: str, failure: bool = False) -> None:
        try:
            self._queue.put_nowait((xml, failure))
        except queue.Full:
            log.error("audit syslog queue full: message dropped (the database keeps it)")

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        sock: socket.socket | None = None
        while (item := self._queue.get()) is not None:
            xml, failure = item
            payload = format_message(xml, hostname=self.hostname, failure=failure)
            try:
                if self.protocol == "tcp":
                    if sock is None:
                        sock = socket.create_connection(self.address, timeout=5)
                    sock.sendall(f"{len(payload)} ".encode() + payload)  # octet counting
                else:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                        udp.sendto(payload, self.address)
            except OSError as exc:
                log.warning("audit syslog to %s:%s failed: %s", *self.address, exc)
                if sock is not None:
                    sock.close()
                    sock = None
        if sock is not None:
            sock.close()
