"""C-MOVE and C-GET: DCMTK movescu (to a storescp the test starts), getscu, and pynetdicom."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.dimse.server import DimseServer
from pacs.settings import RemoteAE
from tests.conftest import free_port
from tests.dicom_factory import ct_slice, to_bytes
from tests.peers import register
from tests.retrieve_dimse.destinations import wait_listening

STUDY = "1.2.826.0.1.3680043.8.498.600"
SERIES = ("1.2.826.0.1.3680043.8.498.601", "1.2.826.0.1.3680043.8.498.602")


def sop(series: int, index: int) -> str:
    return f"1.2.826.0.1.3680043.8.498.6{series + 1}0.{index + 1}"


@pytest.fixture
def stored(archive: Archive) -> dict[str, bytes]:
    """Two series of three slices; SOP Instance UID -> dataset bytes (no file meta) as stored."""
    datasets = {}
    for s, series in enumerate(SERIES):
        for i in range(3):
            ds = ct_slice(STUDY, series, sop(s, i), index=i, size=16)
            ds.SeriesNumber = s + 1
            raw = to_bytes(ds)
            archive.ingest(io.BytesIO(raw), Origin(door="test"))
            datasets[sop(s, i)] = dataset_part(raw)
    return datasets


def dataset_part(raw: bytes) -> bytes:
    """The bytes after the preamble and file meta group, whose length (0002,0000) gives."""
    assert raw[128:132] == b"DICM" and raw[132:136] == b"\x02\x00\x00\x00"
    group_length = int.from_bytes(raw[140:144], "little")
    return raw[144 + group_length :]


@pytest.fixture
def storescp(tmp_path: Path, dcmtk: None) -> Iterator[tuple[int, Path]]:
    port, folder = free_port(), tmp_path / "received"
    folder.mkdir()
    process = subprocess.Popen(
        ["storescp", "-aet", "STORESCP", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(port, process)  # polled: a fixed pause is no readiness
    yield port, folder
    process.terminate()
    process.wait(timeout=10)


def _register(archive: Archive, dest_port: int | None = None) -> None:
    register(
        archive,
        RemoteAE(ae_title="MOVESCU", services=["find", "move"]),
        RemoteAE(ae_title="GETSCU", services=["get"]),
    )
    if dest_port is not None:
        register(
            archive,
            RemoteAE(ae_title="STORESCP", host="127.0.0.1", port=dest_port, services=["store"]),
        )


def _received(folder: Path) -> dict[str, bytes]:
    """SOP Instance UID -> dataset bytes of each file a DCMTK receiver wrote."""
    found = {}
    for path in folder.iterdir():
        ds = dcmread(path, stop_before_pixels=True)
        found[str(ds.SOPInstanceUID)] = dataset_part(path.read_bytes())
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env={**os.environ, "TCP_NODELAY": "1"}, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("level", "keys", "expected"),
    [
        ("STUDY", [f"StudyInstanceUID={STUDY}"], [(s, i) for s in range(2) for i in range(3)]),
        (
            "SERIES",
            [f"StudyInstanceUID={STUDY}", f"SeriesInstanceUID={SERIES[1]}"],
            [(1, 0), (1, 1), (1, 2)],
        ),
        (
            "IMAGE",
            [
                f"StudyInstanceUID={STUDY}",
                f"SeriesInstanceUID={SERIES[0]}",
                f"SOPInstanceUID={sop(0, 2)}",
            ],
            [(0, 2)],
        ),
    ],
)
def test_movescu_to_storescp(
    archive: Archive,
    dimse_server: DimseServer,
    stored: dict[str, bytes],
    storescp: tuple[int, Path],
    level: str,
    keys: list[str],
    expected: list[tuple[int, int]],
) -> None:
    port, folder = storescp
    _register(archive, port)
    args = ["movescu", "-aet", "MOVESCU", "-aec", "PACS", "-aem", "STORESCP", "-S"]
    for key in [f"QueryRetrieveLevel={level}", *keys]:
        args += ["-k", key]
    result = _run([*args, "127.0.0.1", str(dimse_server.port)])
    assert result.returncode == 0, result.stderr
    received = _received(folder)
    assert set(received) == {sop(s, i) for s, i in expected}
    assert all(received[uid] == stored[uid] for uid in received)
    last = archive.audit.events()[-1]
    assert last.action == "c-move" and last.actor == "MOVESCU" and last.study_uid == STUDY


def test_movescu_unknown_destination_is_a801(
    archive: Archive, dimse_server: DimseServer, stored: dict[str, bytes], dcmtk: None
) -> None:
    _register(archive)
    args = ["movescu", "-d", "-aet", "MOVESCU", "-aec", "PACS", "-aem", "NOWHERE", "-S"]
    args += ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY}"]
    result = _run([*args, "127.0.0.1", str(dimse_server.port)])
    assert "0xa801" in (result.stdout + result.stderr).lower()


@pytest.mark.parametrize(
    ("level", "keys", "count"),
    [
        ("STUDY", [f"StudyInstanceUID={STUDY}"], 6),
        ("SERIES", [f"StudyInstanceUID={STUDY}", f"SeriesInstanceUID={SERIES[0]}"], 3),
        (
            "IMAGE",
            [
                f"StudyInstanceUID={STUDY}",
                f"SeriesInstanceUID={SERIES[1]}",
                f"SOPInstanceUID={sop(1, 0)}",
            ],
            1,
        ),
    ],
)
def test_getscu(
    tmp_path: Path,
    archive: Archive,
    dimse_server: DimseServer,
    stored: dict[str, bytes],
    dcmtk: None,
    level: str,
    keys: list[str],
    count: int,
) -> None:
    _register(archive)
    folder = tmp_path / "got"
    folder.mkdir()
    args = ["getscu", "-aet", "GETSCU", "-aec", "PACS", "-S", "-od", str(folder)]
    for key in [f"QueryRetrieveLevel={level}", *keys]:
        args += ["-k", key]
    result = _run([*args, "127.0.0.1", str(dimse_server.port)])
    assert result.returncode == 0, result.stderr
    received = _received(folder)
    assert len(received) == count
    assert all(received[uid] == stored[uid] for uid in received)


def _get_ae(title: str) -> AE:
    ae = AE(ae_title=title)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    return ae


def _identifier(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_unregistered_caller_is_refused(
    archive: Archive, dimse_server: DimseServer, stored: dict[str, bytes]
) -> None:
    _register(archive)
    ae = _get_ae("STRANGER")
    assoc = ae.associate(
        "127.0.0.1",
        dimse_server.port,
        ae_title="PACS",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
    )
    assert assoc.is_established
    responses = list(
        assoc.send_c_get(
            _identifier("STUDY", StudyInstanceUID=STUDY), StudyRootQueryRetrieveInformationModelGet
        )
    )
    assoc.release()
    status = responses[-1][0]
    assert status.Status == 0xC000 and "not authorized" in status.ErrorComment
    assert archive.audit.events()[-1].outcome.startswith("failure")


def test_pynetdicom_get_counts_and_cancel(
    archive: Archive, dimse_server: DimseServer, stored: dict[str, bytes]
) -> None:
    _register(archive)
    received: list[str] = []

    def on_store(event: object) -> int:
        received.append(str(event.dataset.SOPInstanceUID))  # type: ignore[attr-defined]
        return 0x0000

    ae = _get_ae("GETSCU")
    assoc = ae.associate(
        "127.0.0.1",
        dimse_server.port,
        ae_title="PACS",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    statuses = [
        s
        for s, _ in assoc.send_c_get(
            _identifier("PATIENT", PatientID="BN0001"), PatientRootQueryRetrieveInformationModelGet
        )
    ]
    final = statuses[-1]
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 6
    pending = [s for s in statuses if s.Status == 0xFF00]
    assert [int(s.NumberOfRemainingSuboperations) for s in pending] == [5, 4, 3, 2, 1, 0]
    assert sorted(received) == sorted(stored)

    # Cancel after the first sub-operation: the SCP stops and answers 0xFE00.
    received.clear()
    identifier = _identifier("STUDY", StudyInstanceUID=STUDY)
    context_id = next(
        cx.context_id
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == StudyRootQueryRetrieveInformationModelGet
    )
    responses = assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet, msg_id=7)
    first = next(responses)
    assert first[0].Status == 0xFF00
    assoc.send_c_cancel(7, context_id=context_id)
    rest = [s for s, _ in responses]
    assert rest[-1].Status == 0xFE00
    assert len(received) < 6
    assoc.release()


def test_move_without_identifier_keys_is_refused(
    archive: Archive,
    dimse_server: DimseServer,
    stored: dict[str, bytes],
    storescp: tuple[int, Path],
) -> None:
    port, folder = storescp
    _register(archive, port)
    ae = AE(ae_title="MOVESCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    responses = list(
        assoc.send_c_move(
            _identifier("STUDY"), "STORESCP", StudyRootQueryRetrieveInformationModelMove
        )
    )
    assoc.release()
    assert responses[-1][0].Status == 0xA900
    assert not list(folder.iterdir())


@pytest.fixture
def picky_destination() -> Iterator[tuple[int, list[str]]]:
    """A storage SCP that refuses one instance (0xA700); yields its port and what it kept."""
    refused = sop(0, 1)
    kept: list[str] = []

    def on_store(event: Any) -> int:
        uid = str(event.dataset.SOPInstanceUID)
        if uid == refused:
            return 0xA700
        kept.append(uid)
        return 0x0000

    ae = AE(ae_title="PICKY")
    ae.add_supported_context(CTImageStorage)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    yield port, kept
    server.shutdown()


def test_pynetdicom_move_counts_one_failed_suboperation(
    archive: Archive,
    dimse_server: DimseServer,
    stored: dict[str, bytes],
    picky_destination: tuple[int, list[str]],
) -> None:
    port, kept = picky_destination
    _register(archive)
    register(archive, RemoteAE(ae_title="PICKY", host="127.0.0.1", port=port))
    ae = AE(ae_title="MOVESCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    responses = list(
        assoc.send_c_move(
            _identifier("STUDY", StudyInstanceUID=STUDY),
            "PICKY",
            StudyRootQueryRetrieveInformationModelMove,
        )
    )
    assoc.release()
    pending = [status for status, _ in responses if status.Status == 0xFF00]
    assert [int(s.NumberOfRemainingSuboperations) for s in pending] == [5, 4, 3, 2, 1, 0]
    assert [int(s.NumberOfFailedSuboperations) for s in pending] == [0, 1, 1, 1, 1, 1]
    final, identifier = responses[-1]
    assert final.Status == 0xB000
    assert final.NumberOfCompletedSuboperations == 5
    assert final.NumberOfFailedSuboperations == 1
    assert final.NumberOfWarningSuboperations == 0
    assert identifier.FailedSOPInstanceUIDList == sop(0, 1)
    assert sorted(kept) == sorted(uid for uid in stored if uid != sop(0, 1))
    assert archive.audit.events()[-1].action == "c-move"
