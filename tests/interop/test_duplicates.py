"""A duplicate is judged by the dataset, not the file meta each door writes (issue 22 item 2).

The same object arrives by DCMTK ``storescu``, by STOW-RS from dicomweb-client
and by ``pacs import`` from a CD whose files carry another implementation
class and source AE: every door answers an idempotent success and the stored
blob is the first one. An object whose dataset differs gets the same policy
outcome from every door (keep, replace, reject).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset

from app.cli import main
from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from pacs.settings import DuplicatePolicy, Settings
from tests.dicom_factory import ct_slice, write
from tests.dimse.peers import send_files, storescu
from tests.interop.helpers import stored_bytes

REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_INSTANCE = "00081155"
FAILURE_REASON = "00081197"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Settings:
    monkeypatch.setenv("PACS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PACS_DATABASE_URL", settings.database_url)
    Archive.open(settings).close()  # the archive `pacs serve` created: the CLI needs one
    return settings


def _with_other_meta(ds: Dataset, source_ae: str) -> Dataset:
    """The same dataset under the file meta another product would write."""
    copy = ds.copy()
    copy.file_meta = ds.file_meta.copy()
    copy.file_meta.ImplementationClassUID = "1.2.826.0.1.3680043.9.7433.1.1"
    copy.file_meta.ImplementationVersionName = "CD_BURNER_4"
    copy.file_meta.SourceApplicationEntityTitle = source_ae
    return copy


def _stow(web: DICOMwebClient, ds: Dataset) -> tuple[int, dict[str, Any]]:
    """STOW-RS one instance with dicomweb-client; (HTTP status, response dataset as JSON)."""
    try:
        answer = web.store_instances([ds])
        return 200, answer.to_json_dict()
    except requests.HTTPError as exc:
        response = exc.response
        assert response is not None
        return response.status_code, response.json() if response.content else {}


def _import(folder: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    main(["import", str(folder), "--json"])
    summary: dict[str, Any] = json.loads(capsys.readouterr().out)
    return summary


def _referenced(body: dict[str, Any], key: str) -> list[str]:
    items = body.get(key, {}).get("Value", [])
    return [item[REFERENCED_SOP_INSTANCE]["Value"][0] for item in items]


def test_the_same_dataset_through_every_door_is_a_duplicate(
    archive: Archive,
    dimse_server: DimseServer,
    web: DICOMwebClient,
    cli: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    dcmtk: None,
) -> None:
    ds = ct_slice()
    sop = str(ds.SOPInstanceUID)
    sent = write(ds, tmp_path / "sent" / "IM1")
    result = storescu(dimse_server.port, sent)
    assert result.returncode == 0, result.stderr
    first, first_sha = stored_bytes(archive, sop)

    status, body = _stow(web, _with_other_meta(ds, "WORKSTATION"))
    assert status == 200, body
    assert _referenced(body, REFERENCED_SOP_SEQUENCE) == [sop]
    assert FAILED_SOP_SEQUENCE not in body

    cd = tmp_path / "cd"
    write(_with_other_meta(ds, "CD_IMPORT"), cd / "DICOM" / "IM0001")
    summary = _import(cd, capsys)
    assert summary["duplicates"] == 1, summary
    assert summary["conflicts"] == 0 and summary["imported"] == 0 and not summary["rejected"]

    assert send_files(dimse_server.port, [cd / "DICOM" / "IM0001"]) == [(0x0000, "")]
    assert archive.counts()["instances"] == 1
    assert stored_bytes(archive, sop) == (first, first_sha)  # the first blob, untouched


def _changed(ds: Dataset, source_ae: str) -> Dataset:
    other = _with_other_meta(ds, source_ae)
    other.StudyDescription = f"corrected by {source_ae}"
    return other


@pytest.mark.parametrize("policy", list(DuplicatePolicy))
def test_every_door_gives_the_same_policy_outcome(
    archive: Archive,
    dimse_server: DimseServer,
    web: DICOMwebClient,
    cli: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    policy: DuplicatePolicy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archive.ingestor.duplicate_policy = policy  # the DIMSE and HTTP doors' archive
    monkeypatch.setenv("PACS_DUPLICATE_POLICY", policy.value)  # the CLI opens its own
    originals = {door: ct_slice() for door in ("dimse", "stow", "import")}
    for ds in originals.values():
        write(ds, tmp_path / "first" / f"{ds.SOPInstanceUID}.dcm")
    assert _import(tmp_path / "first", capsys)["imported"] == 3

    dimse_file = write(_changed(originals["dimse"], "MODALITY"), tmp_path / "d" / "IM1")
    ((dimse_status, dimse_comment),) = send_files(dimse_server.port, [dimse_file])
    stow_status, stow_body = _stow(web, _changed(originals["stow"], "WORKSTATION"))
    write(_changed(originals["import"], "CD_IMPORT"), tmp_path / "cd" / "IM1")
    summary = _import(tmp_path / "cd", capsys)

    stow_sop = str(originals["stow"].SOPInstanceUID)
    if policy is DuplicatePolicy.REPLACE:
        assert dimse_status == 0x0000
        assert stow_status == 200 and _referenced(stow_body, REFERENCED_SOP_SEQUENCE) == [stow_sop]
        assert summary["imported"] == 1
    else:
        expected_dimse = 0xB000 if policy is DuplicatePolicy.KEEP else 0x0111
        assert (dimse_status, bool(dimse_comment)) == (expected_dimse, True), dimse_comment
        assert stow_status == 409 and _referenced(stow_body, FAILED_SOP_SEQUENCE) == [stow_sop]
        (failed,) = stow_body[FAILED_SOP_SEQUENCE]["Value"]
        assert failed[FAILURE_REASON]["Value"] == [0x0111]
        if policy is DuplicatePolicy.KEEP:
            assert summary["conflicts"] == 1
        else:
            assert summary["rejected"] and summary["imported"] == 0
    for door, ds in originals.items():
        stored, _sha = stored_bytes(archive, str(ds.SOPInstanceUID))
        description = dcmread(io.BytesIO(stored)).get("StudyDescription", "")
        replaced = policy is DuplicatePolicy.REPLACE
        assert (description != "") == replaced, (door, description)
    assert archive.counts()["instances"] == 3


def test_a_row_is_judged_by_its_blob_once_when_a_resend_differs(archive: Archive) -> None:
    """Ingest takes no content hash (a second pass over every object for the rare resend):
    the first resend whose file differs hashes the held blob's dataset and keeps it, as for
    rows from before revision 0008."""
    import hashlib

    from sqlalchemy import select

    from pacs.archive.ingest import Origin, Outcome
    from pacs.index.models import Instance
    from pacs.part10 import read_header
    from tests.dicom_factory import to_bytes

    ds = ct_slice()
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    with archive.sessions() as session:
        assert session.scalar(select(Instance.content_sha256)) is None
    assert archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import")).outcome is (
        Outcome.DUPLICATE
    )
    resent = archive.ingest(
        io.BytesIO(to_bytes(_with_other_meta(ds, "CD_IMPORT"))), Origin(door="import")
    )
    assert resent.outcome is Outcome.DUPLICATE
    with archive.sessions() as session:
        kept = session.scalar(select(Instance.content_sha256))
    blob = io.BytesIO(stored_bytes(archive, str(ds.SOPInstanceUID))[0])
    dataset = blob.getvalue()[read_header(blob).body_offset :]
    assert kept == hashlib.sha256(dataset).hexdigest()
    changed = archive.ingest(
        io.BytesIO(to_bytes(_changed(ds, "MODALITY"))), Origin(door="dimse", calling_ae="CT1")
    )
    assert changed.outcome is Outcome.CONFLICT_KEPT
