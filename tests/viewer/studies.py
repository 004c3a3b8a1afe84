"""Test studies for the viewer, generated (CT with a known block pattern) or from pydicom-data."""

from __future__ import annotations

import io

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from tests.dicom_factory import ct_slice, to_bytes

SIZE = 128
BLOCKS = 4  # 4 x 4 uniform blocks of 32 x 32 pixels
WINDOW_CENTER, WINDOW_WIDTH = 40, 400
SPACING = 0.7  # mm per pixel, so a 96-pixel line is 67.2 mm


def block_hu(slice_index: int, row: int, col: int) -> int:
    """Hounsfield value of a block: all inside the window, none black, different per slice."""
    return -120 + 22 * ((row * BLOCKS + col + slice_index) % (BLOCKS * BLOCKS))


def pattern_slice(
    study_uid: str,
    series_uid: str,
    index: int,
    study_description: str = "CT sọ não",
    patient_name: str = "Nguyễn^Văn An",
    patient_id: str = "BN0001",
) -> Dataset:
    ds = ct_slice(
        study_uid,
        series_uid,
        index=index,
        size=SIZE,
        patient_name=patient_name,
        patient_id=patient_id,
    )
    block = SIZE // BLOCKS
    hu = np.zeros((SIZE, SIZE), dtype=np.int32)
    for row in range(BLOCKS):
        for col in range(BLOCKS):
            hu[row * block : (row + 1) * block, col * block : (col + 1) * block] = block_hu(
                index, row, col
            )
    ds.PixelData = (hu + 1024).astype(np.uint16).tobytes()  # RescaleIntercept -1024
    ds.PixelSpacing = [SPACING, SPACING]
    ds.WindowCenter = WINDOW_CENTER
    ds.WindowWidth = WINDOW_WIDTH
    ds.StudyDescription = study_description
    ds.SeriesDescription = "Axial 5 mm"
    return ds


def ingest(archive: Archive, ds: Dataset) -> None:
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))


def store_pattern_ct(
    archive: Archive,
    slices: int = 5,
    study_description: str = "CT sọ não",
    patient_name: str = "Nguyễn^Văn An",
    patient_id: str = "BN0001",
    study_date: str | None = None,
    first_z: float | None = None,
) -> list[Dataset]:
    """A pattern CT; with ``first_z``, an axial series in its own frame of reference whose
    slices lie 1 mm apart from ``first_z`` (to test scrolling by position across studies)."""
    study_uid, series_uid, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    datasets = [
        pattern_slice(study_uid, series_uid, i, study_description, patient_name, patient_id)
        for i in range(slices)
    ]
    for i, ds in enumerate(datasets):
        if study_date:
            ds.StudyDate = ds.SeriesDate = study_date
        if first_z is not None:
            ds.FrameOfReferenceUID = frame_of_reference
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [0, 0, first_z + i]
        ingest(archive, ds)
    return datasets


def store_testdata(archive: Archive, name: str) -> Dataset:
    """A pydicom-data file under fresh UIDs (each test's archive holds its own copy)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    assert path is not None, f"pydicom-data has no {name}"
    ds = dcmread(path)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientName = ds.get("PatientName") or "Test^Data"
    ds.PatientID = ds.get("PatientID") or "TD1"
    ingest(archive, ds)
    return ds
