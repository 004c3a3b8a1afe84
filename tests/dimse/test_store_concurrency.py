"""Parallel associations: every instance stored once, one bad sender disturbs nobody."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.dicom import status as st
from pacs.dimse.server import DimseServer
from tests.dicom_factory import ct_slice
from tests.dimse.peers import status_of, store_ae

ASSOCIATIONS = 4
PER_ASSOCIATION = 25


def _send_study(port: int, sender: int) -> list[int]:
    """One association, one study of PER_ASSOCIATION slices; sender 0 slips in a bad one."""
    study_uid, series_uid = generate_uid(), generate_uid()
    assoc = store_ae(f"CT{sender:02d}", sop_classes=[CTImageStorage]).associate(
        "127.0.0.1", port, ae_title="PACS"
    )
    assert assoc.is_established
    codes = []
    try:
        for index in range(PER_ASSOCIATION):
            ds = ct_slice(study_uid, series_uid, index=index, patient_id=f"BN{sender}")
            codes.append(status_of(assoc.send_c_store(ds))[0])
            if sender == 0 and index == PER_ASSOCIATION // 2:
                bad: Dataset = ct_slice(study_uid, series_uid, index=99)
                bad.SeriesInstanceUID = "1.2.3/../../4"
                codes.append(status_of(assoc.send_c_store(bad))[0])
    finally:
        assoc.release()
    return codes


def test_parallel_associations_store_everything(
    archive: Archive, dimse_server: DimseServer
) -> None:
    with ThreadPoolExecutor(ASSOCIATIONS) as pool:
        results = list(pool.map(lambda n: _send_study(dimse_server.port, n), range(ASSOCIATIONS)))
    bad_sender, *others = results
    assert bad_sender.count(st.CANNOT_UNDERSTAND) == 1
    assert [code for code in bad_sender if code != st.CANNOT_UNDERSTAND] == [0] * PER_ASSOCIATION
    assert others == [[0] * PER_ASSOCIATION] * (ASSOCIATIONS - 1)
    assert archive.counts() == {
        "studies": ASSOCIATIONS,
        "series": ASSOCIATIONS,
        "instances": ASSOCIATIONS * PER_ASSOCIATION,
    }
    assert len(list(archive.store.list())) == ASSOCIATIONS * PER_ASSOCIATION
    per_study = Counter((i.study_uid, i.patient_id) for i in archive.locate())
    assert sorted(per_study.values()) == [PER_ASSOCIATION] * ASSOCIATIONS
    assert sorted(patient for _, patient in per_study) == [f"BN{n}" for n in range(ASSOCIATIONS)]
