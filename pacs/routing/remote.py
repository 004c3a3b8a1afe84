"""Query and retrieve from another PACS: C-FIND SCU, and C-MOVE SCU to our own AE title.

The remote PACS sends what we move on a new association to this archive's
DIMSE listener (it must know our AE title, host and port), where it is
ingested like any other C-STORE.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

from pacs.routing.store_scu import HANDLERS, DestinationUnavailable

if TYPE_CHECKING:
    from pacs.config import RemoteAE

LEVELS = ("STUDY", "SERIES")
# What a study-level query may match on and what it returns (PS3.4 C.6.2.1).
STUDY_KEYS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyDescription",
    "ModalitiesInStudy",
    "StudyInstanceUID",
    "NumberOfStudyRelatedInstances",
    "NumberOfStudyRelatedSeries",
)
SERIES_KEYS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "NumberOfSeriesRelatedInstances",
)
MAX_VALUE = 64
PENDING = (0xFF00, 0xFF01)


class BadQuery(ValueError):
    """A query or retrieve request we will not send (unknown key, level, value too long)."""


@dataclass
class MoveProgress:
    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0
    status: int | None = None


def query_dataset(level: str, keys: dict[str, str]) -> Dataset:
    """The identifier for ``level`` with the given matching keys and every return key."""
    level = level.upper()
    if level not in LEVELS:
        raise BadQuery(f"level: one of {', '.join(LEVELS)}")
    allowed = STUDY_KEYS if level == "STUDY" else SERIES_KEYS
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword in allowed:
        setattr(identifier, keyword, "")
    for keyword, value in keys.items():
        if keyword not in allowed:
            raise BadQuery(f"{keyword[:40]!r} is not a {level} key ({', '.join(allowed)})")
        text = str(value)
        if len(text) > MAX_VALUE or not text.isprintable():
            raise BadQuery(f"{keyword}: at most {MAX_VALUE} printable characters")
        setattr(identifier, keyword, text)
    if level == "SERIES" and not keys.get("StudyInstanceUID"):
        raise BadQuery("a SERIES query needs StudyInstanceUID")
    return identifier


@contextlib.contextmanager
def _association(
    calling_ae: str, peer: RemoteAE, context: str, tls: ssl.SSLContext | None, timeout: float
) -> Iterator[Association]:
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = min(timeout, 10.0)
    ae.add_requested_context(context)
    tls_args = (tls, peer.host) if tls is not None else None
    try:
        assoc = ae.associate(
            peer.host,
            peer.port,
            ae_title=peer.ae_title,
            tls_args=tls_args,
            evt_handlers=HANDLERS,
        )
    except (OSError, ssl.SSLError) as exc:
        ae.shutdown()
        raise DestinationUnavailable(f"{peer.ae_title}: {exc}") from exc
    try:
        if not assoc.is_established:
            raise DestinationUnavailable(
                f"{peer.ae_title}: no association with {peer.host}:{peer.port}"
            )
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def find(
    calling_ae: str,
    peer: RemoteAE,
    identifier: Dataset,
    *,
    limit: int = 500,
    tls: ssl.SSLContext | None = None,
    timeout: float = 30.0,
) -> tuple[list[dict[str, Any]], bool]:
    """C-FIND at ``peer``: the matches as DICOM JSON (at most ``limit``), and whether more
    were left out (the query is then cancelled)."""
    matches: list[dict[str, Any]] = []
    truncated = False
    with _association(
        calling_ae, peer, StudyRootQueryRetrieveInformationModelFind, tls, timeout
    ) as assoc:
        responses = assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind)
        for status, found in responses:
            code = int(status.Status) if status is not None and "Status" in status else None
            if code is None:
                raise DestinationUnavailable(f"{peer.ae_title}: no C-FIND response")
            if code not in PENDING:
                if code != 0:
                    raise BadQuery(f"{peer.ae_title} answered the C-FIND with 0x{code:04X}")
                break
            if len(matches) >= limit:
                truncated = True
                assoc.abort()  # enough: a C-CANCEL is not awaited by every peer
                break
            if found is not None:
                matches.append(found.to_json_dict())
    return matches, truncated


def move(
    calling_ae: str,
    peer: RemoteAE,
    identifier: Dataset,
    *,
    progress: Callable[[MoveProgress], None] | None = None,
    tls: ssl.SSLContext | None = None,
    timeout: float = 120.0,
) -> MoveProgress:
    """C-MOVE at ``peer`` with ourselves (``calling_ae``) as the move destination."""
    state = MoveProgress()
    with _association(
        calling_ae, peer, StudyRootQueryRetrieveInformationModelMove, tls, timeout
    ) as assoc:
        responses = assoc.send_c_move(
            identifier, calling_ae, StudyRootQueryRetrieveInformationModelMove
        )
        for status, _identifier in responses:
            if status is None or "Status" not in status:
                raise DestinationUnavailable(f"{peer.ae_title}: no C-MOVE response")
            state.status = int(status.Status)
            state.completed = int(status.get("NumberOfCompletedSuboperations", state.completed))
            state.failed = int(status.get("NumberOfFailedSuboperations", state.failed))
            state.warning = int(status.get("NumberOfWarningSuboperations", state.warning))
            state.remaining = int(status.get("NumberOfRemainingSuboperations", 0) or 0)
            if progress is not None:
                progress(state)
    return state
