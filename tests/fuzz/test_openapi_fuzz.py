"""Schemathesis against the app's own OpenAPI description: no operation answers 5xx.

Every documented operation (QIDO, WADO, STOW, the viewer's share API, the
admin API, audit) gets requests generated from its schema, as an
administrator, on an archive holding two studies. Only "no server error" is
checked: the schema of our free-form DICOMweb answers is not described.
Schemathesis' own pytest plugin does not load under pytest 9 (4.32), so its
strategies are drawn in one hypothesis test, with the suite's fixed budget.
"""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import PASSWORD, budget


def test_no_operation_answers_5xx(fuzz_client: TestClient) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20, [op.label for op in operations]
    strategy = st.one_of([operation.as_strategy() for operation in operations])

    @budget(120)
    @given(case=strategy)
    def call(case: schemathesis.Case) -> None:
        response = case.call(auth=("admin", PASSWORD))
        assert response.status_code < 500, (
            case.method,
            case.formatted_path,
            response.status_code,
            response.text[:300],
        )

    call()
