"""One small archive and app per fuzz module, and hypothesis settings with a fixed budget.

The whole fuzz suite must stay under about a minute: each property runs a
fixed number of examples (``FUZZ_EXAMPLES`` scales them, e.g. 10x for a long
local run), with no per-example deadline since a loaded CI machine is slow,
and no example database written into the checkout.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "1"))
PASSWORD = "fuzz-test-password"


def budget(examples: int) -> settings:
    """Hypothesis settings for ``examples`` examples (scaled by FUZZ_EXAMPLES)."""
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture(scope="module")
def fuzz_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    """Two studies (CT and MR series, Vietnamese names) on the embedded index."""
    folder = tmp_path_factory.mktemp("fuzz")
    archive = Archive.open(Settings(data_dir=folder / "data"))
    for index, (study, modality) in enumerate(
        [("1.2.826.0.1.3680043.8.498.1", "CT"), ("1.2.826.0.1.3680043.8.498.1", "MR"),
         ("1.2.826.0.1.3680043.8.498.2", "CT")]
    ):  # fmt: skip
        ds = ct_slice(study_uid=study, index=index, size=16)
        ds.Modality = modality
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    create_account(archive.sessions, "admin", PASSWORD, Role.ADMIN)
    yield archive
    archive.close()


@pytest.fixture(scope="module")
def fuzz_client(fuzz_archive: Archive) -> Iterator[TestClient]:
    """The app, logged in as the admin; server errors come back as responses, not raised."""
    with TestClient(create_app(fuzz_archive), raise_server_exceptions=False) as client:
        client.auth = ("admin", PASSWORD)
        yield client
