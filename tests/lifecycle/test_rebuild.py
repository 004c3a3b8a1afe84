"""Rebuilding the index from the store keeps deletes deleted and corrections corrected."""

from __future__ import annotations

from pacs.archive import Archive
from pacs.auth.principal import Kind, Principal, Role
from pacs.reconcile import check
from pacs.reindex import clear_index, reindex
from tests.lifecycle.conftest import store_study

ADMIN = Principal(Kind.USER, "admin", Role.ADMIN)


def test_reindex_skips_deleted_blobs_and_originals(archive: Archive) -> None:
    deleted = store_study(archive, series=1, per_series=2)
    corrected = store_study(archive, series=1, per_series=2, patient_id="BN0005")
    archive.delete(ADMIN, deleted.study_uid, reason="wrong patient")
    archive.correct(ADMIN, corrected.study_uid, {"AccessionNumber": "ACC5555"}, "typo")

    clear_index(archive)
    outcomes = reindex(archive)
    assert (outcomes["deleted"], outcomes["original"], outcomes["indexed"]) == (2, 2, 2)
    assert archive.locate(deleted.study_uid) == []
    served = archive.locate(corrected.study_uid)
    assert len(served) == 2
    for _, text in archive.metadata(corrected.study_uid):
        assert '"00080050":{"vr":"SH","Value":["ACC5555"]}' in text
    report = check(archive)
    assert report.consistent and report.orphan_blobs == []
