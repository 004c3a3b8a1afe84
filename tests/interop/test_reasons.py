"""Reasons travel (issue 22 item 7): STOW-RS says what DIMSE says in Error Comment.

A refused object gets the same reason text through STOW-RS (Text Value beside
FailureReason, and a ``Warning: 299`` header) as through C-STORE (Error
Comment). An object pydicom reads with a tolerable defect (pydicom's
``badVR.dcm``: Number of Frames "1A") is stored as sent with a warning by
both doors (C-STORE 0xB006, STOW 202 with WarningReason), as Orthanc does;
identity rules stay strict.
"""

from __future__ import annotations

import io
from pathlib import Path

import requests
from pydicom import dcmread
from pydicom.data import get_testdata_file

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from tests.dicom_factory import ct_slice, to_bytes, write
from tests.dimse.peers import send_files

FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
REASON_TEXT = "0040A160"
BOUNDARY = "reasons-boundary"


def _stow(http: requests.Session, url: str, data: bytes) -> requests.Response:
    body = (
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    return http.post(f"{url}/dicom-web/studies", data=body, headers={"Content-Type": content_type})


def test_a_refusal_carries_the_dimse_reason_text(
    archive: Archive,
    dimse_server: DimseServer,
    http: requests.Session,
    live_http: str,
    tmp_path: Path,
) -> None:
    ds = ct_slice()
    ds.SeriesInstanceUID = "1.2.3.abc"  # identity stays strict
    path = write(ds, tmp_path / "bad.dcm")
    ((code, comment),) = send_files(dimse_server.port, [path])
    assert code == 0xC000 and "SeriesInstanceUID" in comment

    response = _stow(http, live_http, path.read_bytes())
    assert response.status_code == 409
    (item,) = response.json()[FAILED_SOP_SEQUENCE]["Value"]
    assert item[FAILURE_REASON]["Value"] == [0xC000]
    (text,) = item[REASON_TEXT]["Value"]
    assert text.startswith(comment)  # Error Comment is the first 64 characters of the same text
    assert comment in response.headers["Warning"] and response.headers["Warning"].startswith("299 ")
    assert archive.counts()["instances"] == 0


def test_a_tolerable_defect_is_stored_with_a_warning_by_both_doors(
    archive: Archive,
    dimse_server: DimseServer,
    http: requests.Session,
    live_http: str,
    tmp_path: Path,
) -> None:
    source = get_testdata_file("badVR.dcm")
    assert source is not None
    sent = dcmread(source)  # its meta names another instance than its dataset: align them
    sent.file_meta.MediaStorageSOPInstanceUID = sent.SOPInstanceUID
    path = tmp_path / "badVR.dcm"
    sent.save_as(path)
    ((code, comment),) = send_files(dimse_server.port, [path])
    assert code == 0xB006 and "(0028,0008)" in comment
    assert archive.counts()["instances"] == 1

    # The same defect in another instance, through STOW-RS.
    ds = dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.7"
    response = _stow(http, live_http, to_bytes(ds))
    assert response.status_code == 202, response.text
    (item,) = response.json()[REFERENCED_SOP_SEQUENCE]["Value"]
    assert item[WARNING_REASON]["Value"] == [0xB006]
    assert "(0028,0008)" in item[REASON_TEXT]["Value"][0]
    assert "(0028,0008)" in response.headers["Warning"]
    assert archive.counts()["instances"] == 2
    (stored,) = archive.locate(sop_instance_uid="1.2.826.0.1.3680043.8.498.7")
    with archive.open_blob(stored.blob_key) as blob:
        kept = dcmread(io.BytesIO(blob.read()))
    assert kept["NumberOfFrames"].value == "1A" or str(kept.NumberOfFrames) == "1A"  # as sent


def test_a_dataset_in_the_other_vr_form_than_labelled_is_kept_with_a_warning(
    archive: Archive, http: requests.Session, live_http: str
) -> None:
    """pydicom's SC_rgb_jpeg.dcm: meta says JPEG baseline (explicit VR), dataset is implicit."""
    source = get_testdata_file("SC_rgb_jpeg.dcm")
    assert source is not None
    with open(source, "rb") as fp:
        data = fp.read()
    response = _stow(http, live_http, data)
    assert response.status_code == 202, response.text
    (item,) = response.json()[REFERENCED_SOP_SEQUENCE]["Value"]
    assert "implicit VR" in item[REASON_TEXT]["Value"][0]
    assert archive.counts()["instances"] == 1
    mangled = data.replace(b"\x08\x00\x08\x00", b"\x08\x00\x08\x00\xff\xff", 1)  # broken in both
    refused = _stow(http, live_http, mangled)
    assert refused.status_code == 409
    (failed,) = refused.json()[FAILED_SOP_SEQUENCE]["Value"]
    assert failed[FAILURE_REASON]["Value"] == [0xC000], failed  # malformed, not a duplicate
