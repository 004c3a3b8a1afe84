"""Routing to DCMTK's storescp: every instance arrives once, converted when it must be.

Rules on study stable and on each instance, a person's send, a JPEG Lossless
instance converted for a storescp that takes uncompressed syntaxes only, and
a route-study job run twice sending nothing twice. SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import JPEGLossless

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.config import remote_ae
from pacs.routing.values import rule
from pacs.settings import Settings
from pacs.transcode import transcode_dataset
from tests.dicom_factory import ct_slice, to_bytes
from tests.routing.helpers import StoreSCP, declare_stable, fast, store_study, storescp, wait_until


@pytest.fixture
def routed(settings: Settings, dcmtk: None) -> Iterator[Archive]:
    archive = Archive.open(fast(settings))
    running = archive.jobs.start(scheduler=False)
    yield archive
    running.stop(10)
    archive.close()


@pytest.fixture
def scp(tmp_path: Path, routed: Archive) -> Iterator[StoreSCP]:
    with storescp(tmp_path) as peer:
        routed.remote_aes.add(
            remote_ae(ae_title="STORESCP", host="127.0.0.1", port=peer.port, services=["store"])
        )
        yield peer


def _all_sent(archive: Archive, count: int) -> bool:
    sends, _ = archive.routing.outbox.list()
    return len(sends) == count and all(s.state == "sent" for s in sends)


def test_stable_study_routed_once_with_conversion(routed: Archive, scp: StoreSCP) -> None:
    routed.routing.rules.add_rule(
        rule(name="CT", destination="ae:STORESCP", modality="CT", calling_ae="CT*")
    )
    routed.routing.rules.add_rule(rule(name="MR only", destination="ae:STORESCP", modality="MR"))
    study, uids = store_study(routed, 4)
    jpeg = ct_slice(study, index=9, size=64, seed=3)
    routed.ingest(io.BytesIO(to_bytes(transcode_dataset(jpeg, JPEGLossless))), Origin("dimse"))
    uids.append(str(jpeg.SOPInstanceUID))
    other, _ = store_study(routed, 2, calling_ae="US01")  # calling AE matches no rule

    assert declare_stable(routed) == 2
    wait_until(lambda: _all_sent(routed, 1), what="the CT study sent")
    [send] = routed.routing.outbox.list()[0]
    assert (send.study_uid, send.done, send.total, send.failed) == (study, 5, 5, 0)
    received = {dcmread(p).SOPInstanceUID: dcmread(p) for p in scp.folder.iterdir()}
    assert sorted(received) == sorted(uids)
    assert scp.received() == 5  # each instance once
    converted = received[jpeg.SOPInstanceUID]
    assert converted.file_meta.TransferSyntaxUID != JPEGLossless  # storescp: uncompressed only
    assert np.array_equal(converted.pixel_array, jpeg.pixel_array)  # converted losslessly

    routed.routing._study_job({"study_uid": study})  # a job that runs twice sends nothing twice
    assert declare_stable(routed) == 0
    assert routed.routing.outbox.list()[1] == 1
    assert other not in {s.study_uid for s in routed.routing.outbox.list()[0]}


def test_each_instance_rule_and_a_persons_send(routed: Archive, scp: StoreSCP) -> None:
    routed.routing.rules.add_rule(
        rule(name="live", destination="ae:STORESCP", trigger="instance", priority=3)
    )
    routed.routing.rules.invalidate()
    study, uids = store_study(routed, 3)
    wait_until(lambda: _all_sent(routed, 3), what="three per-instance sends")
    assert sorted(dcmread(p).SOPInstanceUID for p in scp.folder.iterdir()) == sorted(uids)
    assert scp.received() == 3

    routed.routing.rules.remove_rule(routed.routing.rules.rules()[0].id or 0)
    queued = routed.routing.send_study(study, "ae:STORESCP", origin="user:admin")
    wait_until(lambda: routed.routing.outbox.get(queued.send.id).state == "sent")
    done = routed.routing.outbox.get(queued.send.id)
    assert (done.done, done.total) == (3, 3)
    assert scp.received() == 6  # sent again on request: three more C-STOREs, no more
