"""Storage Commitment (PS3.4 J): the modality asks whether we safely hold its images.

N-ACTION (the door) queues one durable job per transaction; the job checks each
referenced instance (indexed under that SOP class, its stored bytes read back
and their SHA-256 equal to the one recorded at ingest) and reports with
N-EVENT-REPORT on a new association to the modality, found among the remote
AEs. A modality that cannot be reached makes the job fail and retry with
backoff, then land in the dead letters (the jobs API lists them).
Failure reasons (PS3.3 C.14.1.1): 0x0112 no such object instance, 0x0119
class-instance conflict, 0x0110 processing failure (bytes missing or altered).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pacs.config import RemoteAEs
from pacs.index.models import Instance
from pacs.jobs import Jobs
from storage import BlobNotFound, BlobStore, StorageError

log = logging.getLogger(__name__)

JOB = "storage-commitment"
WELL_KNOWN_INSTANCE = "1.2.840.10008.1.20.1.1"
NO_SUCH_OBJECT, CLASS_INSTANCE_CONFLICT, PROCESSING_FAILURE = 0x0112, 0x0119, 0x0110
MAX_REFERENCES = 100_000


class Commitments:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        remote_aes: RemoteAEs,
        jobs: Jobs,
        ae_title: str,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.remote_aes = remote_aes
        self.jobs = jobs
        self.ae_title = ae_title
        jobs.handle(JOB, self._job, backoff_s=30.0)

    def request(self, calling_ae: str, transaction_uid: str, refs: list[tuple[str, str]]) -> None:
        """Queue the verification and report of one commitment request (ValueError: too big)."""
        if len(refs) > MAX_REFERENCES:
            raise ValueError(f"more than {MAX_REFERENCES} references in one request")
        self.jobs.enqueue(
            JOB,
            {"ae": calling_ae, "transaction": transaction_uid, "refs": [list(r) for r in refs]},
            dedup_key=f"commit:{calling_ae}:{transaction_uid}",
            max_attempts=8,
        )

    def verify(
        self, refs: list[tuple[str, str]]
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str, int]]]:
        """(committed references, failed references with their reason)."""
        ok: list[tuple[str, str]] = []
        failed: list[tuple[str, str, int]] = []
        uids = [uid for _, uid in refs]
        with self.sessions() as session:
            rows = {
                row.sop_instance_uid: (row.sop_class_uid, row.blob_key, row.sha256)
                for row in session.execute(
                    select(
                        Instance.sop_instance_uid,
                        Instance.sop_class_uid,
                        Instance.blob_key,
                        Instance.sha256,
                    ).where(Instance.sop_instance_uid.in_(uids))
                )
            }
        for sop_class, uid in refs:
            found = rows.get(uid)
            if found is None:
                failed.append((sop_class, uid, NO_SUCH_OBJECT))
            elif found[0] != sop_class:
                failed.append((sop_class, uid, CLASS_INSTANCE_CONFLICT))
            elif not self._bytes_verify(found[1], found[2]):
                failed.append((sop_class, uid, PROCESSING_FAILURE))
            else:
                ok.append((sop_class, uid))
        return ok, failed

    def _bytes_verify(self, key: str, sha256: str) -> bool:
        digest = hashlib.sha256()
        try:
            for chunk in self.store.iter_chunks(key):
                digest.update(chunk)
        except BlobNotFound:
            return False
        return digest.hexdigest() == sha256

    def _job(self, payload: dict[str, Any]) -> None:
        refs = [(str(c), str(i)) for c, i in payload["refs"]]
        try:
            ok, failed = self.verify(refs)
        except StorageError:
            raise  # the store is down: retry later rather than report failures
        remote = self.remote_aes.get(str(payload["ae"]))  # unknown: fails, retried, dead letter
        info = Dataset()
        info.TransactionUID = str(payload["transaction"])
        info.RetrieveAETitle = self.ae_title
        info.ReferencedSOPSequence = [_ref(c, i) for c, i in ok]
        if failed:
            info.FailedSOPSequence = [_ref(c, i, reason) for c, i, reason in failed]
        ae = AE(ae_title=self.ae_title)
        ae.add_requested_context(StorageCommitmentPushModel)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        assoc = ae.associate(remote.host, remote.port, ae_title=remote.ae_title)
        if not assoc.is_established:
            raise ConnectionError(f"cannot associate with {remote.ae_title} for the report")
        try:
            status, _ = assoc.send_n_event_report(
                info, 2 if failed else 1, StorageCommitmentPushModel, WELL_KNOWN_INSTANCE
            )
        finally:
            assoc.release()
        if status is None or int(getattr(status, "Status", 0xC000)) != 0x0000:
            raise ConnectionError(f"{remote.ae_title} did not accept the commitment report")
        log.info(
            "storage commitment %s to %s: %d committed, %d failed",
            payload["transaction"],
            remote.ae_title,
            len(ok),
            len(failed),
        )


def _ref(sop_class: str, uid: str, reason: int | None = None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = uid
    if reason is not None:
        item.FailureReason = reason
    return item
