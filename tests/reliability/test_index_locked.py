"""Another process holds SQLite's write lock: writes say "retry later" soon, reads answer.

A write used to wait the driver's 30 s busy timeout before its 503, holding the
request (and a DIMSE association) all that time. The wait is now the
``index_busy_timeout`` setting (a few seconds by default, short here): STOW-RS
answers 503 with Retry-After, C-STORE 0xA700, while QIDO, WADO and C-FIND answer
from the same database (WAL readers are not blocked by a writer).
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.dicom import status as st
from pacs.dimse.server import DimseServer
from pacs.settings import RemoteAE, Settings
from tests.dicom_factory import ct_slice, to_bytes
from tests.dimse.peers import status_of, store_ae
from tests.query_dimse.scu import STUDY_ROOT, c_find, find_association, query

PASSWORD = "locked-index-test-password"
BUSY_TIMEOUT = 0.3

# Holds the write lock (BEGIN IMMEDIATE) until its stdin closes; says "locked" once it has.
HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    settings = Settings(
        data_dir=tmp_path / "data",
        index_busy_timeout=BUSY_TIMEOUT,
        remote_aes=[RemoteAE(ae_title="WORKSTATION", services=["find"])],
    )
    archive = Archive.open(settings)
    yield archive
    archive.close()


def _stow(client: TestClient, data: bytes) -> Any:
    boundary = "locked-boundary"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary="{boundary}"'
    return client.post("/dicom-web/studies", content=body, headers={"Content-Type": content_type})


def test_the_archive_waits_its_busy_timeout_not_the_drivers(archive: Archive) -> None:
    with archive.engine.connect() as connection:
        waits = connection.execute(text("PRAGMA busy_timeout")).scalar_one()
    assert waits == int(BUSY_TIMEOUT * 1000)
    assert Settings().index_busy_timeout <= 10  # the default bounds a request's wait too


@pytest.mark.timeout(120)
def test_a_locked_index_refuses_writes_with_retry_later_and_reads_answer(
    archive: Archive,
) -> None:
    ds = ct_slice(index=0)
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    create_account(archive.sessions, "admin", PASSWORD, Role.ADMIN)
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    instance = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    database = archive.engine.url.database
    assert database
    server = DimseServer(archive)
    server.start("127.0.0.1", 0)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with TestClient(create_app(archive)) as client:
            client.auth = ("admin", PASSWORD)
            for url in ("/dicom-web/studies?PatientID=BN0001", f"{instance}/metadata", instance):
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code, response.text)
            with find_association(server.port) as find:
                found = c_find(find, STUDY_ROOT, query("STUDY", StudyInstanceUID=""))
            assert found.status == st.SUCCESS and len(found.matches) == 1

            stowed = _stow(client, to_bytes(ct_slice(study_uid=study, index=1)))
            assert stowed.status_code == 503, (stowed.status_code, stowed.text)
            assert int(stowed.headers["Retry-After"]) > 0

            assoc = store_ae(sop_classes=[str(ds.SOPClassUID)]).associate(
                "127.0.0.1", server.port, ae_title="PACS"
            )
            assert assoc.is_established
            try:
                code, comment = status_of(assoc.send_c_store(ct_slice(study_uid=study, index=2)))
            finally:
                assoc.release()
            assert code == st.OUT_OF_RESOURCES, (hex(code), comment)

            holder.communicate("", timeout=10)  # the lock is released
            assert _stow(client, to_bytes(ct_slice(study_uid=study, index=1))).status_code == 200
            assert archive.counts()["instances"] == 2
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        server.stop(grace=2)
