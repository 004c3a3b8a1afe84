"""The HL7 door over a real MLLP socket: python-hl7's own MLLPClient, and raw socket scripts
for what a client library would never send (truncated, unframed, oversized, wrong charset)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import hl7
from hl7.client import MLLPClient

from hl7v2.listener import Listener, tls_context
from hl7v2.receiver import Receiver
from pacs.archive import Archive
from tests.hl7.messages import EB, SB, adt, listening, msh, orm, pid
from tests.pki import client_context, make_pki


def _ack(reply: bytes, encoding: str = "utf-8") -> hl7.Message:
    assert reply.startswith(SB) and reply.endswith(EB), reply
    return hl7.parse(reply[1:-2].decode(encoding))


def _code(ack: hl7.Message) -> str:
    return str(ack["MSA.F1"])


def _err_location(ack: hl7.Message) -> str:
    return str(ack.segment("ERR")(2))


def _exchange(port: int, payload: bytes, *, half_close: bool = False) -> bytes:
    """Send raw bytes; read until the end block or the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while not data.endswith(EB):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_patient_and_order_accepted_names_kept_exactly(sqlite_archive: Archive) -> None:
    with listening(sqlite_archive) as listener, MLLPClient("127.0.0.1", listener.port) as client:
        first = _ack(client.send_message(adt("A01", "MSG0001")))
        assert _code(first) == "AA"
        assert str(first["MSA.F2"]) == "MSG0001"
        assert str(first["MSH.F9.R1.C1"]) == "ACK"
        second = _ack(client.send_message(orm("MSG0002")))
        assert _code(second) == "AA", str(second)
    order = sqlite_archive.workflow.order("ACC1001")
    assert order is not None
    assert order.patient["name"] == "Nguyễn^Thị Bích"
    assert order.patient["patient_id"] == "BN123"
    assert order.patient["issuer"] == "BVDK"
    assert order.patient["citizen_id"] == "079180001234"
    assert order.modality == "CT"
    assert order.scheduled_date == "20261204"
    assert order.steps[0]["start_time"] == "1030"
    assert order.referring_physician == "Trần^Văn Hùng"
    assert order.procedure_description == "CT sọ não không cản quang"
    assert order.status == "scheduled"
    assert order.priority == "STAT"


def test_latin1_message_decoded_per_msh18(sqlite_archive: Archive) -> None:
    text = "\r".join(
        [msh("ADT^A04", "L1", charset="8859/1"), pid(patient_id="BN9", name="Müller^José")]
    )
    with listening(sqlite_archive) as listener:
        reply = _exchange(listener.port, SB + text.encode("latin-1") + EB)
    assert _code(_ack(reply, "latin-1")) == "AA"
    with listening(sqlite_archive) as listener, MLLPClient("127.0.0.1", listener.port) as client:
        assert _code(_ack(client.send_message(orm("L2", patient_id="BN9", name="")))) == "AA"
    order = sqlite_archive.workflow.order("ACC1001")
    assert order is not None and order.patient["name"] == "Müller^José"


def test_wrong_charset_malformed_truncated_and_oversized_refused_listener_lives(
    sqlite_archive: Archive,
) -> None:
    with listening(sqlite_archive, max_bytes=4096) as listener:
        port = listener.port
        # Declares UTF-8, carries Latin-1 bytes: AE naming MSH-18, nothing stored.
        lying = adt("A08", "W1", name="Lé^José")
        reply = _ack(_exchange(port, SB + lying.encode("latin-1") + EB), "latin-1")
        assert _code(reply) == "AE"
        assert _err_location(reply) == "MSH^1^18"
        # A character set we do not support: AR.
        reply = _ack(_exchange(port, SB + adt("A08", "W2", charset="ISO IR87").encode() + EB))
        assert _code(reply) == "AR"
        assert _err_location(reply) == "MSH^1^18"
        # Not HL7 at all.
        assert _code(_ack(_exchange(port, SB + b"hello there" + EB))) == "AR"
        # Truncated: the sender closes before the end block.
        cut = orm("T1").encode()[:120]
        reply = _ack(_exchange(port, SB + cut, half_close=True))
        assert _code(reply) == "AE"
        assert "truncated" in str(reply["MSA.F3"])
        # Over the size limit.
        huge = adt("A08", "H1", name="A" * 8000)
        assert _code(_ack(_exchange(port, SB + huge.encode() + EB))) == "AR"
        # Unframed bytes.
        assert _code(_ack(_exchange(port, b"MSH|garbage" + EB))) == "AR"
        # Required field missing: ERR names PID-3.
        no_id = adt("A08", "N1").replace("BN123^^^BVDK^MR~079180001234^^^BCA^NI", "")
        reply = _ack(_exchange(port, SB + no_id.encode() + EB))
        assert _code(reply) == "AE"
        assert _err_location(reply) == "PID^1^3"
        # After all of that, the listener still accepts a good message.
        with MLLPClient("127.0.0.1", port) as client:
            assert _code(_ack(client.send_message(adt("A08", "OK1")))) == "AA"
    messages, total = sqlite_archive.workflow.messages(limit=100)
    assert total == 8
    assert [m.ack_code for m in messages][:2] == ["AA", "AE"]
    assert messages[0].summary["patient"]["name"] == "Nguyễn^Thị Bích"
    assert any("truncated" in m.error for m in messages)


