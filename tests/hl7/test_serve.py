"""`pacs serve` runs the HL7 listener beside DICOM and HTTP, and keeps what it received."""

from __future__ import annotations

import json
import urllib.request
from base64 import b64encode
from pathlib import Path

from hl7.client import MLLPClient

from tests.conftest import free_port
from tests.hl7.messages import adt
from tests.serve_process import serve_process


def test_serve_answers_hl7_over_mllp(tmp_path: Path) -> None:
    hl7_port = free_port()
    settings = {
        "PACS_HL7_PORT": str(hl7_port),
        "PACS_ADMIN_PASSWORD": "hl7-serve-test-pw",
        "PACS_DICOM_PROCESSES": "1",  # no DIMSE worker processes: not what this tests
    }
    with serve_process(tmp_path, settings) as served:
        with MLLPClient("127.0.0.1", hl7_port) as client:
            reply = client.send_message(adt("A01", "SERVE1")).decode()
        assert "\rMSA|AA|SERVE1" in reply
        request = urllib.request.Request(
            f"http://127.0.0.1:{served.http_port}/api/hl7/messages",
            headers={"Authorization": "Basic " + b64encode(b"admin:hl7-serve-test-pw").decode()},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            listed = json.load(response)
    assert [m["control_id"] for m in listed["messages"]] == ["SERVE1"]
    assert listed["messages"][0]["summary"]["patient"]["name"] == "Nguyễn^Thị Bích"
