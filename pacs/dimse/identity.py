"""Who is calling over DICOM, and what they may ask for.

A DICOM peer proves nothing but its calling AE title, its address and, over
DICOM TLS, its client certificate. The archive's peer configuration
(``archive.remote_aes``, kept in the database) decides: query and retrieval
only for a registered AE calling from its registered address (and with its
certificate when configured); storage for any AE unless the archive is strict
or keeps a list of allowed calling AEs. Every refusal is logged and audited
with its reason.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from pynetdicom import evt
from pynetdicom.events import Event

from pacs.archive import Archive
from pacs.archive.errors import Unavailable
from pacs.auth.principal import Kind, Principal, Role
from pacs.config import Caller
from pacs.dimse.refusals import RefusalRecorder

log = logging.getLogger(__name__)

# A-ASSOCIATE-RJ (PS3.8 9.3.4): permanent, by the service user, calling AE title not recognised.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)
# Transient, by the service provider, temporary congestion: our index cannot be read.
REJECT_TRANSIENT = (0x02, 0x03, 0x01)


def principal_of(event: Event) -> Principal:
    requestor = event.assoc.requestor
    return Principal(
        Kind.AE,
        _calling_title(event),
        Role.MODALITY,
        f"{requestor.address}:{requestor.port}",
    )


def _calling_title(event: Event) -> str:
    requestor = event.assoc.requestor
    title = requestor.ae_title
    if not title and requestor.primitive is not None:  # before ACSE negotiation (EVT_REQUESTED)
        title = requestor.primitive.calling_ae_title
    return str(title or "").strip()


def _tls_names(event: Event) -> frozenset[str] | None:
    """The names on the caller's client certificate; None when it called over plain TCP."""
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if not isinstance(sock, ssl.SSLSocket):
        return None
    certificate: dict[str, Any] = sock.getpeercert() or {}
    names = {
        value for rdn in certificate.get("subject", ()) for key, value in rdn if key == "commonName"
    }
    names |= {
        value
        for kind, value in certificate.get("subjectAltName", ())
        if kind in ("DNS", "IP Address", "URI")
    }
    return frozenset(names)


def caller_of(event: Event) -> Caller:
    return Caller(_calling_title(event), str(event.assoc.requestor.address), _tls_names(event))


def why_refused(archive: Archive, event: Event, service: str) -> str | None:
    """Why the caller may not use ``service`` ("store", "find", "move", "get"); None if it may.

    The reason is logged here; the caller audits it with the request it refuses.
    """
    caller = caller_of(event)
    verdict = archive.remote_aes.permit(caller, service)
    if verdict.allowed:
        return None
    log.warning(
        "DICOM C-%s refused to %s from %s: %s",
        service.upper(),
        caller.ae_title,
        caller.address,
        verdict.reason,
    )
    return f"C-{service.upper()} not authorized: {verdict.reason}"


def allowed(archive: Archive, event: Event, service: str) -> bool:
    """Whether the calling AE may use ``service`` (see :func:`why_refused` for the reason)."""
    return why_refused(archive, event, service) is None


def make_admission_handler(archive: Archive) -> Any:
    """An EVT_REQUESTED handler: refuse an association from a caller the configuration
    does not admit, before any negotiation, and say why in the log and the audit."""

    recorder = RefusalRecorder(archive)

    def admit(event: Event) -> None:
        caller = caller_of(event)
        try:
            verdict = archive.remote_aes.admit(caller)
            reject = None if verdict.allowed else REJECT_CALLING_AE
            reason = verdict.reason
        except Unavailable:
            if not archive.settings.dicom_strict:
                return  # open mode: each request answers 0xA700 while the index is down
            reject, reason = REJECT_TRANSIENT, "peer configuration unreadable (index unavailable)"
        if reject is None:
            return
        recorder.refused(principal_of(event), caller.address, reason)
        acse = event.assoc.acse
        acse.send_reject(*reject)
        evt.trigger(event.assoc, evt.EVT_REJECTED, {})
        event.assoc.kill()

    return admit
