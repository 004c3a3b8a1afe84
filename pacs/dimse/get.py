"""C-GET SCP (Patient and Study Root): storage sub-operations on the caller's own association.

The caller proposes the storage SOP classes it can receive with SCP role
selection; pynetdicom sends each instance as a C-STORE back over the same
association. Only AEs registered with the "get" service may retrieve.
Each instance goes out from its stored file, never loaded whole (see
:mod:`pacs.dimse.retrieve_plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from pacs.archive import Archive
from pacs.dimse.identity import principal_of
from pacs.dimse.retrieve_plan import send_from_files
from pacs.dimse.sub_operations import audit_sent, checked_plan, refusal, store_each


def make_get_handler(archive: Archive) -> Callable[[Event], Iterator[Any]]:
    def handle_get(event: Event) -> Iterator[Any]:
        principal = principal_of(event)
        found = checked_plan(archive, event, "get", principal)
        if isinstance(found, Dataset):
            yield from refusal(found)
            return
        send_from_files(event.assoc, archive.settings.retrieve_convert_max_bytes)
        sent = yield from store_each(archive, event, found)
        audit_sent(archive, principal, "get", found, sent)

    return handle_get
