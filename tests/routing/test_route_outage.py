"""A DICOMweb destination down for a while: nothing lost, nothing else delayed, priority kept.

The destination is a second ``pacs serve`` (its own port, database and data
folder) taking STOW-RS with a bearer token. Three studies are routed to it
while it is down, by rules of priorities 1, 5 and 9; a storescp routed the
same studies receives them meanwhile. Once the destination starts, each study
arrives once (its ingest counter), highest priority first (its change feed).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacs.archive import Archive
from pacs.config import remote_ae
from pacs.routing.values import endpoint, rule
from pacs.settings import Settings
from tests.conftest import free_port
from tests.routing.helpers import (
    admin_token,
    declare_stable,
    fast,
    store_study,
    storescp,
    wait_until,
)
from tests.serve_process import serve_process


@pytest.fixture
def source(sqlite_settings: Settings, dcmtk: None) -> Iterator[Archive]:
    archive = Archive.open(fast(sqlite_settings))
    running = archive.jobs.start(scheduler=False)
    yield archive
    running.stop(10)
    archive.close()


def _get(url: str, token: str | None = None) -> str:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


def test_destination_down_then_back(tmp_path: Path, source: Archive) -> None:
    port = free_port()
    token = admin_token(tmp_path / "dest" / "data")
    routing = source.routing
    routing.rules.add_endpoint(
        endpoint(
            name="upper",
            url=f"http://127.0.0.1:{port}/dicom-web",
            auth="bearer",
            secret=token,
        )
    )
    for name, modality, priority in [("ct", "CT", 1), ("us", "US", 5), ("mr", "MR", 9)]:
        routing.rules.add_rule(
            rule(name=name, destination="web:upper", modality=modality, priority=priority)
        )
    with storescp(tmp_path) as scp:
        source.remote_aes.add(
            remote_ae(ae_title="STORESCP", host="127.0.0.1", port=scp.port, services=["store"])
        )
        routing.rules.add_rule(rule(name="backup", destination="ae:STORESCP"))
        studies = {m: store_study(source, 3, modality=m)[0] for m in ("CT", "US", "MR")}
        assert declare_stable(source) == 3

        def sends(where: str) -> list[tuple[str, str, int]]:
            found = routing.outbox.list(destination=where)[0]
            return [(s.study_uid, s.state, s.attempts) for s in found]

        # The storescp lane delivers while the other destination refuses connections.
        wait_until(lambda: [s for _, s, _ in sends("ae:STORESCP")] == ["sent"] * 3, what="storescp")
        assert scp.received() == 9
        wait_until(
            lambda: len(sends("web:upper")) == 3 and max(a for *_, a in sends("web:upper")) >= 2,
            what="the down destination tried twice",
        )
        assert all(state == "pending" for _, state, _ in sends("web:upper"))
        failures = source.jobs.list(kind="route-send")[0]
        assert any("ConnectError" in job.last_error for job in failures)

    with serve_process(tmp_path / "dest", {"PACS_LOG_LEVEL": "WARNING"}, http_port=port):
        wait_until(
            lambda: [s for _, s, _ in sends("web:upper")] == ["sent"] * 3,
            timeout=90,
            what="every study at the destination once it is back",
        )
        feed = json.loads(_get(f"http://127.0.0.1:{port}/api/changes?limit=100", token))
        arrived = [c["study_uid"] for c in feed["changes"] if c["kind"] == "new-study"]
        assert arrived == [studies["MR"], studies["US"], studies["CT"]]  # priority 9, 5, 1
        metrics = _get(f"http://127.0.0.1:{port}/metrics")  # loopback: no credential
        stored = [
            line for line in metrics.splitlines() if line.startswith("pacs_instances_stored_total")
        ]
        assert stored == ['pacs_instances_stored_total{door="stow"} 9.0'], stored
