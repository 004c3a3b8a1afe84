"""The index can be read but not written: reads still answer, writes say "retry later".

A database that refuses writes (PostgreSQL after a fail-over to a standby,
``default_transaction_read_only``; SQLite on a read-only volume, here its
``query_only`` switch) is set on every new connection of the archive's own
engine, so the refusals come from the database itself. Reads (QIDO, WADO,
C-FIND) still answer and their audit records wait in the audit queue; writes
(STOW-RS, C-STORE, DELETE, a new share) answer 503 with Retry-After or
0xA700; /health says why. Once writes are allowed again, the queued audit
records reach the trail.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

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

PASSWORD = "read-only-test-password"


@pytest.fixture
def read_only_switch(
    tmp_path: Any, database_url: str
) -> Iterator[tuple[Archive, Callable[[bool], None]]]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        remote_aes=[RemoteAE(ae_title="WORKSTATION", services=["find"])],
        public_base_url="http://testserver",  # share links name it, never the Host header
    )
    archive = Archive.open(settings)
    sqlite = database_url.startswith("sqlite")
    state = {"read_only": False}

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if not state["read_only"]:
            return
        cursor = dbapi_connection.cursor()
        if sqlite:
            cursor.execute("PRAGMA query_only=ON")
        else:
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            dbapi_connection.commit()
        cursor.close()

    event.listen(archive.engine, "connect", on_connect)

    def switch(read_only: bool) -> None:
        state["read_only"] = read_only
        archive.engine.dispose()  # every connection from now on is made with the switch set

    yield archive, switch
    switch(False)
    archive.close()


def _stow(client: TestClient, data: bytes) -> Any:
    boundary = "read-only-boundary"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary="{boundary}"'
    return client.post("/dicom-web/studies", content=body, headers={"Content-Type": content_type})


def test_reads_answer_and_writes_wait(
    read_only_switch: tuple[Archive, Callable[[bool], None]],
) -> None:
    archive, switch = read_only_switch
    ds = ct_slice(index=0)
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    create_account(archive.sessions, "admin", PASSWORD, Role.ADMIN)
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    instance = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    server = DimseServer(archive)
    server.start("127.0.0.1", 0)
    try:
        with TestClient(create_app(archive)) as client:
            client.auth = ("admin", PASSWORD)
            assert client.get("/dicom-web/studies").status_code == 200
            before = len(archive.audit.events(limit=10_000))

            switch(True)
            for url in (
                "/dicom-web/studies?PatientID=BN0001",
                f"{instance}/metadata",
                instance,
                f"{instance}/frames/1",
                f"{instance}/rendered",
            ):
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code, response.text)
            with find_association(server.port) as find:
                found = c_find(find, STUDY_ROOT, query("STUDY", StudyInstanceUID=""))
            assert found.status == st.SUCCESS and len(found.matches) == 1

            writes = {
                "STOW-RS": _stow(client, to_bytes(ct_slice(study_uid=study, index=1))),
                "share": client.post(f"/api/studies/{study}/shares", json={}),
                "DELETE": client.request("DELETE", instance, params={"reason": "test"}),
            }
            for name, response in writes.items():
                assert response.status_code == 503, (name, response.status_code, response.text)
                assert int(response.headers["Retry-After"]) > 0, name
            assoc = store_ae(sop_classes=[str(ds.SOPClassUID)]).associate(
                "127.0.0.1", server.port, ae_title="PACS"
            )
            assert assoc.is_established
            try:
                code, comment = status_of(assoc.send_c_store(ct_slice(study_uid=study, index=2)))
            finally:
                assoc.release()
            assert code == st.OUT_OF_RESOURCES, (hex(code), comment)

            health = client.get("/health")
            assert health.status_code == 503 and int(health.headers["Retry-After"]) > 0
            report = health.json()
            assert report["status"] == "degraded"
            assert report["index"] != "ok", report  # says that the index takes no writes

            switch(False)
            assert archive.audit.flush(timeout=30)
            healthy = client.get("/health")
            assert healthy.status_code == 200, healthy.text
            # The reads made meanwhile were audited after all (queued, not dropped).
            assert len(archive.audit.events(limit=10_000)) > before
            assert archive.counts()["instances"] == 1
            assert len(list(archive.store.list())) == 1  # refused objects left no blob
            assert _stow(client, to_bytes(ct_slice(study_uid=study, index=1))).status_code == 200
    finally:
        server.stop(grace=2)
