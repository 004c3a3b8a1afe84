"""An S3 endpoint over HTTP for the storage tests: moto's standalone server, started here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.filesystem import FileSystemStore
from storage.s3 import S3Store
from tests.conftest import free_port

S3_KEY = "testing"


def _moto_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script), "-H", "127.0.0.1", "-p", str(port)]
    found = shutil.which("moto_server")
    assert found, "moto_server not installed: `make test` installs moto[server]"
    return [found, "-H", "127.0.0.1", "-p", str(port)]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_KEY}
    process = subprocess.Popen(
        _moto_command(port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            break
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


def make_s3_store(endpoint: str, prefix: str = "pfx") -> S3Store:
    return S3Store(
        f"b-{uuid.uuid4().hex[:12]}",
        prefix,
        endpoint=endpoint,
        access_key=S3_KEY,
        secret_key=S3_KEY,
        region="us-east-1",
        create_bucket=True,
    )


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FileSystemStore | S3Store:
    if request.param == "filesystem":
        return FileSystemStore(tmp_path / "blobs")
    return make_s3_store(request.getfixturevalue("s3_endpoint"))
