"""Every real file pydicom and pydicom-data ship: stored, then rendered on one keep-alive link.

Issue 22 item 4: a stored image never gets a 5xx. Each file with pixel data
must come back as a picture from ``rendered``, ``thumbnail`` and
``frames/1/rendered`` (JPEG Extended 12-bit and deflated ones included);
each stored object without pixel data gets a 4xx with a reason; a file the
archive refuses is refused with a reason. After every file's requests the
same TCP connection (same client port) must still answer: an error that
resets the connection would show up as a new port or a transport error.

One archive and one server for the whole module (the subject is rendering,
not the index), so the ~260 files cost seconds, not minutes.
"""

from __future__ import annotations

import collections
import io
import os
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_files

from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import IngestError, IngestResult, Origin
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.settings import Settings
from tests.conftest import free_port

PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)
FILES = sorted(path for path in get_testdata_files() if os.path.isfile(path))
AUTH = ("admin", "admin-corpus-password")
OUTCOMES: collections.Counter[str] = collections.Counter()


def _name(path: str) -> str:
    return path.split("test_files/")[-1] if "test_files/" in path else Path(path).name


@dataclass
class Server:
    archive: Archive
    client: httpx.Client
    stored: dict[str, IngestResult | IngestError]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import uvicorn

    data = tmp_path_factory.mktemp("corpus")
    archive = Archive.open(Settings(data_dir=data))
    create_account(archive.sessions, *AUTH, Role.ADMIN)
    stored: dict[str, IngestResult | IngestError] = {}
    for path in FILES:
        with open(path, "rb") as fp:
            try:
                stored[path] = archive.ingest(fp, Origin(door="import"))
            except IngestError as exc:
                stored[path] = exc
    port = free_port()
    config = uvicorn.Config(
        create_app(archive), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", auth=AUTH, limits=limits, timeout=30
    ) as client:
        yield Server(archive, client, stored)
    uvicorn_server.should_exit = True
    thread.join(timeout=10)
    archive.close()
    print(f"\nrender corpus outcomes: {dict(OUTCOMES)}")


def _has_pixels(path: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(path, force=True, defer_size=64)
    return any(tag in ds for tag in PIXEL_TAGS)


def _local_port(response: httpx.Response) -> int:
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


@pytest.mark.parametrize("path", FILES, ids=[_name(p) for p in FILES])
def test_stored_file_renders_or_gets_a_reason(server: Server, path: str) -> None:
    result = server.stored[path]
    if isinstance(result, IngestError):
        assert str(result), "a refusal names its reason"
        OUTCOMES["refused at ingest (reason given)"] += 1
        return
    base = (
        f"/dicom-web/studies/{result.study_uid}/series/{result.series_uid}"
        f"/instances/{result.sop_instance_uid}"
    )
    first = server.client.get("/health")
    port = _local_port(first)
    images = _has_pixels(path)
    defective = bool(result.warning)  # stored with a warning: may not render, says why
    for tail in ("rendered", "thumbnail", "frames/1/rendered"):
        response = server.client.get(f"{base}/{tail}", headers={"Accept": "image/png"})
        assert response.status_code < 500, f"{tail}: {response.status_code} {response.text}"
        if images and defective and response.status_code != 200:
            assert response.status_code in (404, 422) and response.json()["detail"]
        elif images:
            assert response.status_code == 200, f"{tail}: {response.status_code} {response.text}"
            picture = Image.open(io.BytesIO(response.content))
            picture.load()
            assert picture.width >= 1 and picture.height >= 1
        else:
            assert 400 <= response.status_code < 500
            assert response.json()["detail"], "a 4xx names its reason"
        assert _local_port(response) == port, f"{tail} changed the connection"
    after = server.client.get("/health")
    assert after.status_code == 200
    assert _local_port(after) == port, "the keep-alive connection was dropped"
    if images and defective:
        OUTCOMES["stored with a warning; 4xx with a reason"] += 1
    else:
        OUTCOMES["rendered" if images else "4xx with a reason (no pixel data)"] += 1
