"""Worker processes (``dicom_processes``, ``http_processes``): they share the ports, store,
answer HTTP, and stop with us.

``pacs serve`` runs as a child process with one worker. A worker is shown to
accept on its own by freezing the main process (SIGSTOP) while a modality
stores or a client asks over HTTP; it must die with the main process however
that one dies, and finish its associations on a normal stop.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from app.workers import WorkerPlan
from pacs.archive import Archive
from pacs.settings import Settings
from tests.conftest import free_port
from tests.dicom_factory import ct_slice
from tests.pki import client_context, make_pki
from tests.serve_process import ServeProcess, serve_process

ADMIN_PASSWORD = "workers-test-admin"


class Served(ServeProcess):
    def workers(self) -> list[int]:
        """Child processes, whichever thread started them (replacements: the watcher)."""
        tasks = Path(f"/proc/{self.process.pid}/task").glob("*/children")
        return [int(pid) for task in tasks for pid in task.read_text().split()]


@contextmanager
def _serve(tmp_path: Path, extra_env: dict[str, str] | None = None) -> Iterator[Served]:
    """`pacs serve` with one worker (DIMSE and HTTP), as a child process, until the block ends."""
    settings = {
        "PACS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PACS_DICOM_PROCESSES": "2",
        "PACS_HTTP_PROCESSES": "2",
        **(extra_env or {}),
    }
    # /health answers only once the worker accepts.
    with serve_process(tmp_path, settings) as served:
        try:
            yield Served(**vars(served))
        finally:
            if served.process.poll() is None:
                os.kill(served.process.pid, signal.SIGCONT)  # a test may leave it frozen


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    # INFO: a worker logs when it accepts (see _ready), which a replacement has no other way to say.
    with _serve(tmp_path, {"PACS_LOG_LEVEL": "INFO"}) as server:
        yield server


def _store(port: int, count: int, study: str | None = None) -> list[str]:
    """Store ``count`` generated slices on one association; the SOP Instance UIDs acknowledged."""
    ae = AE(ae_title="CT01")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    assert assoc.is_established
    study, series, acked = study or generate_uid(), generate_uid(), []
    try:
        for index in range(count):
            ds = ct_slice(study, series, index=index, size=64)
            status = assoc.send_c_store(ds)
            if status and status.Status == 0x0000:
                acked.append(str(ds.SOPInstanceUID))
    finally:
        assoc.release()
    return acked


def _indexed(data_dir: Path) -> set[str]:
    archive = Archive.open(Settings(data_dir=data_dir), migrate=False)
    try:
        return {instance.sop_instance_uid for instance in archive.locate()}
    finally:
        archive.close()


def _listening(port: int) -> bool:
    """Whether a socket listens on ``port``, from the kernel's tables (state 0A: LISTEN)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _connect_to_another_socket(port: int) -> None:
    """Connect to ``port``; a TCP self-connection (on a free ephemeral port) counts as refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        if sock.getsockname() == sock.getpeername():
            raise ConnectionRefusedError(f"only a self-connection on port {port}")


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _store_while_main_is_frozen(served: Served, count: int) -> list[str]:
    """Only a worker can accept while the main process is stopped (SIGSTOP)."""
    os.kill(served.process.pid, signal.SIGSTOP)
    try:
        return _store(served.dicom_port, count)
    finally:
        os.kill(served.process.pid, signal.SIGCONT)


def test_worker_accepts_and_stores_while_main_process_is_frozen(served: Served) -> None:
    (worker,) = served.workers()
    acked = _store_while_main_is_frozen(served, 5)
    assert len(acked) == 5
    assert set(acked) <= _indexed(served.data_dir)
    assert Path(f"/proc/{worker}").exists()


def _get_json(served: Served, path: str, timeout: float = 10) -> tuple[int, object]:
    """GET ``path`` as the admin on a new connection: the status and the JSON answer, if any."""
    request = urllib.request.Request(f"http://127.0.0.1:{served.http_port}{path}")
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    request.add_header("Accept", "application/dicom+json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = answer.read()
            return answer.status, json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_worker_answers_http_while_main_process_is_frozen(served: Served) -> None:
    study = generate_uid()
    assert len(_store(served.dicom_port, 2, study)) == 2
    os.kill(served.process.pid, signal.SIGSTOP)
    try:
        answers = [_get_json(served, f"/dicom-web/studies?StudyInstanceUID={study}")]
        answers += [_get_json(served, "/health") for _ in range(3)]
    finally:
        os.kill(served.process.pid, signal.SIGCONT)
    (status, found), *health = answers
    assert status == 200
    assert isinstance(found, list) and found[0]["0020000D"]["Value"] == [study]
    assert [code for code, _ in health] == [200] * 3


def test_http_processes_one_keeps_http_in_the_main_process(tmp_path: Path) -> None:
    """Workers started for DIMSE do not answer HTTP when only one HTTP process is asked for."""
    with _serve(tmp_path, {"PACS_HTTP_PROCESSES": "1"}) as served:
        assert len(served.workers()) == 1
        os.kill(served.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(TimeoutError):
                _get_json(served, "/health", timeout=2)
            assert len(_store(served.dicom_port, 1)) == 1  # the worker is there, for DIMSE
        finally:
            os.kill(served.process.pid, signal.SIGCONT)


def test_plan_gives_each_door_its_count_of_processes() -> None:
    plan = WorkerPlan(dimse=2, http=4)
    assert plan.workers == 3
    assert [plan.serves_dimse(slot) for slot in range(3)] == [True, False, False]
    assert [plan.serves_http(slot) for slot in range(3)] == [True, True, True]
    assert WorkerPlan(dimse=1, http=1).workers == 0
    settings = Settings(dicom_processes=3, http_processes=2)
    http_only = WorkerPlan.for_settings(settings, dimse=False, http=True)
    assert http_only == WorkerPlan(dimse=0, http=2)
    assert not http_only.serves_dimse(0)
    assert WorkerPlan.for_settings(settings, dimse=False, http=False).workers == 0


def test_concurrent_associations_all_stored(served: Served) -> None:
    study = generate_uid()
    results: list[list[str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(_store(served.dicom_port, 15, study)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    acked = [uid for result in results for uid in result]
    assert len(acked) == 60
    assert set(acked) <= _indexed(served.data_dir)


def _stops_listening(port: int, timeout: float = 10.0) -> bool:
    """Whether nothing listens on ``port`` within ``timeout``.

    A killed multi-threaded process shows as a zombie while another of its
    threads still holds its sockets for a few milliseconds: the port is free
    soon after, not at the instant the process looks gone.
    """
    deadline = time.monotonic() + timeout
    while _listening(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_worker_dies_with_a_killed_main_process(served: Served) -> None:
    (worker,) = served.workers()
    assert _listening(served.dicom_port)
    served.process.kill()
    served.process.wait(10)
    assert _gone(worker), "the worker outlived the main process"
    # Nothing listens on the port any more (the crash test restarts on it).
    assert _stops_listening(served.dicom_port), "the port is still held"
    with pytest.raises(ConnectionRefusedError):
        _connect_to_another_socket(served.dicom_port)


def _associate(port: int) -> Association:
    ae = AE(ae_title="CT01")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    assert assoc.is_established
    return assoc


def _stores_after_sigterm(served: Served, assoc: Association) -> list[int]:
    """SIGTERM to ``pacs serve``; once its listeners are closed, store 3 slices on ``assoc``."""
    served.process.terminate()
    # The listeners close; the open association carries on.
    assert _stops_listening(served.dicom_port, timeout=30), "still listening after SIGTERM"
    study, series = generate_uid(), generate_uid()
    statuses = [
        assoc.send_c_store(ct_slice(study, series, index=i, size=64)).Status for i in range(3)
    ]
    assoc.release()
    return statuses


def test_sigterm_lets_the_worker_finish_its_association(served: Served) -> None:
    (worker,) = served.workers()
    assoc = _associate(served.dicom_port)
    assert _stores_after_sigterm(served, assoc) == [0x0000] * 3
    assert served.process.wait(60) == 0
    assert _gone(worker)


def _replacement(served: Served, dead: int) -> int:
    """The worker started for ``dead``, once it accepts.

    Its pid shows as soon as it is forked, before the main process has handed
    it its orders: frozen then, the main process would leave it waiting.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        replacements = [pid for pid in served.workers() if pid != dead]
        if replacements and f"worker {replacements[0]} ready" in served.log.read_text():
            return replacements[0]
        time.sleep(0.2)
    raise AssertionError("no new worker accepting after one died")


