"""End to end, on SQLite and PostgreSQL: order by HL7 over MLLP -> worklist C-FIND -> MPPS in
progress -> C-STORE -> MPPS completed -> storage commitment success -> order completed, the
stored study matched to the order."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from hl7.client import MLLPClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    StorageCommitmentPushModel,
)

from pacs.archive import Archive
from pacs.config.values import RemoteAE
from pacs.dimse.server import DimseServer
from tests.conftest import free_port
from tests.dicom_factory import ct_slice
from tests.hl7.messages import listening, orm


def test_order_worklist_mpps_store_commitment(archive: Archive, dimse_server: DimseServer) -> None:
    with listening(archive) as listener, MLLPClient("127.0.0.1", listener.port) as client:
        assert b"MSA|AA|" in client.send_message(orm("E2E1", accession="E2E100"))
    reports: list[int] = []
    received = threading.Event()

    def on_report(event: Event) -> int:
        reports.append(int(event.request.EventTypeID))
        received.set()
        return 0x0000

    port = free_port()
    console = AE(ae_title="CT01")
    console.add_supported_context(StorageCommitmentPushModel)
    scp = console.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)]
    )
    archive.remote_aes.add(RemoteAE(ae_title="CT01", host="127.0.0.1", port=port))
    running = archive.jobs.start(scheduler=False)
    try:
        for context in (
            ModalityWorklistInformationFind,
            ModalityPerformedProcedureStep,
            CTImageStorage,
            StorageCommitmentPushModel,
        ):
            console.add_requested_context(context)
        assoc = console.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
        assert assoc.is_established
        try:
            keys = Dataset()
            keys.PatientName = keys.PatientID = keys.AccessionNumber = keys.StudyInstanceUID = ""
            step = Dataset()
            step.Modality = "CT"
            step.ScheduledProcedureStepStartDate = "20261204"
            keys.ScheduledProcedureStepSequence = [step]
            items = [
                ds
                for status, ds in assoc.send_c_find(keys, ModalityWorklistInformationFind)
                if ds is not None and status.Status in (0xFF00, 0xFF01)
            ]
            (item,) = items
            assert str(item.PatientName) == "Nguyễn^Thị Bích"
            mpps = Dataset()
            scheduled = Dataset()
            scheduled.AccessionNumber = item.AccessionNumber
            scheduled.StudyInstanceUID = item.StudyInstanceUID
            mpps.ScheduledStepAttributesSequence = [scheduled]
            mpps.PerformedProcedureStepStatus = "IN PROGRESS"
            mpps_uid = generate_uid()
            status, _ = assoc.send_n_create(mpps, ModalityPerformedProcedureStep, mpps_uid)
            assert status.Status == 0x0000
            image = ct_slice(study_uid=item.StudyInstanceUID, patient_id=item.PatientID,
                             patient_name=str(item.PatientName))  # fmt: skip
            image.AccessionNumber = item.AccessionNumber
            assert assoc.send_c_store(image).Status == 0x0000
            done = Dataset()
            done.PerformedProcedureStepStatus = "COMPLETED"
            series = Dataset()
            series.SeriesInstanceUID = image.SeriesInstanceUID
            done.PerformedSeriesSequence = [series]
            status, _ = assoc.send_n_set(done, ModalityPerformedProcedureStep, mpps_uid)
            assert status.Status == 0x0000
            commit = Dataset()
            commit.TransactionUID = generate_uid()
            ref = Dataset()
            ref.ReferencedSOPClassUID = CTImageStorage
            ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
            commit.ReferencedSOPSequence = [ref]
            status, _ = assoc.send_n_action(
                commit, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1"
            )
            assert status.Status == 0x0000
        finally:
            assoc.release()
        deadline = time.monotonic() + 30
        while not received.is_set() and time.monotonic() < deadline:
            received.wait(0.1)
    finally:
        running.stop()
        scp.shutdown()
    assert reports == [1]  # every instance committed
    order = archive.workflow.order("E2E100")
    assert order is not None and order.status == "completed"
    step_view = archive.workflow.performed.get(mpps_uid)
    assert step_view is not None and step_view.stored_series == [image.SeriesInstanceUID]
    archive.events.check_stable(now=datetime.now(UTC) + timedelta(hours=1))
    assert archive.workflow.match_study(item.StudyInstanceUID) == "E2E100"
