"""The DIMSE services we answer, registered by SOP class: one dispatcher per DIMSE event.

pynetdicom binds one handler per event (``EVT_C_FIND``, ``EVT_N_CREATE``, ...)
whatever the SOP class of the request, and negotiates presentation contexts
from a separate list. Kept apart, the two drift: a SOP class accepted with no
handler behind it, a handler that must sort out SOP classes it was never meant
for. Here a service is registered once, as (event, SOP classes, handler), and
both the handlers bound to the association (one :class:`Dispatcher` per event,
routing by the request's SOP class) and the presentation contexts (see
:meth:`ServiceRegistry.add_contexts`) come from that one table. Adding Modality
Worklist, MPPS (N-CREATE/N-SET) or storage commitment (N-ACTION, and the
N-EVENT-REPORT we send) is a registration, not an edit of the server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, evt
from pynetdicom.events import Event, InterventionEvent

log = logging.getLogger(__name__)

Handler = Callable[[Event], Any]
# What a peer's SOP Class Extended Negotiation item asks -> what we accept (None: nothing).
ExtendedNegotiation = Callable[[bytes], bytes | None]

SOP_CLASS_NOT_SUPPORTED = 0x0122  # PS3.7 C.4.1 (and 0x0122 for DIMSE-N, PS3.7 C.5)
_GENERATOR_EVENTS = (evt.EVT_C_FIND, evt.EVT_C_GET, evt.EVT_C_MOVE)
# The DIMSE-N requests that name their SOP class in Requested SOP Class UID (PS3.7 10.1).
_REQUESTED_CLASS_EVENTS = (evt.EVT_N_ACTION, evt.EVT_N_DELETE, evt.EVT_N_GET, evt.EVT_N_SET)


class DuplicateRegistration(ValueError):
    """Two services claim one SOP class for one DIMSE event."""


@dataclass(frozen=True)
class Registration:
    """One SOP class answered by one handler for one DIMSE event."""

    event: InterventionEvent
    sop_class: str
    handler: Handler
    transfer_syntaxes: tuple[str, ...] | None  # None: pynetdicom's default list
    scu_role: bool | None
    scp_role: bool | None

    @property
    def negotiation(self) -> tuple[tuple[str, ...] | None, bool | None, bool | None]:
        return self.transfer_syntaxes, self.scu_role, self.scp_role


def requested_sop_class(event: Event) -> str:
    """The SOP class a request is about, as PS3.7 names it for its DIMSE service."""
    request = event.request
    field = (
        "RequestedSOPClassUID" if event.event in _REQUESTED_CLASS_EVENTS else "AffectedSOPClassUID"
    )
    return str(getattr(request, field, None) or "")


class Dispatcher:
    """The one handler pynetdicom calls for an event: the registered one for the SOP class.

    A request whose SOP class has no handler for this event (a peer using a
    context for a service it does not offer) is answered 0x0122, SOP Class not
    supported, in the form pynetdicom expects from a handler of that event.
    """

    def __init__(self, event: InterventionEvent) -> None:
        self.event = event
        self._handlers: dict[str, Handler] = {}

    def add(self, sop_class: str, handler: Handler) -> None:
        if sop_class in self._handlers:
            raise DuplicateRegistration(f"{self.event.name} for {sop_class} registered twice")
        self._handlers[sop_class] = handler

    def handler_for(self, sop_class: str) -> Handler | None:
        """The handler registered for ``sop_class``, or ``None``."""
        return self._handlers.get(sop_class)

    def __call__(self, event: Event) -> Any:
        sop_class = requested_sop_class(event)
        handler = self._handlers.get(sop_class)
        if handler is not None:
            return handler(event)
        log.warning("%s for unsupported SOP class %r", self.event.name, sop_class[:64])
        return _unsupported(self.event)


def _unsupported(event: InterventionEvent) -> Any:
    status = Dataset()
    status.Status = SOP_CLASS_NOT_SUPPORTED
    if event is evt.EVT_C_MOVE:
        # A C-MOVE handler names the destination first; (None, None) makes pynetdicom
        # answer "move destination unknown" without a status of ours: fail up front.
        return iter([(None, None)])
    if event in _GENERATOR_EVENTS:
        return iter([(status, None)])
    if event in (evt.EVT_C_ECHO, evt.EVT_C_STORE):
        return status
    return status, None  # DIMSE-N handlers answer (status, dataset)


class ServiceRegistry:
    """Which handler answers which SOP class for which DIMSE event, and how it is negotiated."""

    def __init__(self) -> None:
        self._registrations: list[Registration] = []
        self._dispatchers: dict[InterventionEvent, Dispatcher] = {}
        self._extended: dict[str, ExtendedNegotiation] = {}

    def register(
        self,
        event: InterventionEvent,
        sop_classes: Iterable[str],
        handler: Handler,
        *,
        transfer_syntaxes: Sequence[str] | None = None,
        scu_role: bool | None = None,
        scp_role: bool | None = None,
        extended_negotiation: ExtendedNegotiation | None = None,
    ) -> None:
        """Answer ``event`` for each of ``sop_classes`` with ``handler``.

        ``transfer_syntaxes`` is our preference order for their presentation
        contexts (pynetdicom accepts the first of ours the peer proposed);
        ``scu_role``/``scp_role`` the role selection we accept (a C-GET caller
        taking the Storage SCP role). ``extended_negotiation`` answers a
        peer's SOP Class Extended Negotiation item for these SOP classes.
        Raises :class:`DuplicateRegistration` if one is already answered.
        """
        dispatcher = self._dispatchers.setdefault(event, Dispatcher(event))
        syntaxes = tuple(str(uid) for uid in transfer_syntaxes) if transfer_syntaxes else None
        for sop_class in map(str, sop_classes):
            dispatcher.add(sop_class, handler)
            self._registrations.append(
                Registration(event, sop_class, handler, syntaxes, scu_role, scp_role)
            )
            if extended_negotiation is not None:
                self._extended[sop_class] = extended_negotiation

    def dispatcher(self, event: InterventionEvent) -> Dispatcher | None:
        return self._dispatchers.get(event)

    def handler_for(self, event: InterventionEvent, sop_class: str) -> Handler | None:
        """The handler answering ``event`` for ``sop_class``, or ``None``."""
        dispatcher = self._dispatchers.get(event)
        return dispatcher.handler_for(sop_class) if dispatcher else None

    def handlers(self) -> list[tuple[InterventionEvent, Handler]]:
        """What to bind to an association: a dispatcher per event, extended negotiation."""
        bound: list[tuple[InterventionEvent, Handler]] = list(self._dispatchers.items())
        if self._extended:
            bound.append((evt.EVT_SOP_EXTENDED, self._negotiate_extended))
        return bound

    def sop_classes(self) -> list[str]:
        """Every SOP class we accept, each once, in registration order."""
        return list(dict.fromkeys(r.sop_class for r in self._registrations))

    def contexts(self) -> Iterator[tuple[str, tuple[str, ...] | None, bool | None, bool | None]]:
        """(SOP class, transfer syntaxes, SCU role, SCP role) of each context we accept.

        A SOP class answered for several events (MPPS: N-CREATE and N-SET) has
        one context; its registrations must agree on how it is negotiated.
        """
        merged: dict[str, Registration] = {}
        for registration in self._registrations:
            first = merged.setdefault(registration.sop_class, registration)
            if first.negotiation != registration.negotiation:
                raise DuplicateRegistration(
                    f"{registration.sop_class}: {registration.event.name} negotiates it "
                    f"differently from {first.event.name}"
                )
        for sop_class, registration in merged.items():
            yield (sop_class, *registration.negotiation)

    def add_contexts(self, ae: AE) -> None:
        """Have ``ae`` accept a presentation context for every registered SOP class."""
        for sop_class, syntaxes, scu_role, scp_role in self.contexts():
            kwargs: dict[str, Any] = {"scu_role": scu_role, "scp_role": scp_role}
            if syntaxes is not None:
                kwargs["transfer_syntax"] = list(syntaxes)
            ae.add_supported_context(sop_class, **kwargs)

    def _negotiate_extended(self, event: Event) -> dict[UID, bytes]:
        """``EVT_SOP_EXTENDED``: each registered service answers for its own SOP classes."""
        asked: dict[UID, bytes] = getattr(event, "app_info", {})
        accepted: dict[UID, bytes] = {}
        for uid, info in asked.items():
            negotiate = self._extended.get(str(uid))
            answer = negotiate(info) if negotiate is not None else None
            if answer is not None:
                accepted[uid] = answer
        return accepted
