"""DICOM behind a TCP load balancer: the PROXY protocol names the real caller (issue 20 item 4).

docker-compose.yml balances the DICOM port with nginx's ``stream`` module and
``proxy_protocol on``. nginx is not installed here, so a small TCP relay in this
file plays its part (it connects to the node and writes the PROXY v1 line
first, as nginx does); the node, pynetdicom's SCU and the strict-mode peer
check are the real ones. A workstation registered at 10.9.9.9 gets its study
through the balancer when the balancer says it calls from there, and is refused
(and audited with that address) when it calls from elsewhere; a connection from
the balancer's address without the line is closed; a line from anyone else is
not believed. The parser refuses malformed lines.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacs.dimse.proxy_protocol import ProxyHeaderError, parse
from pacs.dimse.server import DimseServer
from pacs.settings import RemoteAE
from tests.security.test_peer_address import _audit, _get, _server

WORKSTATION = RemoteAE(ae_title="WS_RADIO", host="10.9.9.9", port=104, services=["find", "get"])


class Balancer:
    """Accepts on a free port, connects to the node and relays, writing ``line`` first."""

    def __init__(self, node_port: int, source: str) -> None:
        self.node_port = node_port
        self.source = source
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, (_, client_port) = self.listener.accept()
            except OSError:
                return
            node = socket.create_connection(("127.0.0.1", self.node_port))
            line = f"PROXY TCP4 {self.source} 127.0.0.1 {client_port} {self.port}\r\n"
            node.sendall(line.encode())
            for a, b in ((client, node), (node, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def node(tmp_path: Path, database_url: str) -> Iterator[DimseServer]:
    server = _server(
        tmp_path, database_url, WORKSTATION, dicom_strict=True,
        dicom_proxy_protocol_from=["127.0.0.1"],
    )  # fmt: skip
    yield server
    server.stop(grace=1)
    server.archive.close()


def test_the_balancer_names_the_caller_and_nobody_else_can(node: DimseServer) -> None:
    from_workstation = Balancer(node.port, "10.9.9.9")
    from_elsewhere = Balancer(node.port, "10.6.6.6")
    try:
        associated, status, _, received = _get(from_workstation.port, "WS_RADIO")
        assert associated and status == 0x0000 and received == 3
        associated, _, _, received = _get(from_elsewhere.port, "WS_RADIO")
        assert not associated and received == 0
    finally:
        from_workstation.close()
        from_elsewhere.close()
    [refusal] = _audit(node, "association")
    assert "registered at 10.9.9.9, but called from 10.6.6.6" in refusal
    # From the balancer's address without a PROXY line: closed before any DICOM.
    associated, _, _, received = _get(node.port, "WS_RADIO")
    assert not associated and received == 0


def test_a_proxy_line_from_outside_the_balancers_is_not_believed(
    tmp_path: Path, database_url: str
) -> None:
    server = _server(
        tmp_path, database_url, WORKSTATION, dicom_strict=True,
        dicom_proxy_protocol_from=["192.0.2.1"],
    )  # fmt: skip
    relay = Balancer(server.port, "10.9.9.9")
    try:
        associated, _, _, received = _get(relay.port, "WS_RADIO")
        assert not associated and received == 0  # the line is read as a (bad) PDU
    finally:
        relay.close()
        server.stop(grace=1)
        server.archive.close()


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\n",  # no CR
        b"PROXY TCP4 10.0.0.1 10.0.0.2 1\r\n",  # a field missing
        b"PROXY TCP4 fe80::1 10.0.0.2 1 2\r\n",  # TCP4 with an IPv6 source
        b"PROXY TCP4 name 10.0.0.2 1 2\r\n",  # not an address
        b"PROXY UDP4 10.0.0.1 10.0.0.2 1 2\r\n",
        b"PROXY TCP4 10.0.0.1 10.0.0.2 99999 2\r\n",
        b"\x01\x00\x00\x00",  # a DICOM PDU
    ],
)
def test_malformed_lines_are_refused(line: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse(line)


def test_well_formed_lines() -> None:
    assert parse(b"PROXY TCP4 10.0.0.1 10.0.0.2 4000 104\r\n") == ("10.0.0.1", 4000)
    assert parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 104\r\n") == ("2001:db8::1", 4000)
    assert parse(b"PROXY UNKNOWN\r\n") is None
