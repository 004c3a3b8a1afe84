"""What the routing tests share: an archive whose jobs run quickly, studies, storescp with a log."""

from __future__ import annotations

import io
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.accounts import create_account, create_token
from pacs.auth.principal import Role
from pacs.settings import Settings
from tests.conftest import free_port
from tests.dicom_factory import ct_slice, to_bytes
from tests.retrieve_dimse.destinations import wait_listening

FAST = {
    "job_poll_seconds": 0.05,
    "route_backoff_seconds": 0.2,
    "route_backoff_cap_seconds": 1.0,
    "route_max_attempts": 1000,  # retried every second: not a dead letter within the test
    "stable_study_seconds": 3600.0,  # the tests declare studies stable themselves
}


def fast(settings: Settings, **more: object) -> Settings:
    """``settings`` with jobs polled often and destinations retried within a second."""
    return settings.model_copy(update={**FAST, **more})


def store_study(
    archive: Archive,
    count: int,
    *,
    modality: str = "CT",
    calling_ae: str = "CT01",
    description: str = "CT ngực",
) -> tuple[str, list[str]]:
    """A study of ``count`` small slices stored as from ``calling_ae``: its UID, SOP UIDs."""
    study, series = generate_uid(), generate_uid()
    uids = []
    for index in range(count):
        ds = ct_slice(study, series, index=index, size=32)
        ds.Modality = modality
        ds.StudyDescription = description
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin("dimse", calling_ae=calling_ae))
        uids.append(str(ds.SOPInstanceUID))
    return study, uids


def declare_stable(archive: Archive) -> int:
    """Every study stable now (as the leader's scan would an hour later)."""
    return archive.events.check_stable(now=datetime.now(UTC) + timedelta(hours=2))


def wait_until(condition: object, timeout: float = 60.0, what: str = "") -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not before the deadline: {what or condition}")


def admin_token(data_dir: Path) -> str:
    """An admin API token in the archive at ``data_dir``, made before it serves."""
    archive = Archive.open(Settings(data_dir=data_dir))
    try:
        create_account(archive.sessions, "admin", "peer-admin-password", Role.ADMIN)
        return create_token(archive.sessions, "admin", "routing test")
    finally:
        archive.close()


@dataclass
class StoreSCP:
    port: int
    folder: Path
    log: Path

    def received(self) -> int:
        """C-STORE requests storescp logged (a resent instance counts twice)."""
        return len(re.findall(r"Received Store Request", self.log.read_text(errors="replace")))


@contextmanager
def storescp(tmp_path: Path, *options: str, title: str = "STORESCP") -> Iterator[StoreSCP]:
    """DCMTK storescp (uncompressed syntaxes unless ``options`` say otherwise), verbose, a
    uniquely named file per object received; TCP_NODELAY=1 as the field notes advise."""
    port = free_port()
    folder = tmp_path / f"storescp-{port}"
    folder.mkdir(parents=True)
    log = tmp_path / f"storescp-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["storescp", "-v", "-aet", title, "+uf", *options, "-od", str(folder), str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TCP_NODELAY": "1"},
        )
    try:
        wait_listening(port, process)
        yield StoreSCP(port, folder, log)
    finally:
        process.terminate()
        process.wait(timeout=10)
