"""Objects to send: generated slices in each uncompressed syntax and real compressed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.data import get_testdata_file
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from tests.dicom_factory import ct_slice, write

UNCOMPRESSED = (
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
)

# Real files from pydicom / pydicom-data, one SOP Instance UID each (several of
# pydicom's MR_small_* variants share one, so only one of them is here).
REAL_FILES = (
    "CT_small.dcm",  # explicit VR little endian, private tags, trailing padding
    "MR_small_bigendian.dcm",  # explicit VR big endian
    "image_dfl.dcm",  # deflated explicit VR little endian
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline
    "JPGExtended.dcm",  # JPEG extended (12 bit)
    "JPEG-LL.dcm",  # JPEG lossless SV1
    "emri_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless, 10 frames
    "US1_J2KR.dcm",  # JPEG 2000 lossless
    "JPEG2000.dcm",  # JPEG 2000
    "explicit_VR-UN.dcm",  # JPEG 2000 with UN elements
    "SC_rgb_rle.dcm",  # RLE lossless
)
# storescu cannot find the SOP Class/Instance UID in these (they are encoded as UN).
NOT_FOR_STORESCU = frozenset({"explicit_VR-UN.dcm"})


def real_file(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not in pydicom / pydicom-data"
    return Path(path)


def generated(folder: Path, study_uid: str | None = None) -> list[Path]:
    """One CT slice per uncompressed transfer syntax, all in one study."""
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    paths = []
    for index, syntax in enumerate(UNCOMPRESSED):
        ds = ct_slice(study_uid, series_uid, index=index, patient_id="BN-TS")
        ds.file_meta.TransferSyntaxUID = syntax
        if syntax == ExplicitVRBigEndian:  # pixel values in the syntax's byte order
            pixels = np.frombuffer(ds.PixelData, dtype="<u2").astype(">u2")
            ds.PixelData = pixels.tobytes()
        ds.ImageComments = "odd"  # an odd-length value padded by the writer
        paths.append(write(ds, folder / f"{syntax.name.replace(' ', '_')}.dcm"))
    return paths
