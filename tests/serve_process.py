"""`pacs serve` as a child process on loopback, for tests that need its processes themselves
(peak memory, DIMSE workers), not just an in-process server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    dicom_port: int
    http_port: int
    data_dir: Path
    log: Path


@contextmanager
def serve_process(
    tmp_path: Path,
    settings: dict[str, str],
    *,
    dicom_port: int | None = None,
    http_port: int | None = None,
) -> Iterator[ServeProcess]:
    """Start it with ``settings`` (``PACS_*`` variables; inherited ones dropped) on loopback
    ports (free ones unless given); yield once /health answers; terminate it (kill after
    30 s) at the end."""
    dicom_port, http_port = dicom_port or free_port(), http_port or free_port()
    data_dir = tmp_path / "data"
    # Inherited settings are dropped, but not the DIMSE fast path switch (make test runs both).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PACS_") or k == "PACS_DIMSE_FASTPATH"
    }
    env |= {
        "PACS_DATA_DIR": str(data_dir),
        "PACS_DICOM_HOST": "127.0.0.1",
        "PACS_DICOM_PORT": str(dicom_port),
        "PACS_HTTP_HOST": "127.0.0.1",
        "PACS_HTTP_PORT": str(http_port),
        "PACS_HL7_PORT": str(free_port()),
        "PACS_LOG_LEVEL": "WARNING",
        **settings,
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = ServeProcess(process, dicom_port, http_port, data_dir, log)
    try:
        _wait_health(served)
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_health(served: ServeProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{served.http_port}/health"
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError("pacs serve exited:\n" + served.log.read_text()[-2000:])
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers; the status does not matter here
        except OSError:
            time.sleep(0.2)
    raise AssertionError("pacs serve did not answer HTTP:\n" + served.log.read_text()[-2000:])
