"""Two `pacs serve` nodes on one PostgreSQL (a fresh schema) and one S3 endpoint (moto over HTTP).

What issue 20 item 4 asks of a second node: what node A stores, node B finds and
retrieves; a login made on A is valid on B (sessions in the database, one
``PACS_SECRET_KEY``); failed logins spread over A and B are counted together (the
limiters' counts in the database); a study-stable event fires once across both nodes and the
job it queues runs once; and node A killed with SIGKILL in the middle of an ingest
loses nothing it acknowledged. Each node has its own data folder, so nothing can
pass between them except through PostgreSQL and S3.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import create_engine, text

from pacs.archive import Archive
from pacs.auth.accounts import MAX_FAILED_LOGINS, create_account
from pacs.auth.principal import Role
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes
from tests.serve_process import ServeProcess, serve_process
from tests.storage.conftest import S3_KEY, s3_endpoint  # noqa: F401  (the moto server fixture)

pytestmark = pytest.mark.slow  # two server processes and a moto server
ADMIN = ("admin", "admin-test-password")
LOGIN_LIMIT = 10  # PACS_LOGIN_ATTEMPTS_PER_MINUTE for both nodes
BOUNDARY = "pacs-two-nodes"


def _stow(base: str, client: httpx.Client, datasets: list[bytes]) -> httpx.Response:
    body = b""
    for data in datasets:
        body += f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    content_type = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    return client.post(
        f"{base}/dicom-web/studies", content=body, headers={"Content-Type": content_type}
    )


def _wait(predicate: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def cluster(
    tmp_path: Path,
    postgres_schema_url: str,
    s3_endpoint: str,  # noqa: F811
) -> Iterator[tuple[ServeProcess, ServeProcess, Settings]]:
    shared = {
        "PACS_DATABASE_URL": postgres_schema_url,
        "PACS_STORAGE_URL": "s3://pacs-two-nodes/blobs",
        "PACS_S3_ENDPOINT": s3_endpoint,
        "PACS_S3_ACCESS_KEY": S3_KEY,
        "PACS_S3_SECRET_KEY": S3_KEY,
        "PACS_S3_REGION": "us-east-1",
        "PACS_SECRET_KEY": "one-key-for-every-node-" + "x" * 16,
        "PACS_STABLE_STUDY_SECONDS": "2",
        "PACS_JOB_POLL_SECONDS": "0.2",
        "PACS_STORAGE_FSYNC": "false",
        "PACS_LOGIN_ATTEMPTS_PER_MINUTE": str(LOGIN_LIMIT),
    }
    # The schema and the admin account exist before either node starts.
    settings = Settings(
        data_dir=tmp_path / "setup",
        database_url=postgres_schema_url,
        storage_url="s3://pacs-two-nodes/blobs",
        s3_endpoint=s3_endpoint,
        s3_access_key=S3_KEY,
        s3_secret_key=S3_KEY,
        s3_region="us-east-1",
    )
    archive = Archive.open(settings)
    create_account(archive.sessions, ADMIN[0], ADMIN[1], Role.ADMIN)
    archive.close()
    with ExitStack() as stack:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a = stack.enter_context(serve_process(tmp_path / "a", shared))
        b = stack.enter_context(serve_process(tmp_path / "b", shared))
        yield a, b, settings


def _base(node: ServeProcess) -> str:
    return f"http://127.0.0.1:{node.http_port}"


def test_two_nodes_share_everything_and_a_killed_node_loses_nothing_acknowledged(
    cluster: tuple[ServeProcess, ServeProcess, Settings],
) -> None:
    a, b, settings = cluster
    url = settings.database_url
    study, series = generate_uid(), generate_uid()
    sent = [to_bytes(ct_slice(study, series, index=i, size=16, seed=i)) for i in range(4)]
    with httpx.Client(auth=ADMIN, timeout=60) as client:
        assert _stow(_base(a), client, sent).status_code == 200
        # Node B searches and retrieves what node A stored (index in PostgreSQL, blobs in S3).
        found = client.get(f"{_base(b)}/dicom-web/studies", params={"StudyInstanceUID": study})
        assert found.status_code == 200 and len(found.json()) == 1
        instances = client.get(f"{_base(b)}/dicom-web/studies/{study}/instances").json()
        assert len(instances) == 4
        sop = pydicom.dcmread(io.BytesIO(sent[2])).SOPInstanceUID
        retrieved = client.get(
            f"{_base(b)}/dicom-web/studies/{study}/series/{series}/instances/{sop}",
            headers={"Accept": 'multipart/related; type="application/dicom"'},
        )
        assert retrieved.status_code == 200
        assert pydicom.dcmread(io.BytesIO(sent[2])).PixelData in retrieved.content

    # A session cookie made by logging in on node A is accepted by node B.
    with httpx.Client(timeout=30) as browser:
        login = browser.post(f"{_base(a)}/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert login.status_code == 200
        me = browser.get(f"{_base(b)}/api/me").json()
        assert me["name"] == ADMIN[0] and me["kind"] == "user"

    # Failed logins spread over the two nodes count together (the limiters' counts are in
    # PostgreSQL): one name locks after MAX_FAILED_LOGINS failures, three on A and two on
    # B, and the address is refused (429) on both after its limit, split the same way. The
    # guesser calls from 127.0.0.2, so the rest of the test (127.0.0.1) is not limited.
    guessing = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(timeout=30, transport=guessing) as guesser:
        nodes = [a, b]
        for n in range(MAX_FAILED_LOGINS):
            answer = guesser.post(
                f"{_base(nodes[n % 2])}/login", json={"username": "ghost", "password": f"g{n}"}
            )
            assert answer.status_code == 401
        assert answer.json()["reason"] == "locked"  # per-node counts would be 3 and 2
        for n in range(MAX_FAILED_LOGINS, LOGIN_LIMIT):
            answer = guesser.post(
                f"{_base(nodes[n % 2])}/login", json={"username": f"ghost{n}", "password": "g"}
            )
            assert answer.status_code == 401
        for node in nodes:
            refused = guesser.post(
                f"{_base(node)}/login", json={"username": ADMIN[0], "password": ADMIN[1]}
            )
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0

    # The study-stable event fires once across the two nodes; the job it queued runs once.
    engine = create_engine(url)
    try:

        def stable() -> int:
            with engine.connect() as connection:
                return int(connection.execute(
                    text("SELECT count(*) FROM change WHERE kind = 'stable-study' "
                         "AND study_uid = :s"), {"s": study}).scalar_one())  # fmt: skip

        def match_jobs() -> list[tuple[str, int]]:
            with engine.connect() as connection:
                rows = connection.execute(
                    text("SELECT state, attempts FROM job WHERE kind = 'workflow-match' "
                         "AND payload LIKE :p"), {"p": f"%{study}%"}).all()  # fmt: skip
                return [(str(s), int(n)) for s, n in rows]

        _wait(lambda: match_jobs() == [("done", 1)], "the study-stable job done once")
        assert stable() == 1
        assert match_jobs() == [("done", 1)]

        # Forty jobs queued at once: both nodes' runners compete, each job runs exactly once.
        queuer = Archive.open(settings)
        try:
            for n in range(40):
                queuer.jobs.enqueue("reapply-corrections", {"study_uid": f"1.2.3.{n}"})
        finally:
            queuer.close()

        def reapplied() -> list[tuple[str, int]]:
            with engine.connect() as connection:
                rows = connection.execute(
                    text("SELECT state, attempts FROM job WHERE kind = 'reapply-corrections' "
                         "AND payload LIKE '%1.2.3.%'")).all()  # fmt: skip
                return [(str(s), int(n)) for s, n in rows]

        _wait(lambda: all(s == "done" for s, _ in reapplied()), "forty jobs done")
        assert reapplied() == [("done", 1)] * 40

        # Node A killed with SIGKILL mid-ingest: every acknowledged instance is on node B.
        acknowledged: list[str] = []
        stop = threading.Event()

        def ingest() -> None:
            kill_study = generate_uid()
            with httpx.Client(auth=ADMIN, timeout=30) as client:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    data = to_bytes(ct_slice(kill_study, generate_uid(), index=i, size=16))
                    try:
                        response = _stow(_base(a), client, [data])
                    except httpx.HTTPError:
                        return  # the node is gone: this one was never acknowledged
                    if response.status_code == 200:
                        acknowledged.append(str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID))

        thread = threading.Thread(target=ingest, daemon=True)
        thread.start()
        _wait(lambda: len(acknowledged) >= 5, "node A acknowledging instances")
        os.kill(a.process.pid, signal.SIGKILL)
        a.process.wait(30)
        thread.join(60)
        stop.set()
        assert acknowledged
        with httpx.Client(auth=ADMIN, timeout=60) as client:
            for sop in acknowledged:
                response = client.get(
                    f"{_base(b)}/dicom-web/instances", params={"SOPInstanceUID": sop}
                )
                assert response.status_code == 200 and len(response.json()) == 1, sop
        with engine.connect() as connection:
            keys = connection.execute(
                text("SELECT blob_key FROM instance WHERE sop_instance_uid = ANY(:s)"),
                {"s": acknowledged},
            ).scalars().all()  # fmt: skip
        assert len(keys) == len(acknowledged)
    finally:
        engine.dispose()
