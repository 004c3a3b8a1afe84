"""DICOM status codes, one table for both doors (PS3.4 Annex B and C, PS3.7 Annex C).

DIMSE answers them in the Status of a response; STOW-RS puts the same codes
in FailureReason (PS3.18 Table 10.5.3-2), so a modality and a web client hear
the same verdict for the same failure. Some codes carry a different name per
service (0xC000 is "cannot understand" for C-STORE, "unable to process" for
C-FIND/C-MOVE/C-GET): both names are here, with one value.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

SUCCESS = 0x0000

# Storage (C-STORE, STOW-RS FailureReason)
WARNING_DUPLICATE_KEPT = 0xB000  # the newcomer was not stored; the original is kept
# Stored as sent, but values that do not decode (a bad VR value) were left out of the index.
WARNING_ELEMENTS_DISCARDED = 0xB006
PROCESSING_FAILURE = 0x0110  # PS3.7 C.5.5: a failure inside the archive
DUPLICATE_REFUSED = 0x0111  # Duplicate SOP Instance (PS3.7 C.5.8), under the 'reject' policy
NOT_AUTHORIZED = 0x0124  # PS3.7 C.5.17: refused to this caller
OUT_OF_RESOURCES = 0xA700  # storage or index unavailable: the sender should retry
DATASET_DOES_NOT_MATCH = 0xA900  # dataset does not match the request (SOP Class / Instance)
CANNOT_UNDERSTAND = 0xC000  # not DICOM, truncated, malformed UIDs

# Query/Retrieve (C-FIND, C-MOVE, C-GET)
PENDING = 0xFF00
PENDING_OPTIONAL_KEYS_UNSUPPORTED = 0xFF01
CANCELLED = 0xFE00
IDENTIFIER_DOES_NOT_MATCH = 0xA900  # level not in the model, hierarchical keys missing
UNABLE_TO_PROCESS = 0xC000  # a key we cannot match on, or a caller not authorized


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
