"""A disk that really fills up (a small tmpfs) under C-STORE: 0xA700 with the reason, nothing lost.

The blobs and the spool live on the small disk, the index on the test's own.
Every instance is either acknowledged and kept whole, or refused with "retry
later" (0xA700) while the association goes on; once space is freed, the
refused ones are taken.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacs.archive import Archive
from pacs.dicom import status as st
from pacs.dimse.server import DimseServer
from pacs.settings import Settings
from tests.conftest import IN_CI
from tests.dicom_factory import ct_slice
from tests.dimse.peers import status_of, store_ae, stored_bytes

DISK_MB = 4


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a {DISK_MB} MB tmpfs (needs root): {mounted.stderr.strip()}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def server_on_small_disk(
    small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Archive, DimseServer]]:
    spool = small_disk / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # as `pacs serve` sets it
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'index.sqlite'}",
        storage_url=f"file://{small_disk / 'blobs'}",
    )
    archive = Archive.open(settings)
    server = DimseServer(archive)
    server.start("127.0.0.1", 0)
    try:
        yield archive, server
    finally:
        server.stop(grace=2)
        archive.close()


def test_a_full_disk_refuses_with_retry_later_and_keeps_what_it_acknowledged(
    server_on_small_disk: tuple[Archive, DimseServer], small_disk: Path
) -> None:
    archive, server = server_on_small_disk
    ballast = small_disk / "ballast"
    ballast.write_bytes(bytes(1 << 20))  # freed later
    study = [
        ct_slice(index=i, size=512, study_uid="1.2.826.0.1.3680043.8.498.91") for i in range(8)
    ]
    assoc = store_ae().associate("127.0.0.1", server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        answers = []
        for ds in study:
            answers.append(status_of(assoc.send_c_store(ds)))
            assert assoc.is_established, f"association lost after {len(answers)} stores"
    finally:
        assoc.release()
    stored = [ds for ds, (code, _) in zip(study, answers, strict=True) if code == st.SUCCESS]
    refused = [ds for ds, (code, _) in zip(study, answers, strict=True) if code != st.SUCCESS]
    assert stored and refused, answers  # the disk filled up part-way
    for code, comment in answers[len(stored) :]:
        assert code == st.OUT_OF_RESOURCES
        assert "No space left" in comment, comment
    assert archive.counts()["instances"] == len(stored)
    for ds in stored:
        assert stored_bytes(archive, ds.SOPInstanceUID).endswith(ds.PixelData)
    assert list((small_disk / "spool").iterdir()) == []  # refused datasets leave nothing

    ballast.unlink()  # an administrator frees space; the modality retries
    assoc = store_ae().associate("127.0.0.1", server.port, ae_title="PACS")
    try:
        retried = [status_of(assoc.send_c_store(ds)) for ds in refused[:2]]
    finally:
        assoc.release()
    assert retried == [(st.SUCCESS, "")] * 2
    for ds in [*stored, *refused[:2]]:
        assert stored_bytes(archive, ds.SOPInstanceUID).endswith(ds.PixelData)