def test_a_worker_that_dies_is_replaced(served: Served) -> None:
    (worker,) = served.workers()
    os.kill(worker, signal.SIGKILL)
    _replacement(served, worker)
    assert len(_store_while_main_is_frozen(served, 3)) == 3


def test_sigterm_lets_a_replacement_worker_finish_its_association(served: Served) -> None:
    """The replacement is started by the watcher thread, which ends at the stop; the
    replacement must not end with it, and drains like any worker."""
    (worker,) = served.workers()
    os.kill(worker, signal.SIGKILL)
    replacement = _replacement(served, worker)
    os.kill(served.process.pid, signal.SIGSTOP)  # only the replacement can accept
    try:
        assoc = _associate(served.dicom_port)
    finally:
        os.kill(served.process.pid, signal.SIGCONT)
    assert _stores_after_sigterm(served, assoc) == [0x0000] * 3
    assert served.process.wait(60) == 0
    assert _gone(replacement)
    assert "did not stop; killing it" not in served.log.read_text()


def test_a_replacement_worker_dies_with_a_killed_main_process(served: Served) -> None:
    (worker,) = served.workers()
    os.kill(worker, signal.SIGKILL)
    replacement = _replacement(served, worker)
    served.process.kill()
    served.process.wait(10)
    assert _gone(replacement), "the replacement outlived the main process"
    assert _stops_listening(served.dicom_port), "the port is still held"


def test_worker_accepts_on_the_dicom_tls_port(tmp_path: Path) -> None:
    """The TLS listener is shared too: with the main process frozen, a worker shakes hands."""
    pki = make_pki(tmp_path)
    tls_port = free_port()
    settings = {
        "PACS_DICOM_TLS_PORT": str(tls_port),
        "PACS_DICOM_TLS_CERT_FILE": str(pki / "server.pem"),
        "PACS_DICOM_TLS_KEY_FILE": str(pki / "server.key"),
    }
    with _serve(tmp_path, settings) as served:
        ae = AE(ae_title="SCU")
        ae.add_requested_context(Verification)
        ae.acse_timeout = ae.network_timeout = 20
        os.kill(served.process.pid, signal.SIGSTOP)
        try:
            tls = (client_context(pki, with_cert=False), "server")
            assoc = ae.associate("127.0.0.1", tls_port, ae_title="PACS", tls_args=tls)
            assert assoc.is_established
            status = assoc.send_c_echo()
            assoc.release()
        finally:
            os.kill(served.process.pid, signal.SIGCONT)
        assert status.Status == 0x0000
