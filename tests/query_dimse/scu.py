"""A pynetdicom C-FIND client for the tests and the agreement table (relational when asked)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pynetdicom import AE, build_context
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

PATIENT_ROOT = PatientRootQueryRetrieveInformationModelFind
STUDY_ROOT = StudyRootQueryRetrieveInformationModelFind


@dataclass
class FindOutcome:
    status: int
    comment: str = ""
    pending_statuses: list[int] = field(default_factory=list)
    matches: list[Dataset] = field(default_factory=list)


@contextmanager
def find_association(
    port: int,
    calling: str = "WORKSTATION",
    relational: bool = False,
    combined_datetime: bool = False,
) -> Iterator[Association]:
    """One association offering both FIND models, with the extended negotiation asked for:
    relational queries (byte 1) and combined date-time matching (byte 2), PS3.4 C.5.1.1."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.requested_contexts = [build_context(PATIENT_ROOT), build_context(STUDY_ROOT)]
    ext_neg = []
    if relational or combined_datetime:
        for model in (PATIENT_ROOT, STUDY_ROOT):
            item = SOPClassExtendedNegotiation()
            item.sop_class_uid = model
            item.service_class_application_information = bytes([relational, combined_datetime])
            ext_neg.append(item)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS", ext_neg=ext_neg or None)
    assert assoc.is_established, "association with the DIMSE server refused"
    if assoc.dul.socket is not None and assoc.dul.socket.socket is not None:
        # Without it each C-FIND waits ~40 ms for a delayed ACK (FIELD-NOTES: Nagle).
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        yield assoc
    finally:
        assoc.release()


def c_find(assoc: Association, model: str, identifier: Dataset) -> FindOutcome:
    """Send one C-FIND and collect every response."""
    outcome = FindOutcome(status=-1)
    for status, match in assoc.send_c_find(identifier, model):
        assert status is not None and "Status" in status, "no C-FIND response (timeout/abort)"
        code = int(status.Status)
        if code in (0xFF00, 0xFF01):
            outcome.pending_statuses.append(code)
            assert match is not None
            outcome.matches.append(match)
            continue
        outcome.status = code
        outcome.comment = str(status.get("ErrorComment", ""))
    return outcome


def query(level: str, charset: str | None = "ISO_IR 192", **keys: object) -> Dataset:
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds
