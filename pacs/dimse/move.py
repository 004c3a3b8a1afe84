"""C-MOVE SCP (Patient and Study Root): send stored instances to a registered destination.

The destination AE title must be a registered, enabled peer (``archive.remote_aes``;
its host and port come from there, never from the request: 0xA801 otherwise), and the
calling AE must be registered with the "move" service. Sub-operations go out
on a new association that proposes each SOP class with its stored syntax, each
instance sent from its stored file, never loaded whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_MOVE
from pynetdicom.events import Event
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.dimse import fastpath
from pacs.dimse.identity import principal_of
from pacs.dimse.reactor import make_event_driven
from pacs.dimse.retrieve_plan import contexts_for, send_from_files
from pacs.dimse.sub_operations import audit_sent, checked_plan, refusal, store_each

# pynetdicom opens the destination association before reading a failure status from the
# handler; a bare Verification context keeps that harmless when the request is refused.
REFUSAL_CONTEXTS = {"contexts": [build_context(Verification)]}


def _without_nagle(event: Event) -> None:
    """Sub-association sockets skip Nagle too: each C-STORE would otherwise wait ~40 ms."""
    from pacs.dimse.server import set_nodelay  # server imports this module

    sock = event.assoc.dul.socket
    if sock is not None and sock.socket is not None:
        set_nodelay(sock.socket)


def _stock_path_handlers() -> list[Any]:
    """The sub-association acknowledges the destination's segments at once, as ours do."""
    from pacs.dimse.server import stock_path_handlers  # server imports this module

    return stock_path_handlers()


def _event_driven(event: Event) -> None:
    """The sub-association's reactors wake on work too (see :mod:`pacs.dimse.reactor`)."""
    if fastpath.active():
        make_event_driven(event.assoc)


def make_move_handler(archive: Archive) -> Callable[[Event], Iterator[Any]]:
    def sends_files(event: Event) -> None:
        """The sub-association pynetdicom opens sends :class:`StoredFile` items from disk."""
        send_from_files(event.assoc, archive.settings.retrieve_convert_max_bytes)

    def handle_move(event: Event) -> Iterator[Any]:
        principal = principal_of(event)
        request = cast(C_MOVE, event.request)
        destination_title = str(request.MoveDestination or "").strip()
        destination = archive.remote_aes.destination(destination_title)
        if destination is None:
            archive.audit.record(
                principal, "c-move", f"failure: unknown destination {destination_title}"
            )
            yield None, None  # pynetdicom answers 0xA801, move destination unknown
            return
        found = checked_plan(archive, event, "move", principal)
        if isinstance(found, Dataset):
            yield (*destination, REFUSAL_CONTEXTS)
            yield from refusal(found)
            return
        yield (
            *destination,
            {
                "contexts": contexts_for(found),
                "ae_title": archive.settings.ae_title,
                "evt_handlers": [
                    (evt.EVT_CONN_OPEN, _without_nagle),
                    (evt.EVT_CONN_OPEN, _event_driven),
                    (evt.EVT_CONN_OPEN, sends_files),
                    *_stock_path_handlers(),
                ],
            },
        )
        sent = yield from store_each(archive, event, found)
        audit_sent(archive, principal, "move", found, sent, f"to {destination_title}: ")

    return handle_move
