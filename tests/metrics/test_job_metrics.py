"""Job failures are counted by kind and what became of the job; ``pacs_jobs`` reads the queue."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.jobs.runner import Runner
from tests.jobs.waiting import wait_until


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_job_failures_and_queue_depth(archive: Archive, client: TestClient) -> None:
    kind = f"metrics-{generate_uid()[-8:]}"  # a kind of its own: counters live per process

    def handler(payload: dict[str, int]) -> None:
        raise RuntimeError("always fails")

    archive.jobs.handle(kind, handler, backoff_s=0.01, backoff_cap_s=0.01)
    archive.jobs.enqueue(kind, {"n": 1}, max_attempts=2)
    waiting = archive.jobs.enqueue("metrics-nobody-runs-this", {}, delay_s=3600)
    assert waiting is not None
    samples = _samples(client)
    assert samples[("pacs_jobs", (("state", "queued"),))] == archive.jobs.counts()["queued"] >= 2
    runner = Runner(archive.jobs.queue, archive.jobs.handlers, threads=1, poll_s=0.02)
    runner.start()
    try:
        wait_until(lambda: archive.jobs.counts()["failed"] == 1)
    finally:
        runner.stop()
    samples = _samples(client)
    assert samples[("pacs_job_failures_total", (("kind", kind), ("state", "queued")))] == 1
    assert samples[("pacs_job_failures_total", (("kind", kind), ("state", "failed")))] == 1
    assert samples[("pacs_jobs", (("state", "failed"),))] == 1
