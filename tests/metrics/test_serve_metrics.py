"""``pacs serve`` with 2 DICOM processes: ``/metrics`` counts every instance, whoever took it.

The main process is frozen (SIGSTOP) while one association stores, so the
worker process surely takes that one; the scrape (from loopback: no
credential needed) must still count it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from tests.dicom_factory import ct_slice
from tests.serve_process import serve_process


def _store(port: int, count: int) -> int:
    ae = AE(ae_title="CT01")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    assert assoc.is_established
    study, series, acked = generate_uid(), generate_uid(), 0
    try:
        for index in range(count):
            status = assoc.send_c_store(ct_slice(study, series, index=index, size=32))
            acked += bool(status and status.Status == 0x0000)
    finally:
        assoc.release()
    return acked


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_add_up_across_dicom_processes(tmp_path: Path) -> None:
    settings = {"PACS_ADMIN_PASSWORD": "metrics-test-admin", "PACS_DICOM_PROCESSES": "2"}
    with serve_process(tmp_path, settings) as served:
        os.kill(served.process.pid, signal.SIGSTOP)
        try:
            by_worker = _store(served.dicom_port, 3)
        finally:
            os.kill(served.process.pid, signal.SIGCONT)
        assert by_worker == 3
        acked = by_worker + _store(served.dicom_port, 2) + _store(served.dicom_port, 2)
        metrics = _scrape(served.http_port)
        assert metrics[("pacs_instances_stored_total", (("door", "dimse"),))] == acked
        assert metrics[("pacs_stored_bytes_total", (("door", "dimse"),))] > 32 * 32 * 2 * acked
        assert metrics[("pacs_ingest_seconds_count", (("door", "dimse"),))] == acked
        assert metrics[("pacs_associations_total", (("outcome", "accepted"),))] == 3
        assert ("pacs_jobs", (("state", "queued"),)) in metrics
        assert (served.data_dir / "metrics").is_dir()

        # `pacs import`, a process of its own beside the server, counts at /metrics too.
        folder = tmp_path / "to-import"
        folder.mkdir()
        for index in range(2):
            path = folder / f"{index}.dcm"
            ct_slice(size=16, index=index).save_as(path, enforce_file_format=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
        env["PACS_DATA_DIR"] = str(served.data_dir)
        imported = subprocess.run(
            [sys.executable, "-m", "app.cli", "import", "--json", str(folder)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert imported.returncode == 0, imported.stderr
        metrics = _scrape(served.http_port)
        assert metrics[("pacs_instances_stored_total", (("door", "import"),))] == 2
        assert metrics[("pacs_instances_stored_total", (("door", "dimse"),))] == acked
