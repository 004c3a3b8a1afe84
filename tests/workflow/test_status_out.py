"""Order status back to the HIS: an MPPS moves the order, a job sends ORM^O01 (ORC-1 SC) over
MLLP to a HIS stand-in (a socket script answering with python-hl7's create_ack), retried while
the HIS refuses."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import hl7
from hl7.client import MLLPClient

from pacs.archive import Archive
from pacs.settings import Settings
from pacs.workflow.mpps import StepReport
from tests.hl7.messages import EB, SB, listening, orm


@contextmanager
def his(codes: list[str]) -> Iterator[tuple[int, list[hl7.Message]]]:
    """A HIS on a free port: answers each message with the next code of ``codes`` (then AA)."""
    received: list[hl7.Message] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                data = b""
                while not data.endswith(EB):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                message = hl7.parse(data.strip(SB + EB).decode())
                received.append(message)
                code = codes.pop(0) if codes else "AA"
                conn.sendall(SB + str(message.create_ack(code)).encode() + EB)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _wait(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_mpps_status_reaches_the_his(tmp_path: Path) -> None:
    with his(["AE"]) as (port, received):
        settings = Settings(
            data_dir=tmp_path, hl7_his_host="127.0.0.1", hl7_his_port=port, job_poll_seconds=0.1
        )
        archive = Archive.open(settings)
        running = archive.jobs.start(scheduler=False)
        try:
            with listening(archive) as listener, MLLPClient("127.0.0.1", listener.port) as client:
                assert b"MSA|AA|" in client.send_message(orm("S1", accession="ST100"))
            archive.workflow.performed.create(
                "1.2.3.4", StepReport(status="IN PROGRESS", accession_number="ST100")
            )
            _wait(lambda: len(received) == 1)
            # Refused (AE): the job waits for its backoff; an administrator may retry it now.
            (job,) = archive.jobs.list(kind="hl7-order-status")[0]
            _wait(lambda: archive.jobs.get(job.id).attempts == 1)
            archive.jobs.retry(job.id)
            _wait(lambda: len(received) == 2)
            _wait(lambda: archive.jobs.get(job.id).state == "done")
        finally:
            running.stop()
            archive.close()
    assert len(received) == 2
    message = received[-1]
    assert str(message["MSH.F9.R1.C1"]) == "ORM"
    assert (str(message["ORC.F1"]), str(message["ORC.F5"])) == ("SC", "IP")
    assert str(message["OBR.F18"]) == "ST100"
    assert str(message["PID.F5.R1.C1"]) == "Nguyễn"


def test_status_goes_back_as_omi_when_the_site_says_so(tmp_path: Path) -> None:
    """PACS_HL7_STATUS_MESSAGE=OMI: OMI^O23 with ORC-1 SC, ORC-5 and the IPC segment."""
    with his([]) as (port, received):
        settings = Settings(
            data_dir=tmp_path,
            hl7_his_host="127.0.0.1",
            hl7_his_port=port,
            hl7_status_message="OMI",
            job_poll_seconds=0.1,
        )
        archive = Archive.open(settings)
        running = archive.jobs.start(scheduler=False)
        try:
            with listening(archive) as listener, MLLPClient("127.0.0.1", listener.port) as client:
                assert b"MSA|AA|" in client.send_message(orm("S2", accession="ST200"))
            archive.workflow.performed.create(
                "1.2.3.5", StepReport(status="IN PROGRESS", accession_number="ST200")
            )
            _wait(lambda: len(received) == 1)
        finally:
            running.stop()
            archive.close()
    message = received[0]
    assert str(message["MSH.F9.R1.C1"]) == "OMI"
    assert str(message["MSH.F9.R1.C2"]) == "O23"
    assert (str(message["ORC.F1"]), str(message["ORC.F5"])) == ("SC", "IP")
    assert str(message["IPC.F1"]) == "ST200"
    assert str(message["IPC.F5"]) == "CT"
