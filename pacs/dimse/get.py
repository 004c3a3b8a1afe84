"""C-GET SCP (Patient and Study Root): storage sub-operations on the caller's own association.

The caller proposes the storage SOP classes it can receive with SCP role
selection; pynetdicom sends each instance as a C-STORE back over the same
association. Only AEs registered with the "get" service may retrieve.
Each instance goes out from its stored file, never loaded whole (see
:mod:`pacs.dimse.retrieve_plan`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from pynetdicom.events import Event
from sqlalchemy.exc import SQLAlchemyError

from pacs.archive import Archive
from pacs.dimse import status as st
from pacs.dimse.identity import allowed, principal_of
from pacs.dimse.move import (
    CANCELLED,
    IDENTIFIER_DOES_NOT_MATCH,
    PENDING,
    UNABLE_TO_PROCESS,
    UNREADABLE,
)
from pacs.dimse.retrieve_plan import BadIdentifier, plan, send_from_files, stored_file

log = logging.getLogger(__name__)


def make_get_handler(archive: Archive) -> Callable[[Event], Iterator[Any]]:
    def handle_get(event: Event) -> Iterator[Any]:
        principal = principal_of(event)
        try:
            if not allowed(archive, event, "get"):
                raise PermissionError("calling AE not authorized for C-GET")
            found = plan(archive, event.identifier)
        except PermissionError as exc:
            archive.audit.record(principal, "c-get", f"failure: {exc}")
            yield 1  # with 0, pynetdicom answers success before our failure status
            yield st.status(UNABLE_TO_PROCESS, str(exc)), None
            return
        except BadIdentifier as exc:
            archive.audit.record(principal, "c-get", f"failure: {exc}")
            yield 1  # with 0, pynetdicom answers success before our failure status
            yield st.status(IDENTIFIER_DOES_NOT_MATCH, str(exc)), None
            return
        except SQLAlchemyError:
            yield 1  # with 0, pynetdicom answers success before our failure status
            yield st.status(st.OUT_OF_RESOURCES, "index unavailable, retry later"), None
            return
        send_from_files(event.assoc)
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
            "c-get",
            patient_id=found.patient_id,
            study_uid=",".join(found.study_uids)[:64],
            detail=f"{sent} of {len(found.instances)} instances",
        )

    return handle_get
