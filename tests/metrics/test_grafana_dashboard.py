"""The sample Grafana dashboard queries only metrics that ``/metrics`` actually exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"


def test_dashboard_uses_exposed_metric_names(client: TestClient) -> None:
    # Families, as a labelled metric nothing has counted yet has no sample.
    exposed = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    names = {name for expr in expressions for name in re.findall(r"\bpacs_[a-z_]+", expr)}
    used = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in names}
    assert len(used) >= 10
    assert used <= exposed, sorted(used - exposed)
