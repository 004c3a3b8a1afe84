"""`pacs serve --role http` serves only HTTP, `--role dimse` only DICOM."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

from pynetdicom import AE

from tests.jobs.serve_role import serve_role
from tests.jobs.waiting import wait_until


def _http_status(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _echo(port: int) -> bool:
    ae = AE(ae_title="ROLETEST")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0


def _listens(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_http_role_serves_no_dicom(tmp_path: Path) -> None:
    with serve_role(tmp_path, "http", "http", {}) as served:
        wait_until(lambda: _http_status(served.http_port) == 200, what="HTTP /health")
        assert not _listens(served.dicom_port)
        assert b"job runner" not in served.log.read_bytes()


def test_dimse_role_serves_no_http(tmp_path: Path) -> None:
    with serve_role(tmp_path, "dimse", "dimse", {}) as served:
        wait_until(lambda: _echo(served.dicom_port), what="C-ECHO")
        assert not _listens(served.http_port)
        assert b"job runner" not in served.log.read_bytes()
        served.process.terminate()
        assert served.process.wait(30) == 0
