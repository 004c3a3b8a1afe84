"""Who is calling over DICOM, and what they may ask for.

A DICOM peer proves nothing but its calling AE title and its address, so
query and retrieval are open only to AEs an administrator registered with the
service they need; storage is open to any AE unless an allow-list is set.
"""

from __future__ import annotations

from pynetdicom.events import Event

from pacs.archive import Archive
from pacs.auth.principal import Kind, Principal, Role


def principal_of(event: Event) -> Principal:
    requestor = event.assoc.requestor
    return Principal(
        Kind.AE,
        requestor.ae_title.strip(),
        Role.MODALITY,
        f"{requestor.address}:{requestor.port}",
    )


def allowed(archive: Archive, event: Event, service: str) -> bool:
    """Whether the calling AE is registered for ``service`` ("store", "find", "move", "get")."""
    calling = event.assoc.requestor.ae_title.strip()
    for remote in archive.settings.remote_aes:
        if remote.ae_title == calling and service in remote.services:
            return True
    if service == "store":
        allow_list = archive.settings.allowed_calling_aes
        return not allow_list or calling in allow_list
    return False
