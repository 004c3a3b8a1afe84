"""An index outage is counted, and ``/metrics`` still answers while the index is down."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.http.app import create_app
from pacs.auth.accounts import create_account, create_token
from pacs.auth.principal import Role
from tests.reliability.test_index_outage import Outage, outage  # noqa: F401  (the fixture)


def _index_errors(http: TestClient) -> float:
    response = http.get("/metrics")
    assert response.status_code == 200, response.text
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    return sum(s.value for s in families["pacs_index_errors"].samples if s.name.endswith("_total"))


def test_index_outage_is_counted_and_metrics_answer(outage: Outage) -> None:  # noqa: F811
    archive = outage.archive
    create_account(archive.sessions, "admin", "metrics-outage-password", Role.ADMIN)
    token = create_token(archive.sessions, "admin", "script")
    with TestClient(create_app(archive), client=("127.0.0.1", 50000)) as http:
        before = _index_errors(http)
        outage.cut()
        answer = http.get("/dicom-web/studies", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 503
        assert _index_errors(http) == before + 1  # from loopback: no credential to check
        outage.restore()
        assert http.get(
            "/dicom-web/studies", headers={"Authorization": f"Bearer {token}"}
        ).is_success
