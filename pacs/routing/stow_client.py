"""STOW-RS client: send stored instances to a DICOMweb endpoint, streamed, in bounded memory.

Each request is ``multipart/related; type="application/dicom"`` built as a
generator that reads the stored files in 1 MiB pieces, so memory holds one
piece whatever the study's size. Instances go in batches (a few hundred per
request) so that one refused request costs little.

Outcomes (PS3.18 10.5.3): 200 all stored; 202 some refused (the
FailedSOPSequence names them); 409 all refused, 4xx a refused request: the
instances' failure. A connection failure, a timeout, 401/403 (a credential
an administrator must fix), 408, 429 and 5xx are the destination's:
:class:`~pacs.routing.store_scu.DestinationUnavailable`, to retry later.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

from pacs.routing.sending import stored_file
from pacs.routing.store_scu import Delivery, DestinationUnavailable, Progress
from pacs.routing.values import Endpoint

if TYPE_CHECKING:
    from pacs.archive.retrieve import StoredInstance

log = logging.getLogger(__name__)

CHUNK = 1 << 20
BATCH_INSTANCES = 200
BATCH_BYTES = 512 << 20
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_INSTANCE = "00081155"
FAILURE_REASON = "00081197"
RETRYABLE = {401, 403, 408, 429}


def auth_headers(endpoint: Endpoint) -> dict[str, str]:
    """The Authorization header the endpoint's credential makes (none for ``auth=none``)."""
    if endpoint.auth == "bearer":
        return {"Authorization": f"Bearer {endpoint.secret}"}
    if endpoint.auth == "basic":
        pair = f"{endpoint.username}:{endpoint.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    return {}


class StowClient:
    """Posts stored instances to DICOMweb endpoints (one HTTP client, kept alive)."""

    def __init__(
        self, open_blob: Callable[[str], BinaryIO], spool_dir: Path, timeout: float = 60.0
    ) -> None:
        self.open_blob = open_blob
        self.spool_dir = spool_dir
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0))

    def close(self) -> None:
        self.client.close()

    def send(
        self,
        endpoint: Endpoint,
        instances: Sequence[StoredInstance],
        *,
        progress: Progress | None = None,
    ) -> Delivery:
        """Store ``instances`` at ``endpoint``; :class:`DestinationUnavailable` when it is down."""
        delivery = Delivery()
        for batch in _batches(instances):
            delivery.add(self._post(endpoint, batch))
            if progress is not None:
                progress(delivery.sent, len(delivery.failed))
        return delivery

    def _post(self, endpoint: Endpoint, batch: Sequence[StoredInstance]) -> Delivery:
        boundary = uuid.uuid4().hex
        headers = {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
            **auth_headers(endpoint),
        }
        unreadable: list[str] = []
        body = self._body(batch, boundary, unreadable)
        try:
            response = self.client.post(f"{endpoint.url}/studies", content=body, headers=headers)
        except httpx.HTTPError as exc:
            why = f"{endpoint.name}: {exc.__class__.__name__}: {exc}"
            raise DestinationUnavailable(why) from exc
        return _outcome(endpoint, batch, unreadable, response)

    def _body(
        self, batch: Sequence[StoredInstance], boundary: str, unreadable: list[str]
    ) -> Iterator[bytes]:
        for instance in batch:
            with stored_file(self.open_blob, self.spool_dir, instance) as item:
                if item is None:
                    unreadable.append(instance.sop_instance_uid)
                    continue
                yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                with item.stored_path.open("rb") as part:
                    while piece := part.read(CHUNK):
                        yield piece
                yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()


def _batches(instances: Sequence[StoredInstance]) -> Iterator[list[StoredInstance]]:
    batch: list[StoredInstance] = []
    size = 0
    for instance in instances:
        if batch and (len(batch) >= BATCH_INSTANCES or size + instance.size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(instance)
        size += instance.size
    if batch:
        yield batch


def _outcome(
    endpoint: Endpoint,
    batch: Sequence[StoredInstance],
    unreadable: list[str],
    response: httpx.Response,
) -> Delivery:
    code = response.status_code
    if code >= 500 or code in RETRYABLE:
        raise DestinationUnavailable(f"{endpoint.name}: STOW-RS answered HTTP {code}")
    delivery = Delivery()
    for uid in unreadable:
        delivery.failed.append(uid)
        delivery.reasons.append(f"{uid}: stored blob unreadable")
    sent_uids = [i.sop_instance_uid for i in batch if i.sop_instance_uid not in unreadable]
    if code == 200:
        delivery.sent += len(sent_uids)
        return delivery
    refused = _failed_uids(response) if code in (202, 409) else {}
    if code != 202 and not refused:  # a refused request: every instance of it
        refused = {uid: f"HTTP {code}" for uid in sent_uids}
    for uid in sent_uids:
        if uid in refused:
            delivery.failed.append(uid)
            delivery.reasons.append(f"{uid}: STOW-RS refused ({refused[uid]})")
        else:
            delivery.sent += 1
    return delivery


def _failed_uids(response: httpx.Response) -> dict[str, str]:
    """SOP Instance UID -> failure reason from a STOW-RS answer's FailedSOPSequence."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        body: Any = response.json()
        items = body.get(FAILED_SOP_SEQUENCE, {}).get("Value", [])
        found = {}
        for item in items:
            uid = item.get(REFERENCED_SOP_INSTANCE, {}).get("Value", [""])[0]
            reason = item.get(FAILURE_REASON, {}).get("Value", [""])[0]
            found[str(uid)] = f"0x{int(reason):04X}" if reason != "" else "failed"
        return found
    return {}
