"""Delete, purge and correct with the blobs on S3 (moto's standalone server over HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydicom import dcmread

from pacs.archive import Archive
from pacs.auth.principal import Kind, Principal, Role
from pacs.reconcile import check
from pacs.settings import Settings
from tests.lifecycle.conftest import store_study

ADMIN = Principal(Kind.USER, "admin", Role.ADMIN)


def test_correct_delete_and_purge_on_s3(s3_settings: Settings) -> None:
    archive = Archive.open(s3_settings)
    try:
        study = store_study(archive, series=1, per_series=2)
        keep = store_study(archive, series=1, per_series=1, patient_id="BN0009")
        (version,) = archive.correct(
            ADMIN, study.study_uid, {"StudyDescription": "CT sọ não"}, "typo"
        )
        assert version.version == 1
        served = archive.locate(study.study_uid)
        assert {item.blob_key for item in served}.isdisjoint(r.blob_key for r in study.results)
        with archive.open_seekable(served[0].blob_key) as fp:
            assert dcmread(fp).StudyDescription == "CT sọ não"
        assert check(archive).consistent

        archive.delete(ADMIN, study.study_uid, reason="duplicate study")
        assert archive.locate(study.study_uid) == []
        blobs = {blob.key for blob in archive.store.list()}
        assert len(blobs) == 5  # 2 originals + 2 corrected copies, awaiting purge; 1 kept
        report = archive.purge_due(datetime.now(UTC) + timedelta(hours=25))
        assert (report.deletions, report.blobs_removed) == (1, 4)
        assert {blob.key for blob in archive.store.list()} == {keep.results[0].blob_key}
        with archive.open_blob(keep.results[0].blob_key) as blob:
            assert blob.read()[128:] == keep.data[keep.results[0].sop_instance_uid][128:]
        assert check(archive).consistent
    finally:
        archive.close()
