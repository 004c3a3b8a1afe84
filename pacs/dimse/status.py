"""C-STORE status codes a modality understands (PS3.4 B.2.3, PS3.7 C)."""

from __future__ import annotations

from pydicom.dataset import Dataset

SUCCESS = 0x0000
WARNING_DUPLICATE_KEPT = 0xB000  # the newcomer was not stored; the original is kept
DUPLICATE_REFUSED = 0x0111  # Duplicate SOP Instance (PS3.7 C.5.8), under the 'reject' policy
OUT_OF_RESOURCES = 0xA700  # storage or index unavailable: the sender should retry
DATASET_DOES_NOT_MATCH = 0xA900  # dataset does not match the request (SOP Class / Instance)
CANNOT_UNDERSTAND = 0xC000  # not DICOM, truncated, malformed UIDs


def error_comment(comment: str) -> str:
    """An ErrorComment (LO): one value, cut to its 64 characters."""
    return comment.replace("\\", "/")[:64]


def status(code: int, comment: str = "") -> Dataset:
    """A status dataset for pynetdicom's handlers."""
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = error_comment(comment)
    return ds
