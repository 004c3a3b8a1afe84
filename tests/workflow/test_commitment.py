"""Storage Commitment SCP: a pynetdicom SCU asks, and receives the report on its own listening
port (a new association), from a job: committed, unknown, class conflict, altered bytes."""

from __future__ import annotations

import io
import threading
import time

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    StorageCommitmentPushModel,
)

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.config.values import RemoteAE
from pacs.dimse.server import DimseServer
from tests.conftest import free_port
from tests.dicom_factory import ct_slice, to_bytes


def _ref(sop_class: str, uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = uid
    return item


def test_commitment_report_on_a_new_association(
    archive: Archive, dimse_server: DimseServer
) -> None:
    good, altered = ct_slice(), ct_slice()
    archive.ingest(io.BytesIO(to_bytes(good)), Origin(door="import"))
    key = archive.ingest(io.BytesIO(to_bytes(altered)), Origin(door="import")).blob_key
    # The stored bytes of one instance change behind the archive's back.
    archive.store.put(key, io.BytesIO(to_bytes(altered)[:-10] + b"0123456789"))

    reports: list[tuple[int, Dataset]] = []
    received = threading.Event()

    def on_report(event: Event) -> int:
        reports.append((int(event.request.EventTypeID), event.event_information))
        received.set()
        return 0x0000

    port = free_port()
    modality = AE(ae_title="CT01")
    modality.add_supported_context(StorageCommitmentPushModel)
    scp = modality.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)]
    )
    archive.remote_aes.add(RemoteAE(ae_title="CT01", host="127.0.0.1", port=port))
    running = archive.jobs.start(scheduler=False)
    try:
        scu = AE(ae_title="CT01")
        scu.add_requested_context(StorageCommitmentPushModel)
        assoc = scu.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
        assert assoc.is_established
        request = Dataset()
        request.TransactionUID = transaction = generate_uid()
        missing = generate_uid()
        request.ReferencedSOPSequence = [
            _ref(CTImageStorage, good.SOPInstanceUID),
            _ref(CTImageStorage, missing),
            _ref(MRImageStorage, good.SOPInstanceUID),
            _ref(CTImageStorage, altered.SOPInstanceUID),
        ]
        try:
            status, _ = assoc.send_n_action(
                request, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1"
            )
        finally:
            assoc.release()
        assert status.Status == 0x0000
        deadline = time.monotonic() + 30
        while not received.is_set() and time.monotonic() < deadline:
            received.wait(0.1)
    finally:
        running.stop()
        scp.shutdown()
    assert reports, "no N-EVENT-REPORT arrived"
    event_type, info = reports[0]
    assert event_type == 2  # some failed
    assert info.TransactionUID == transaction
    assert [r.ReferencedSOPInstanceUID for r in info.ReferencedSOPSequence] == [good.SOPInstanceUID]
    failures = {(f.ReferencedSOPInstanceUID, f.ReferencedSOPClassUID): f.FailureReason
                for f in info.FailedSOPSequence}  # fmt: skip
    assert failures == {
        (missing, CTImageStorage): 0x0112,
        (good.SOPInstanceUID, MRImageStorage): 0x0119,
        (altered.SOPInstanceUID, CTImageStorage): 0x0110,
    }
