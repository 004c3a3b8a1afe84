"""C-MOVE SCP (Patient and Study Root): send stored instances to a registered destination.

The destination AE title must be registered in ``remote_aes`` (its host and
port come from there, never from the request: 0xA801 otherwise), and the
calling AE must be registered with the "move" service. Sub-operations go out
on a new association that proposes each SOP class with its stored syntax, each
instance sent from its stored file, never loaded whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.dimse_primitives import C_MOVE
from pynetdicom.events import Event
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from sqlalchemy.exc import SQLAlchemyError

from pacs.archive import Archive
from pacs.dimse import status as st
from pacs.dimse.identity import allowed, principal_of
from pacs.dimse.retrieve_plan import (
    BadIdentifier,
    contexts_for,
    plan,
    send_from_files,
    stored_file,
)

log = logging.getLogger(__name__)

UNKNOWN_DESTINATION = 0xA801
IDENTIFIER_DOES_NOT_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000
PENDING = 0xFF00
CANCELLED = 0xFE00
UNREADABLE = "blob unreadable"
# pynetdicom opens the destination association before reading a failure status from the
# handler; a bare Verification context keeps that harmless when the request is refused.
REFUSAL_CONTEXTS = {"contexts": [build_context(Verification)]}


def _without_nagle(event: Event) -> None:
    """Sub-association sockets skip Nagle too: each C-STORE would otherwise wait ~40 ms."""
    from pacs.dimse.server import set_nodelay  # server imports this module

    sock = event.assoc.dul.socket
    if sock is not None and sock.socket is not None:
        set_nodelay(sock.socket)


def _sends_files(event: Event) -> None:
    """The sub-association pynetdicom opens sends :class:`StoredFile` items from disk."""
    send_from_files(event.assoc)


def _destination(archive: Archive, title: str) -> tuple[str, int] | None:
    for remote in archive.settings.remote_aes:
        if remote.ae_title == title:
            return remote.host, remote.port
    return None


def make_move_handler(archive: Archive) -> Callable[[Event], Iterator[Any]]:
    def handle_move(event: Event) -> Iterator[Any]:
        principal = principal_of(event)
        request = cast(C_MOVE, event.request)
        destination_title = str(request.MoveDestination or "").strip()
        destination = _destination(archive, destination_title)
        if destination is None:
            archive.audit.record(
                principal, "c-move", f"failure: unknown destination {destination_title}"
            )
            yield None, None  # pynetdicom answers 0xA801, move destination unknown
            return
        try:
            if not allowed(archive, event, "move"):
                raise PermissionError("calling AE not authorized for C-MOVE")
            found = plan(archive, event.identifier)
        except PermissionError as exc:
            archive.audit.record(principal, "c-move", f"failure: {exc}")
            yield (*destination, REFUSAL_CONTEXTS)
            yield 1  # with 0, pynetdicom answers success before our failure status
            yield st.status(UNABLE_TO_PROCESS, str(exc)), None
            return
        except BadIdentifier as exc:
            archive.audit.record(principal, "c-move", f"failure: {exc}")
            yield (*destination, REFUSAL_CONTEXTS)
            yield 1  # with 0, pynetdicom answers success before our failure status
            yield st.status(IDENTIFIER_DOES_NOT_MATCH, str(exc)), None
            return
        except SQLAlchemyError:
            yield (*destination, REFUSAL_CONTEXTS)
            yield 1  # with 0, pynetdicom answers success before our failure status
            yield st.status(st.OUT_OF_RESOURCES, "index unavailable, retry later"), None
            return
        yield (
            *destination,
            {
                "contexts": contexts_for(found),
                "ae_title": archive.settings.ae_title,
                "evt_handlers": [
                    (evt.EVT_CONN_OPEN, _without_nagle),
                    (evt.EVT_CONN_OPEN, _sends_files),
                ],
            },
        )
        yield len(found.instances)
        sent = 0
        for instance in found.instances:
            if event.is_cancelled:
                yield CANCELLED, None
                break
            with stored_file(archive, instance) as item:
                if item is None:
                    yield PENDING, UNREADABLE  # pynetdicom counts a non-dataset as a failed sub-op
                    continue
                sent += 1
                yield PENDING, item  # sent while we wait here; a spooled copy goes after
        archive.audit.record(
            principal,
            "c-move",
            patient_id=found.patient_id,
            study_uid=",".join(found.study_uids)[:64],
            detail=f"to {destination_title}: {sent} of {len(found.instances)} instances",
        )

    return handle_move