def test_duplicate_control_id_same_ack_no_second_effect(sqlite_archive: Archive) -> None:
    with listening(sqlite_archive) as listener, MLLPClient("127.0.0.1", listener.port) as client:
        first = client.send_message(orm("DUP1"))
        # The same control ID again, even with another content, changes nothing.
        again = client.send_message(orm("DUP1", modality="MR"))
        assert again == first
        assert _code(_ack(first)) == "AA"
        # Another sender may use the same control ID.
        other = orm("DUP1", accession="ACC2002").replace("|HIS|", "|LIS|", 1)
        assert _code(_ack(client.send_message(other))) == "AA"
    order = sqlite_archive.workflow.order("ACC1001")
    assert order is not None and order.modality == "CT"
    messages, total = sqlite_archive.workflow.messages()
    assert total == 3  # the copy is kept too, marked as one
    assert [m.summary.get("duplicate_of") for m in messages] == [None, "DUP1", None]
    assert messages[1].ack_code == "AA"


def test_order_change_cancel_and_unknown_order(sqlite_archive: Archive) -> None:
    with listening(sqlite_archive) as listener, MLLPClient("127.0.0.1", listener.port) as client:
        assert _code(_ack(client.send_message(orm("O1")))) == "AA"
        changed = _ack(client.send_message(orm("O2", "XO", modality="MR", when="202612051400")))
        assert _code(changed) == "AA"
        order = sqlite_archive.workflow.order("ACC1001")
        assert order is not None and (order.modality, order.scheduled_date) == ("MR", "20261205")
        omi = orm("O3", "CA", kind="OMI^O23^OMI_O23")
        assert _code(_ack(client.send_message(omi))) == "AA"
        order = sqlite_archive.workflow.order("ACC1001")
        assert order is not None and order.status == "discontinued"
        unknown = _ack(client.send_message(orm("O4", "XO", accession="NOPE")))
        assert _code(unknown) == "AE"
        assert _err_location(unknown) == "OBR^1^18"
        bad_control = _ack(client.send_message(orm("O5", "ZZ")))
        assert _code(bad_control) == "AE"
        assert _err_location(bad_control) == "ORC^1^1"
        unsupported = _ack(client.send_message(adt("A99", "O6")))
        assert _code(unsupported) == "AR"


def test_only_allowed_senders(sqlite_archive: Archive) -> None:
    with (
        listening(sqlite_archive, allowed_senders=["RIS^BVDK"]) as listener,
        MLLPClient("127.0.0.1", listener.port) as client,
    ):
        refused = _ack(client.send_message(adt("A08", "S1")))
        assert _code(refused) == "AR"
        assert _err_location(refused) == "MSH^1^3"
        allowed = adt("A08", "S2").replace("|HIS|", "|RIS|", 1)
        assert _code(_ack(client.send_message(allowed))) == "AA"


def _tls_exchange(port: int, context: ssl.SSLContext, message: str) -> bytes:
    """One message over TLS; b"" when the server closed without answering."""
    reply = b""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as sock,
    ):
        sock.sendall(SB + message.encode() + EB)
        while not reply.endswith(EB):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply


def test_mllp_over_tls_with_client_certificate(sqlite_archive: Archive, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    server_tls = tls_context(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    listener = Listener(Receiver(sqlite_archive), "127.0.0.1", 0, tls=server_tls)
    port = listener.start()
    try:
        good = client_context(pki, with_cert=True)
        assert _code(_ack(_tls_exchange(port, good, adt("A08", "TLS1")))) == "AA"
        # Without a client certificate the handshake fails (at connect, or at the first
        # read in TLS 1.3): no ACK, nothing processed; the listener serves on.
        try:
            refused = _tls_exchange(port, client_context(pki, with_cert=False), adt("A08", "TLS2"))
        except (ssl.SSLError, ConnectionError):
            refused = b""
        assert refused == b""
        assert _code(_ack(_tls_exchange(port, good, adt("A08", "TLS3")))) == "AA"
    finally:
        listener.stop()
    messages, _ = sqlite_archive.workflow.messages()
    assert [m.control_id for m in messages] == ["TLS3", "TLS1"]


def test_listener_starts_from_a_thread_that_runs_an_event_loop(sqlite_archive: Archive) -> None:
    """A caller inside a running loop (an ASGI lifespan, Playwright's sync API in a test
    session) can still start the listener: it binds on its own loop's thread."""
    import asyncio

    async def start_inside_a_loop() -> str:
        with listening(sqlite_archive) as listener:
            reply = await asyncio.to_thread(
                _exchange, listener.port, SB + adt("A04", "LOOP1").encode() + EB
            )
            return _code(_ack(reply))

    assert asyncio.run(start_inside_a_loop()) == "AA"
