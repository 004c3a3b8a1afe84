"""The DIMSE fast path's one switch (pacs.dimse.fastpath).

Off by setting, or on a pynetdicom release other than the one the shims were
written for, every association is stock pynetdicom's: its reactors poll, its
decoder spools, its service class answers, and objects are still stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pynetdicom
import pynetdicom.association
import pynetdicom.dimse_messages
import pynetdicom.dul
import pytest
from pynetdicom.association import Association

from pacs.archive import Archive
from pacs.dimse import fastpath, reactor, spool
from pacs.dimse.server import DimseServer
from pacs.settings import Settings
from tests.dicom_factory import ct_slice
from tests.dimse.test_pdata import status_of, store_ae


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    """The switch is process-wide: give the next test what the environment asks for."""
    yield
    fastpath.apply(Settings())


def _installed() -> bool:
    return isinstance(pynetdicom.dul.time, reactor._ReactorClock) and (
        pynetdicom.dimse_messages.NamedTemporaryFile is spool.open_spool_file  # type: ignore[attr-defined]
    )


def test_the_setting_turns_every_shim_on_and_off() -> None:
    assert fastpath.apply(Settings(dimse_fastpath=True)) is True
    assert fastpath.active() and _installed()
    assert fastpath.apply(Settings(dimse_fastpath=False)) is False
    assert not fastpath.active()
    assert pynetdicom.dul.time is time and pynetdicom.association.time is time
    assert pynetdicom.dimse_messages.NamedTemporaryFile is not spool.open_spool_file  # type: ignore[attr-defined]


def test_another_pynetdicom_release_gets_stock_pynetdicom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pynetdicom, "__version__", "3.1.0")
    assert fastpath.apply(Settings(dimse_fastpath=True)) is False
    assert not fastpath.active() and not _installed()


def test_with_the_fast_path_off_pynetdicom_serves_and_stores(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[str] = []
    serve = Association._serve_request

    def spy(self: Association, msg: Any, context_id: int) -> None:
        served.append(type(msg).__name__)
        serve(self, msg, context_id)

    monkeypatch.setattr(Association, "_serve_request", spy)
    monkeypatch.setattr(
        archive, "settings", archive.settings.model_copy(update={"dimse_fastpath": False})
    )
    server = DimseServer(archive)
    assert server.fastpath is False
    server.start("127.0.0.1", 0)
    try:
        assoc = store_ae().associate("127.0.0.1", server.port, ae_title="PACS")
        assert assoc.is_established
        try:
            slices = [ct_slice(index=i, size=64) for i in range(2)]
            answers = [status_of(assoc.send_c_store(ds)) for ds in slices]
        finally:
            assoc.release()
    finally:
        server.stop(grace=2)
    assert answers == [(0, "")] * 2
    assert served == ["C_STORE"] * 2  # pynetdicom's own service class answered each
    assert {i.sop_instance_uid for i in archive.locate()} == {
        str(ds.SOPInstanceUID) for ds in slices
    }
