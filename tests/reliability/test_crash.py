"""Crash safety: kill -9 the server mid-ingest, restart, and lose nothing that was acknowledged.

Four associations send generated CT slices; every SOP Instance UID answered
with 0x0000 is recorded with the SHA-256 of the bytes sent. The server is
killed with SIGKILL part-way. After a restart, every acknowledged instance is
in the index with its blob and its hash, no index row lacks its blob, and
``pacs check --repair`` leaves no orphan.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.part10 import read_header
from pacs.settings import Settings
from tests.conftest import free_port
from tests.dicom_factory import ct_slice, to_bytes

SENDERS = 4
PER_SENDER = 70
KILL_AFTER = 120


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
    )


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    ae = AE(ae_title="PROBE")
    ae.add_requested_context(Verification)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited during start:\n" + log.read_text()[-2000:]
        assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
        if assoc.is_established:
            assoc.release()
            return
        time.sleep(0.2)
    raise AssertionError("server did not start:\n" + log.read_text()[-2000:])


def _body_sha256(data: bytes) -> str:
    """SHA-256 of the dataset after the file meta group: what travels over the network."""
    header = read_header(io.BytesIO(data))
    return hashlib.sha256(data[header.body_offset :]).hexdigest()


def _sender(
    port: int, study: str, folder: Path, acked: dict[str, str], lock: threading.Lock
) -> None:
    ae = AE(ae_title="CT01")
    # Propose only the files' own syntax, so the bytes travel unconverted.
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.network_timeout = ae.dimse_timeout = 10
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    if not assoc.is_established:
        return
    series = generate_uid()
    for index in range(PER_SENDER):
        ds = ct_slice(study, series, index=index, size=128)
        data = to_bytes(ds)
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        path.write_bytes(data)
        try:
            status = assoc.send_c_store(path)  # a path is sent as encoded, byte for byte
        except Exception:
            break
        if status and status.Status == 0x0000:
            with lock:
                acked[str(ds.SOPInstanceUID)] = _body_sha256(data)
        if not assoc.is_established:
            break
    if assoc.is_established:
        assoc.release()


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "with-worker"])
def test_kill9_loses_nothing_acknowledged(
    tmp_path: Path, database_url: str, processes: int
) -> None:
    """With a DIMSE worker, kill -9 hits the main process; the worker dies with it."""
    dicom_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "PACS_DICOM_PROCESSES": str(processes),
        "PACS_DATA_DIR": str(tmp_path / "data"),
        "PACS_DATABASE_URL": database_url,
        "PACS_DICOM_HOST": "127.0.0.1",
        "PACS_DICOM_PORT": str(dicom_port),
        "PACS_HL7_PORT": "0",  # no HL7 listener: not what this runs
        "PACS_HTTP_PORT": str(http_port),
        "PACS_ADMIN_PASSWORD": "crash-test-admin",
    }
    log = tmp_path / "server.log"
    server = _start(env, log)
    acked: dict[str, str] = {}
    lock = threading.Lock()
    try:
        _wait_ready(dicom_port, server, log)
        study = generate_uid()
        outbox = tmp_path / "outbox"
        outbox.mkdir()
        threads = [
            threading.Thread(target=_sender, args=(dicom_port, study, outbox, acked, lock))
            for _ in range(SENDERS)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(acked) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.01)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        for thread in threads:
            thread.join(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert len(acked) >= KILL_AFTER, f"only {len(acked)} acknowledged before the kill"
    assert len(acked) < SENDERS * PER_SENDER, "the kill came after everything was sent"

    # Restart: the server must come up on what the crash left.
    server = _start(env, log)
    try:
        _wait_ready(dicom_port, server, log)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    archive = Archive.open(settings)
    try:
        stored = {i.sop_instance_uid: i for i in archive.locate()}
        for sop, sent_sha in acked.items():
            assert sop in stored, f"acknowledged {sop} lost"
            instance = stored[sop]
            with archive.open_blob(instance.blob_key) as blob:
                data = blob.read()
            assert hashlib.sha256(data).hexdigest() == instance.sha256
            assert _body_sha256(data) == sent_sha  # the dataset bytes exactly as sent
        for instance in stored.values():
            assert archive.store.stat(instance.blob_key) is not None, "index row without blob"
    finally:
        archive.close()

    cli_env = {k: v for k, v in env.items() if k.startswith("PACS_") or k in ("PATH", "HOME")}
    repair = subprocess.run(
        [sys.executable, "-m", "app.cli", "check", "--repair", "--json"],
        env={**os.environ, **cli_env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert repair.returncode == 0, repair.stdout + repair.stderr
    final = subprocess.run(
        [sys.executable, "-m", "app.cli", "check", "--json"],
        env={**os.environ, **cli_env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(final.stdout)
    assert report["consistent"] is True and report["orphan_blobs"] == []
    assert report["missing_blobs"] == [] and report["hash_mismatches"] == []
