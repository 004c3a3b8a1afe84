"""Storage full or index unreachable: 0xA700 with a reason; nothing stored before is lost."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from pacs.archive import Archive
from pacs.dicom import status as st
from pacs.dimse.server import DimseServer
from storage import StorageError
from storage.base import BlobInfo, Readable
from storage.filesystem import FileSystemStore
from tests.dicom_factory import ct_slice, to_bytes
from tests.dimse.peers import dataset_bytes, status_of, store_ae, stored_bytes


class FillingDisk(FileSystemStore):
    """A real filesystem store whose disk can be declared full (tests may run as root,
    so a read-only folder would not stop them)."""

    failure: Exception | None = None

    def put(self, key: str, stream: Readable, size: int | None = None) -> BlobInfo:
        if self.failure is not None:
            raise self.failure
        return super().put(key, stream, size)

    def put_file(self, key: str, path: Path) -> BlobInfo:
        if self.failure is not None:
            raise self.failure
        return super().put_file(key, path)


@pytest.fixture
def disk(archive: Archive) -> FillingDisk:
    store = FillingDisk(archive.store.root)  # type: ignore[attr-defined]
    archive.store = archive.ingestor.store = store
    return store


def _store_all(port: int, datasets: list[Dataset]) -> list[tuple[int, str]]:
    assoc = store_ae(sop_classes=[str(ds.SOPClassUID) for ds in datasets[:1]]).associate(
        "127.0.0.1", port, ae_title="PACS"
    )
    assert assoc.is_established
    try:
        return [status_of(assoc.send_c_store(ds)) for ds in datasets]
    finally:
        assoc.release()


def _assert_still_retrievable(archive: Archive, datasets: list[Dataset]) -> None:
    for ds in datasets:
        kept = stored_bytes(archive, str(ds.SOPInstanceUID))
        assert dataset_bytes(kept) == dataset_bytes(to_bytes(ds))


@pytest.mark.parametrize(
    "failure",
    [StorageError("storage is full"), OSError(errno.ENOSPC, "No space left on device")],
    ids=["StorageError", "ENOSPC"],
)
def test_full_storage_answers_out_of_resources(
    failure: Exception, archive: Archive, disk: FillingDisk, dimse_server: DimseServer
) -> None:
    study = [ct_slice(index=i, study_uid="1.2.826.0.1.3680043.8.498.77") for i in range(4)]
    assert _store_all(dimse_server.port, study[:2]) == [(st.SUCCESS, "")] * 2

    disk.failure = failure
    results = _store_all(dimse_server.port, study[2:])
    assert [code for code, _ in results] == [st.OUT_OF_RESOURCES] * 2
    assert all("storage" in comment for _, comment in results), results
    assert archive.counts()["instances"] == 2

    disk.failure = None  # space freed: the sender's retry succeeds, nothing was lost
    assert _store_all(dimse_server.port, study[2:]) == [(st.SUCCESS, "")] * 2
    _assert_still_retrievable(archive, study)


def _dead_url(database_url: str, tmp_path: Path) -> str:
    """Where the index is not: a closed PostgreSQL port, or an SQLite file in no folder."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{tmp_path / 'gone' / 'index.sqlite'}"
    return url.set(port=1).render_as_string(hide_password=False)


@pytest.fixture
def index_outage(
    archive: Archive, database_url: str, tmp_path: Path
) -> Iterator[Callable[[bool], None]]:
    """Call the yielded switch with True to cut the index off (the live engine is disposed)."""
    live = archive.sessions.kw["bind"]
    dead = create_engine(
        _dead_url(database_url, tmp_path),
        connect_args={"connect_timeout": 2} if database_url.startswith("postgresql") else {},
    )

    def switch(down: bool) -> None:
        live.dispose()
        archive.sessions.configure(bind=dead if down else live)

    yield switch
    switch(False)
    dead.dispose()


def test_unreachable_index_answers_out_of_resources(
    archive: Archive, index_outage: Callable[[bool], None], dimse_server: DimseServer
) -> None:
    study = [ct_slice(index=i, study_uid="1.2.826.0.1.3680043.8.498.78") for i in range(4)]
    assert _store_all(dimse_server.port, study[:2]) == [(st.SUCCESS, "")] * 2

    index_outage(True)
    results = _store_all(dimse_server.port, study[2:])
    assert [code for code, _ in results] == [st.OUT_OF_RESOURCES] * 2
    assert all("index unavailable" in comment for _, comment in results), results

    index_outage(False)
    assert archive.counts()["instances"] == 2
    assert len(list(archive.store.list())) == 2  # no blob left behind for the refused ones
    assert _store_all(dimse_server.port, study[2:]) == [(st.SUCCESS, "")] * 2
    _assert_still_retrievable(archive, study)
