"""MPPS SCP with a pynetdicom SCU: in progress, completed, then no more changes; the order
(received over MLLP) follows, and the performed series are compared with the stored ones."""

from __future__ import annotations

import io

from hl7.client import MLLPClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.dimse.server import DimseServer
from tests.dicom_factory import ct_slice, to_bytes
from tests.hl7.messages import listening, orm


def _step(status: str, accession: str = "ACC1001") -> Dataset:
    ds = Dataset()
    scheduled = Dataset()
    scheduled.AccessionNumber = accession
    scheduled.StudyInstanceUID = generate_uid()
    ds.ScheduledStepAttributesSequence = [scheduled]
    ds.PatientName = "Nguyễn^Thị Bích"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientID = "BN123"
    ds.PerformedProcedureStepStatus = status
    ds.Modality = "CT"
    return ds


def test_mpps_in_progress_completed_then_closed(
    archive: Archive, dimse_server: DimseServer
) -> None:
    with listening(archive) as listener, MLLPClient("127.0.0.1", listener.port) as client:
        assert b"MSA|AA|" in client.send_message(orm("MP1"))
    stored = ct_slice(patient_id="BN123")
    archive.ingest(io.BytesIO(to_bytes(stored)), Origin(door="import"))
    ae = AE(ae_title="CT01")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        uid = generate_uid()
        status, _ = assoc.send_n_create(_step("IN PROGRESS"), ModalityPerformedProcedureStep, uid)
        assert status.Status == 0x0000
        order = archive.workflow.order("ACC1001")
        assert order is not None and order.status == "in progress"
        again, _ = assoc.send_n_create(_step("IN PROGRESS"), ModalityPerformedProcedureStep, uid)
        assert again.Status == 0x0111  # duplicate SOP instance
        wrong, _ = assoc.send_n_create(
            _step("COMPLETED"), ModalityPerformedProcedureStep, generate_uid()
        )
        assert wrong.Status == 0x0106
        done = Dataset()
        done.PerformedProcedureStepStatus = "COMPLETED"
        series = Dataset()
        series.SeriesInstanceUID = stored.SeriesInstanceUID
        missing = Dataset()
        missing.SeriesInstanceUID = generate_uid()
        done.PerformedSeriesSequence = [series, missing]
        status, _ = assoc.send_n_set(done, ModalityPerformedProcedureStep, uid)
        assert status.Status == 0x0000
        order = archive.workflow.order("ACC1001")
        assert order is not None and order.status == "completed"
        later = Dataset()
        later.PerformedProcedureStepStatus = "DISCONTINUED"
        closed, _ = assoc.send_n_set(later, ModalityPerformedProcedureStep, uid)
        assert closed.Status == 0x0110  # may no longer be updated
        unknown, _ = assoc.send_n_set(later, ModalityPerformedProcedureStep, generate_uid())
        assert unknown.Status == 0x0112
    finally:
        assoc.release()
    view = archive.workflow.performed.get(uid)
    assert view is not None and view.status == "COMPLETED"
    assert view.stored_series == [stored.SeriesInstanceUID]
    assert len(view.performed_series) == 2
    order = archive.workflow.order("ACC1001")
    assert order is not None and order.status == "completed"
