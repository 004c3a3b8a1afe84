"""C-FIND SCP: Patient Root and Study Root queries through the archive's one matching engine.

The handler only translates: it checks who is asking, which level and which
information model, whether the query is hierarchical or (when negotiated)
relational, then hands the identifier to ``archive.search`` and streams each
match back as a pending response in the character set the calling AE can read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.uid import UID
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from pacs.archive import Archive
from pacs.archive.errors import Unavailable
from pacs.dicom import status as st
from pacs.dicom.status import (
    CANCELLED,
    IDENTIFIER_DOES_NOT_MATCH,
    PENDING,
    PENDING_OPTIONAL_KEYS_UNSUPPORTED,
    UNABLE_TO_PROCESS,
)
from pacs.dimse.identity import principal_of, why_refused
from pacs.dimse.output_charset import apply_profile
from pacs.query import Level, QueryError
from pacs.query.keys import UNIQUE_KEY

log = logging.getLogger(__name__)

FindResponse = tuple[int | Dataset, Dataset | None]

# The levels of each FIND information model, top down (PS3.4 C.6.1 and C.6.2).
MODEL_LEVELS: dict[str, tuple[Level, ...]] = {
    PatientRootQueryRetrieveInformationModelFind: (
        Level.PATIENT,
        Level.STUDY,
        Level.SERIES,
        Level.IMAGE,
    ),
    StudyRootQueryRetrieveInformationModelFind: (Level.STUDY, Level.SERIES, Level.IMAGE),
}
FIND_MODELS = tuple(MODEL_LEVELS)
_CONTROL_KEYS = ("QueryRetrieveLevel", "SpecificCharacterSet")
# SOP Class Extended Negotiation for Query/Retrieve (PS3.4 C.5.1.1): one byte per option.
RELATIONAL_QUERIES = 0  # byte 1: relational queries
COMBINED_DATETIME = 1  # byte 2: combined date and time matching (C.2.2.2.5)
_SUPPORTED_OPTIONS = (RELATIONAL_QUERIES, COMBINED_DATETIME)


class Refused(Exception):
    """A request we answer with a failure status (and audit as such)."""

    def __init__(self, code: int, comment: str) -> None:
        super().__init__(comment)
        self.code = code
        self.comment = comment


@dataclass(frozen=True)
class FindRequest:
    model: str
    level: Level
    identifier: Dataset  # matching and return keys only, text decoded
    relational: bool
    combined_datetime: bool = False  # negotiated: StudyDate and StudyTime as one range

    @property
    def returned_tags(self) -> frozenset[int]:
        """What a response may hold (PS3.4 C.4.1.1.3.2): the keys asked, the unique keys of
        the model's levels down to the query's, Specific Character Set; the control keys
        (Query/Retrieve Level, Retrieve AE Title) are added to each response."""
        levels = MODEL_LEVELS[self.model]
        unique = [UNIQUE_KEY[level] for level in levels[: levels.index(self.level) + 1]]
        tags = {int(elem.tag) for elem in self.identifier}
        tags.update(int(Tag(keyword)) for keyword in [*unique, "SpecificCharacterSet"])
        return frozenset(tags)


def negotiate_find_extended(asked: bytes) -> bytes | None:
    """Our answer to a FIND model's extended negotiation item: the options asked we support.

    Relational queries and combined date-time matching are supported; fuzzy
    semantic matching of names and timezone adjustment are answered 0.
    ``None`` (no item in our answer) when the peer asked for nothing we offer.
    """
    answer = bytes(
        1 if index in _SUPPORTED_OPTIONS and flag == 1 else 0
        for index, flag in enumerate(asked[:4])
    )
    return answer if any(answer) else None


def negotiated(event: Event, model: str, option: int) -> bool:
    """Whether this association agreed on extended negotiation ``option`` for ``model``."""
    info = event.assoc.acceptor.sop_class_extended.get(UID(model), b"")
    return len(info) > option and info[option] == 1


def _decoded_identifier(event: Event, fallback_charset: str) -> Dataset:
    """The request identifier with every text value decoded, minus the control keys."""
    identifier = event.identifier
    if "SpecificCharacterSet" not in identifier:
        identifier.SpecificCharacterSet = fallback_charset
    identifier.decode()
    keys = Dataset()
    for elem in identifier:
        if elem.keyword not in _CONTROL_KEYS:
            keys.add(elem)
    return keys


def _is_single_value(value: object) -> bool:
    if isinstance(value, MultiValue | list):  # a list of UIDs
        return False
    text = str(value or "")
    return bool(text) and not any(ch in text for ch in "*?\\")


def _check_hierarchy(levels: tuple[Level, ...], level: Level, keys: Dataset) -> None:
    """Baseline (hierarchical) query rules, PS3.4 C.4.1.2.1: unique keys above, none below."""
    position = levels.index(level)
    for above in levels[:position]:
        keyword = UNIQUE_KEY[above]
        if not _is_single_value(keys.get(keyword)):
            raise Refused(
                IDENTIFIER_DOES_NOT_MATCH, f"{keyword} must be one value (not relational)"
            )
    for below in levels[position + 1 :]:
        if UNIQUE_KEY[below] in keys:
            raise Refused(
                IDENTIFIER_DOES_NOT_MATCH, f"{UNIQUE_KEY[below]} is below the {level.name} level"
            )


def parse_request(archive: Archive, event: Event) -> FindRequest:
    """Validate the C-FIND request against its information model; raise Refused if it breaks it."""
    request = cast(C_FIND, event.request)
    model = str(request.AffectedSOPClassUID or "")
    levels = MODEL_LEVELS.get(model)
    if levels is None:
        raise Refused(0x0122, "SOP Class not supported")
    calling = event.assoc.requestor.ae_title.strip()
    try:
        identifier = event.identifier
        level_name = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
        keys = _decoded_identifier(event, archive.remote_aes.charset_fallback_for(calling))
    except Exception as exc:
        raise Refused(UNABLE_TO_PROCESS, f"cannot decode identifier: {exc}") from exc
    level = next((lv for lv in levels if lv.name == level_name), None)
    if level is None:
        allowed_names = "/".join(lv.name for lv in levels)
        raise Refused(
            IDENTIFIER_DOES_NOT_MATCH,
            f"QueryRetrieveLevel '{level_name[:16]}' is not {allowed_names} here",
        )
    relational = negotiated(event, model, RELATIONAL_QUERIES)
    if not relational:
        _check_hierarchy(levels, level, keys)
    combined = negotiated(event, model, COMBINED_DATETIME)
    return FindRequest(model, level, keys, relational, combined)


def _single(keys: Dataset, keyword: str) -> str | None:
    value = keys.get(keyword)
    return str(value) if _is_single_value(value) else None


def _response(
    match: Dataset, request: FindRequest, ae_title: str, profile: str
) -> tuple[int, Dataset]:
    """One pending response: the keys asked plus the control keys, in the caller's character set.

    The engine may return more than was asked (the unique keys of every level
    above, say PatientID in a Study Root query); a peer gets only what it
    asked and what the standard adds.
    """
    returned = request.returned_tags
    for tag in [elem.tag for elem in match if elem.tag not in returned]:
        del match[tag]
    missing = [elem for elem in request.identifier if elem.tag not in match]
    for elem in missing:  # keys the engine could not return: send them empty, warn (FF01)
        match.add_new(elem.tag, elem.VR, None)
    match.QueryRetrieveLevel = request.level.name
    match.RetrieveAETitle = ae_title
    apply_profile(match, profile)
    return (PENDING_OPTIONAL_KEYS_UNSUPPORTED if missing else PENDING), match


def make_find_handler(archive: Archive) -> Callable[[Event], Iterator[FindResponse]]:
    """An EVT_C_FIND handler bound to ``archive`` (both FIND information models)."""

    def handle_find(event: Event) -> Iterator[FindResponse]:
        try:
            yield from answer(event)
        except Unavailable as exc:  # the search, or the audit record of a refusal
            log.error("C-FIND from %s: index unavailable: %s", principal_of(event).name, exc)
            yield st.status(st.OUT_OF_RESOURCES, "index unavailable, retry later"), None

    def answer(event: Event) -> Iterator[FindResponse]:
        principal = principal_of(event)
        try:
            refused = why_refused(archive, event, "find")
            if refused is not None:
                raise Refused(UNABLE_TO_PROCESS, refused)
            request = parse_request(archive, event)
            result = archive.search(
                request.level,
                request.identifier,
                fuzzy=archive.settings.cfind_fuzzy_names,
                combined_datetime=request.combined_datetime,
            )
        except Refused as exc:
            archive.audit.record(principal, "c-find", f"failure: {exc.comment}")
            yield st.status(exc.code, exc.comment), None
            return
        except QueryError as exc:
            archive.audit.record(principal, "c-find", f"failure: {exc}")
            yield st.status(UNABLE_TO_PROCESS, str(exc)), None
            return
        keys = ",".join(elem.keyword or str(elem.tag) for elem in request.identifier if elem.value)
        keys = keys or "none: universal"
        archive.audit.record(
            principal,
            "c-find",
            patient_id=_single(request.identifier, "PatientID"),
            study_uid=_single(request.identifier, "StudyInstanceUID"),
            detail=f"{request.level.name} keys [{keys}]: {len(result)} matches"[:256],
            patients=result.patient_ids(),
        )
        profile = archive.remote_aes.charset_profile_for(principal.name)
        for match in result.datasets():
            # Let the association's reader thread run: a C-CANCEL only becomes visible
            # once it has read it, and a fast generator can otherwise send everything first.
            time.sleep(0)
            if event.is_cancelled:
                yield CANCELLED, None
                return
            yield _response(match, request, archive.settings.ae_title, profile)

    return handle_find
