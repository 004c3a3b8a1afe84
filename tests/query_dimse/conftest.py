"""Archives for the C-FIND tests: query AEs registered, one per output character-set profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacs.archive import Archive
from pacs.settings import RemoteAE, Settings
from tests.query_dimse.archive_factory import populate

QUERY_AES = (
    RemoteAE(ae_title="FINDSCU", services=["find"]),  # DCMTK findscu's default calling AE
    RemoteAE(ae_title="WORKSTATION", services=["find", "move"]),
    RemoteAE(ae_title="OLDCONSOLE", services=["find"], charset_profile="ascii"),
    RemoteAE(ae_title="LATIN1WS", services=["find"], charset_profile="latin1"),
    RemoteAE(ae_title="MODALITY", services=["store"]),  # may store, may not query
)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        storage_fsync=False,
        remote_aes=list(QUERY_AES),
    )


@pytest.fixture
def populated(archive: Archive) -> Archive:
    populate(archive)
    return archive
