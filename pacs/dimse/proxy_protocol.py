"""The PROXY protocol (v1) on the DICOM port: the real caller behind a TCP load balancer.

A load balancer in front of several nodes (nginx ``stream`` with
``proxy_protocol on``, HAProxy ``send-proxy``) connects to a node from its own
address, which would hide each modality's: a registered AE is known by title
and address (:mod:`pacs.config.peers`), and the audit names the caller's
address. PROXY protocol v1 puts one text line before the DICOM bytes,
``PROXY TCP4 <source> <destination> <source port> <destination port>\\r\\n``
(haproxy.org/download/2.9/doc/proxy-protocol.txt), and the node takes the
caller's address from it.

Only connections from ``dicom_proxy_protocol_from`` (the balancer's address or
network) carry the line, and every one of them must: a connection from there
without a valid line is closed, and one from elsewhere is read as DICOM, so
nobody else can claim an address. The line is read before pynetdicom sees the
socket, at most :data:`MAX_LINE` bytes within :data:`HEADER_TIMEOUT_S`; a
balancer writes it as it connects. The DICOM TLS port does not take it.
"""

from __future__ import annotations

import ipaddress
import socket
import time

MAX_LINE = 107  # the specification's bound for a v1 line, CRLF included
HEADER_TIMEOUT_S = 2.0


class ProxyHeaderError(OSError):
    """A connection from the balancer that did not begin with a valid PROXY v1 line."""


def from_balancer(host: str, networks: list[str]) -> bool:
    """Whether ``host`` is in one of ``networks`` (addresses or CIDR networks)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in networks:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def parse(line: bytes) -> tuple[str, int] | None:
    """The source ``(address, port)`` of a v1 line (``None`` for ``PROXY UNKNOWN``)."""
    if not line.startswith(b"PROXY ") or not line.endswith(b"\r\n"):
        raise ProxyHeaderError("not a PROXY protocol v1 line")
    fields = line[:-2].decode("ascii", "replace").split(" ")
    if fields[1] == "UNKNOWN":
        return None
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"malformed PROXY line: {fields[1]!r}")
    try:
        source = ipaddress.ip_address(fields[2])
        port = int(fields[4])
    except ValueError as exc:
        raise ProxyHeaderError("malformed PROXY line: bad source") from exc
    if (source.version == 4) != (fields[1] == "TCP4") or not 0 <= port <= 65535:
        raise ProxyHeaderError("malformed PROXY line: bad source")
    return str(source), port


def read_source(sock: socket.socket, peer: tuple[str, int]) -> tuple[str, int]:
    """Consume the PROXY line at the start of ``sock``; the caller it names (``peer`` for
    ``UNKNOWN``, the balancer's own health checks). Peeks first, so that not one byte of
    the DICOM stream after the line is taken."""
    previous = sock.gettimeout()
    deadline = time.monotonic() + HEADER_TIMEOUT_S
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProxyHeaderError("no PROXY line within the time allowed")
            sock.settimeout(remaining)
            seen = sock.recv(MAX_LINE, socket.MSG_PEEK)
            if not seen:
                raise ProxyHeaderError("closed before a PROXY line")
            end = seen.find(b"\r\n")
            if end >= 0:
                line = _take(sock, end + 2)
                source = parse(line)
                return peer if source is None else source
            if len(seen) >= MAX_LINE or not b"PROXY ".startswith(seen[:6]):
                raise ProxyHeaderError("not a PROXY protocol v1 line")
            time.sleep(0.001)  # a partial line: the rest is on its way
    except TimeoutError as exc:
        raise ProxyHeaderError("no PROXY line within the time allowed") from exc
    finally:
        sock.settimeout(previous)


def _take(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ProxyHeaderError("closed inside the PROXY line")
        data += chunk
    return data
