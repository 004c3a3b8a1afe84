"""Metadata names Pixel Data's bulk data (issue 22 item 5), and the URI returns the bytes.

Instance, series and study metadata carry a BulkDataURI for Pixel Data (PS3.18
F.2.6; OHIF and other viewers build their image loaders from it), taken from
the index's stored JSON. dicomweb-client follows it: native pixels come back
as the stored value, encapsulated ones one frame per part, in the syntax the
Accept header negotiates (application/octet-stream: decoded).
"""

from __future__ import annotations

import numpy as np
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.data import get_testdata_file
from sqlalchemy import select, update

from pacs.archive import Archive
from pacs.index.models import Instance
from tests.dicom_factory import ct_slice
from tests.wado.helpers import fresh_uids, ingest_ds, multi_frame

PIXEL_DATA = "7FE00010"


def _pixel_uris(web: DICOMwebClient, study: str, series: str, sop: str) -> set[str]:
    uris = set()
    for metadata in (
        web.retrieve_study_metadata(study),
        web.retrieve_series_metadata(study, series),
        [web.retrieve_instance_metadata(study, series, sop)],
    ):
        (item,) = [m for m in metadata if m["00080018"]["Value"] == [sop]]
        uris.add(item[PIXEL_DATA]["BulkDataURI"])
    return uris


def test_native_pixel_data_uri_returns_the_stored_value(
    archive: Archive, web: DICOMwebClient, live_http: str
) -> None:
    ds = multi_frame(3)
    ingest_ds(archive, ds)
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    (uri,) = _pixel_uris(web, study, series, sop)
    base = f"{live_http}/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    assert uri == f"{base}/bulkdata/{PIXEL_DATA}"
    assert web.retrieve_bulkdata(uri) == [ds.PixelData]


def test_encapsulated_pixel_data_uri_returns_frames_decoded_or_as_stored(
    archive: Archive, web: DICOMwebClient
) -> None:
    path = get_testdata_file("emri_small_jpeg_2k_lossless.dcm")
    assert path is not None
    ds = fresh_uids(dcmread(path))
    ingest_ds(archive, ds)
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    metadata = web.retrieve_instance_metadata(study, series, sop)
    assert metadata[PIXEL_DATA]["vr"] == "OB"
    uri = metadata[PIXEL_DATA]["BulkDataURI"]
    decoded = web.retrieve_bulkdata(
        uri, media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),)
    )
    assert len(decoded) == int(ds.NumberOfFrames)
    reference = dcmread(path).pixel_array  # lossless: the decoded frames are the same
    for index, frame in enumerate(decoded):
        assert np.array_equal(
            np.frombuffer(frame, reference.dtype).reshape(reference[index].shape), reference[index]
        )
    as_stored = web.retrieve_bulkdata(uri, media_types=(("image/jp2", "1.2.840.10008.1.2.4.90"),))
    assert len(as_stored) == int(ds.NumberOfFrames)
    assert as_stored[0][:4] == b"\xff\x4f\xff\x51"  # a JPEG 2000 codestream, as stored


def test_rows_indexed_before_the_uri_get_it_from_their_json(
    archive: Archive, web: DICOMwebClient
) -> None:
    ds = ct_slice()
    ingest_ds(archive, ds)
    with archive.sessions.begin() as session:
        stored = session.scalar(select(Instance.dicom_json))
        assert stored is not None and f'"{PIXEL_DATA}"' in stored
        old = stored.split(f',"{PIXEL_DATA}"')[0] + "}"
        session.execute(update(Instance).values(dicom_json=old))
    metadata = web.retrieve_instance_metadata(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    )
    assert metadata[PIXEL_DATA]["vr"] == "OW"
    assert web.retrieve_bulkdata(metadata[PIXEL_DATA]["BulkDataURI"]) == [ds.PixelData]
