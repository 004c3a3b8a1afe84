"""Test objects for WADO/STOW: generated instances with bulk data and frames, stored files."""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import IngestResult, Origin
from tests.dicom_factory import ct_slice, to_bytes


def with_bulk(ds: Dataset, size: int = 4000) -> Dataset:
    """Add a large OB value (an encapsulated document) that metadata must give as a BulkDataURI."""
    ds.EncapsulatedDocument = bytes(np.random.default_rng(7).integers(0, 256, size, np.uint8))
    return ds


def multi_frame(frames: int = 3, size: int = 32, study_uid: str | None = None) -> Dataset:
    ds = ct_slice(study_uid, size=size)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.2"
    ds.NumberOfFrames = frames
    rng = np.random.default_rng(frames)
    ds.PixelData = rng.integers(0, 4095, (frames, size, size), dtype=np.uint16).tobytes()
    return ds


def frame_bytes(ds: Dataset, index: int) -> bytes:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    step = len(ds.PixelData) // frames
    return bytes(ds.PixelData[index * step : (index + 1) * step])


def ingest(archive: Archive, data: bytes) -> IngestResult:
    return archive.ingest(io.BytesIO(data), Origin(door="import"))


def ingest_ds(archive: Archive, ds: Dataset) -> tuple[IngestResult, bytes]:
    data = to_bytes(ds)
    return ingest(archive, data), data


def fresh_uids(ds: Dataset) -> Dataset:
    """A pydicom-data file under new UIDs, so each test's archive holds its own copy."""
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds
