"""Generate DICOM test objects (CT-like slices, Vietnamese names) instead of committing files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def ct_slice(
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    *,
    index: int = 0,
    size: int = 64,
    patient_name: str = "Nguyễn^Văn An",
    patient_id: str = "BN0001",
    charset: str | None = "ISO_IR 192",
    seed: int | None = None,
) -> Dataset:
    """A small but valid CT Image Storage instance with a noisy phantom."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(CT_IMAGE_STORAGE)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid or generate_uid())
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = "M"
    ds.StudyDate = "20261120"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC0001"
    ds.StudyID = "1"
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [0, 0, float(index)]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1.0
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    rng = np.random.default_rng(seed if seed is not None else index)
    ds.PixelData = rng.integers(0, 4095, (size, size), dtype=np.uint16).tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_bytes(ds))
    return path
