"""A malformed sequence outside the identity attributes is kept with a warning (issue 22 item 7).

An undefined-length sequence whose item declares a shorter length than it
holds, or whose item carries a wrong tag, is read by pydicom up to its
delimiter; every other element is intact. Orthanc keeps such an object and so
do we: stored as sent, the sequence left out of its DICOM JSON, the sender
warned (C-STORE from a pynetdicom peer 0xB006 with the element in Error Comment, STOW-RS 202 with
WarningReason and the same text). A malformed sequence that pydicom cannot
read past (it swallows the identity attributes) or one the index reads (Other
Patient IDs) stays refused with a reason. The objects are made here by byte
surgery on pydicom output; no binary file is committed.
"""

from __future__ import annotations

import struct
from pathlib import Path

import requests
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from tests.dicom_factory import ct_slice, to_bytes
from tests.dimse.peers import send_files
from tests.interop.helpers import body, stored_bytes

REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
REASON_TEXT = "0040A160"
REQUEST_ATTRIBUTES = "00400275"
BOUNDARY = "malformed-sequence"


def _with_sequence(index: int, keyword: str = "RequestAttributesSequence") -> tuple[Dataset, bytes]:
    """A CT slice with an undefined-length ``keyword`` holding one defined-length item."""
    ds = ct_slice(index=index)
    item = Dataset()
    if keyword == "OtherPatientIDsSequence":
        item.PatientID = "OTHER-1"
        item.TypeOfPatientID = "TEXT"
    else:
        item.RequestedProcedureID = "RP1"
        item.ScheduledProcedureStepID = "SPS1"
    setattr(ds, keyword, Sequence([item]))
    ds[keyword].is_undefined_length = True
    return ds, to_bytes(ds)


def _item_header_at(data: bytes, tag: bytes) -> int:
    """Offset of the first item header of the explicit VR little endian sequence ``tag``."""
    start = data.index(tag + b"SQ\x00\x00\xff\xff\xff\xff")
    item = start + 12
    assert data[item : item + 4] == b"\xfe\xff\x00\xe0"
    return item


def _item_length(data: bytes, tag: bytes, delta: int) -> bytes:
    """The item's declared length changed by ``delta`` (the sequence stays delimited)."""
    item = _item_header_at(data, tag)
    (length,) = struct.unpack("<I", data[item + 4 : item + 8])
    return data[: item + 4] + struct.pack("<I", length + delta) + data[item + 8 :]


def _item_tag(data: bytes, tag: bytes) -> bytes:
    """The item's tag replaced by an ordinary element's (0040,0009)."""
    item = _item_header_at(data, tag)
    return data[:item] + b"\x40\x00\x09\x00" + data[item + 4 :]


def _stow(http: requests.Session, url: str, data: bytes) -> requests.Response:
    payload = (
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    return http.post(
        f"{url}/dicom-web/studies", data=payload, headers={"Content-Type": content_type}
    )


def _assert_kept(
    archive: Archive, http: requests.Session, url: str, ds: Dataset, sent: bytes
) -> None:
    stored, _sha = stored_bytes(archive, str(ds.SOPInstanceUID))
    assert body(stored) == body(sent)  # as sent, the malformed sequence included
    found = http.get(
        f"{url}/dicom-web/studies", params={"StudyInstanceUID": str(ds.StudyInstanceUID)}
    )
    assert found.status_code == 200 and len(found.json()) == 1, found.text
    instance = (
        f"{url}/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    (metadata,) = http.get(f"{instance}/metadata").json()
    assert REQUEST_ATTRIBUTES not in metadata  # the unreadable element is left out
    assert metadata["00100020"]["Value"] == [str(ds.PatientID)]
    frame = http.get(
        f"{instance}/frames/1",
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
    )
    assert frame.status_code == 200 and bytes(ds.PixelData) in frame.content  # located right


def test_a_malformed_sequence_outside_identity_is_stored_with_a_warning_by_both_doors(
    archive: Archive,
    dimse_server: DimseServer,
    http: requests.Session,
    live_http: str,
    tmp_path: Path,
) -> None:
    ds, data = _with_sequence(1)
    sent = _item_length(data, b"\x40\x00\x75\x02", -4)
    path = tmp_path / "short-item.dcm"
    path.write_bytes(sent)
    # DCMTK's storescu parses a file before sending and will not send this one
    # ("Length of element larger than explicit length of surrounding item"): a
    # pynetdicom peer sends the file's bytes as they are, as a modality would.
    ((code, comment),) = send_files(dimse_server.port, [path])
    assert code == 0xB006 and comment.startswith("(0040,0275)"), (hex(code), comment)
    assert archive.counts()["instances"] == 1
    _assert_kept(archive, http, live_http, ds, sent)

    ds, data = _with_sequence(2)
    sent = _item_tag(data, b"\x40\x00\x75\x02")
    response = _stow(http, live_http, sent)
    assert response.status_code == 202, response.text
    (item,) = response.json()[REFERENCED_SOP_SEQUENCE]["Value"]
    assert item[WARNING_REASON]["Value"] == [0xB006]
    (text,) = item[REASON_TEXT]["Value"]
    assert text.startswith("(0040,0275) RequestAttributesSequence is a malformed sequence")
    assert "left out of the metadata" in text
    assert "(0040,0275)" in response.headers["Warning"]
    assert archive.counts()["instances"] == 2
    _assert_kept(archive, http, live_http, ds, sent)


def test_a_malformed_sequence_that_hides_identity_or_is_indexed_stays_refused(
    archive: Archive,
    dimse_server: DimseServer,
    http: requests.Session,
    live_http: str,
    tmp_path: Path,
) -> None:
    # An item longer than declared: pydicom reads the rest of the dataset into it.
    _ds, data = _with_sequence(3)
    swallowing = _item_length(data, b"\x40\x00\x75\x02", 8)
    path = tmp_path / "long-item.dcm"
    path.write_bytes(swallowing)
    ((code, comment),) = send_files(dimse_server.port, [path])
    assert code == 0xC000 and comment.startswith("cannot parse dataset"), (hex(code), comment)
    response = _stow(http, live_http, swallowing)
    assert response.status_code == 409, response.text
    (failed,) = response.json()[FAILED_SOP_SEQUENCE]["Value"]
    assert failed[FAILURE_REASON]["Value"] == [0xC000]
    assert failed[REASON_TEXT]["Value"][0].startswith("cannot parse dataset")

    # The same defect pydicom reads past, in a sequence the index reads: refused.
    _ds, data = _with_sequence(4, "OtherPatientIDsSequence")
    indexed = _item_length(data, b"\x10\x00\x02\x10", -4)
    response = _stow(http, live_http, indexed)
    assert response.status_code == 409, response.text
    (failed,) = response.json()[FAILED_SOP_SEQUENCE]["Value"]
    assert "(0010,1002)" in failed[REASON_TEXT]["Value"][0]
    assert archive.counts()["instances"] == 0
