"""HTTP transport security: no plain HTTP on the network, HTTPS when a certificate is given."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app.http.transport import InsecureListen, uvicorn_tls_options
from pacs.settings import Settings
from tests.conftest import free_port


def test_plain_http_on_the_network_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InsecureListen, match="refusing plain HTTP"):
        uvicorn_tls_options(Settings(data_dir=tmp_path, http_host="0.0.0.0"))
    assert uvicorn_tls_options(Settings(data_dir=tmp_path, http_host="127.0.0.1")) == {}
    proxied = Settings(data_dir=tmp_path, http_host="0.0.0.0", behind_tls_proxy=True)
    assert uvicorn_tls_options(proxied) == {}
    with pytest.raises(InsecureListen, match="together"):
        uvicorn_tls_options(Settings(data_dir=tmp_path, tls_cert_file=tmp_path / "c.pem"))


def test_serve_refuses_to_start_exposed(tmp_path: Path) -> None:
    env = {**os.environ, "PACS_DATA_DIR": str(tmp_path), "PACS_HTTP_HOST": "0.0.0.0"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing plain HTTP" in result.stderr


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_serves_with_tls12_or_newer(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    env = {
        **os.environ,
        "PACS_DATA_DIR": str(tmp_path / "data"),
        "PACS_HTTP_PORT": str(port),
        "PACS_DICOM_PORT": str(free_port()),
        "PACS_HL7_PORT": "0",  # no HL7 listener: not what this runs
        "PACS_DICOM_HOST": "127.0.0.1",
        "PACS_TLS_CERT_FILE": str(cert),
        "PACS_TLS_KEY_FILE": str(key),
        "PACS_ADMIN_PASSWORD": "first-admin-password",
    }
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/health", context=context, timeout=2
                ) as response:
                    assert response.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, OSError)):
            urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=old, timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=30)
