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
from pydicom.pixels import pixel_array

from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import IngestError, IngestResult, Origin, Outcome
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
    # The file whose object the index holds for each SOP Instance UID: some test files
    # share UIDs, and a later one with other content is a kept conflict, not stored.
    holder: dict[str, tuple[str, IngestResult]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import uvicorn

    data = tmp_path_factory.mktemp("corpus")
    archive = Archive.open(Settings(data_dir=data))
    create_account(archive.sessions, *AUTH, Role.ADMIN)
    stored: dict[str, IngestResult | IngestError] = {}
    holder: dict[str, tuple[str, IngestResult]] = {}
    for number, path in enumerate(FILES):
        data = Path(path).read_bytes()
        try:
            result = archive.ingest(io.BytesIO(data), Origin(door="import"))
            if result.outcome is Outcome.CONFLICT_KEPT:
                # Many test files share one SOP Instance UID (one image in several syntaxes):
                # each gets its own, patched in place at the same length, so each is stored.
                data = _own_uid(data, result.sop_instance_uid, number)
                result = archive.ingest(io.BytesIO(data), Origin(door="import"))
            stored[path] = result
            if result.outcome is Outcome.STORED:
                holder[result.sop_instance_uid] = (path, result)
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
        yield Server(archive, client, stored, holder)
    uvicorn_server.should_exit = True
    thread.join(timeout=10)
    archive.close()
    print(f"\nrender corpus outcomes: {dict(OUTCOMES)}")


def _own_uid(data: bytes, uid: str, number: int) -> bytes:
    """``data`` with every copy of ``uid`` replaced by another valid UID of the same length."""
    digits = len(uid) - len("2.25.")
    fresh = f"2.25.9{number:04d}".ljust(len(uid), "0") if digits > 5 else uid
    return data.replace(uid.encode(), fresh.encode())


# The cases: they must render, whatever the decoders say of other files.
MUST_RENDER = {"JPEG-lossy.dcm", "JPGExtended.dcm", "image_dfl.dcm"}


def _has_pixels(path: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(path, force=True, defer_size=64)
    return any(tag in ds for tag in PIXEL_TAGS)


def _decodable(path: str) -> bool:
    """Whether pydicom, with the decoders installed here, decodes the first frame."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pixel_array(dcmread(path, force=True), index=0)  # a dataset: deflated ones inflate
        except Exception:
            return False
    return True


def _local_port(response: httpx.Response) -> int:
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


@pytest.mark.parametrize("path", FILES, ids=[_name(p) for p in FILES])
def test_stored_file_renders_or_gets_a_reason(server: Server, path: str) -> None:
    result = server.stored[path]
    if isinstance(result, IngestError):
        assert str(result), "a refusal names its reason"
        if _decodable(path):  # pydicom shows its pixels: only identity rules may refuse it
            assert "pixel data" not in str(result) and "NumberOfFrames" not in str(result)
        OUTCOMES["refused at ingest (reason given)"] += 1
        return
    base = (
        f"/dicom-web/studies/{result.study_uid}/series/{result.series_uid}"
        f"/instances/{result.sop_instance_uid}"
    )
    first = server.client.get("/health")
    port = _local_port(first)
    held_path, held = server.holder[result.sop_instance_uid]
    images = _has_pixels(held_path)
    # Stored with a warning, or pixels no installed decoder reads: a 4xx that says why.
    defective = bool(held.warning) or (images and not _decodable(held_path))
    assert not (defective and _name(held_path) in MUST_RENDER)
    codes = []
    for tail in ("rendered", "thumbnail", "frames/1/rendered"):
        response = server.client.get(f"{base}/{tail}", headers={"Accept": "image/png"})
        codes.append(response.status_code)
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
    if codes == [200, 200, 200]:
        OUTCOMES["rendered"] += 1
    elif images:
        OUTCOMES["image stored with a warning or undecodable: 4xx with a reason"] += 1
    else:
        OUTCOMES["no pixel data: 4xx with a reason"] += 1
