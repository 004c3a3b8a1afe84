"""`pacs ae add` on a running `pacs serve` (strict, two DICOM processes): no restart needed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
)

from tests.serve_process import ServeProcess, serve_process


def _find_status(port: int, calling: str) -> int | None:
    """The C-FIND's final status, or None when the association was refused."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    if not assoc.is_established:
        assert assoc.is_rejected, "neither accepted nor rejected"
        return None
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    final = None
    for status, _match in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        final = int(status.Status)
    assoc.release()
    return final


def _pacs(served: ServeProcess, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an administrator runs it: another folder, pointed at the server's data."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    env["PACS_DATA_DIR"] = str(served.data_dir)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env=env | {"PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ae_added_with_the_cli_can_query_without_a_restart(tmp_path: Path) -> None:
    settings = {"PACS_DICOM_STRICT": "true", "PACS_DICOM_PROCESSES": "2"}
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    with serve_process(tmp_path, settings) as served:
        assert _find_status(served.dicom_port, "NEWWS") is None  # strict: refused
        added = _pacs(
            served, elsewhere, "ae", "add", "NEWWS", "127.0.0.1", "11119", "--services", "find"
        )
        assert added.returncode == 0, added.stderr
        listed = _pacs(served, elsewhere, "ae", "list")
        assert "NEWWS\t127.0.0.1:11119\tfind" in listed.stdout
        # Each association may land on either DICOM process; both must learn of the change.
        deadline = time.monotonic() + 15
        successes = 0
        while successes < 6:
            assert time.monotonic() < deadline, (
                "the new AE was not admitted by every process:\n" + served.log.read_text()[-2000:]
            )
            successes = successes + 1 if _find_status(served.dicom_port, "NEWWS") == 0 else 0
        assert served.process.poll() is None  # the same server, never restarted
        removed = _pacs(served, elsewhere, "ae", "remove", "NEWWS")
        assert removed.returncode == 0, removed.stderr
        deadline = time.monotonic() + 15
        refusals = 0
        while refusals < 6:
            assert time.monotonic() < deadline, "the removed AE is still admitted"
            refusals = refusals + 1 if _find_status(served.dicom_port, "NEWWS") is None else 0
    assert not (elsewhere / "data").exists()  # the CLI never made an archive of its own
