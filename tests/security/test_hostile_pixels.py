"""One small object must not take the memory of the server (issue 15 item 3).

A 0.5 MB object declaring 4 million 1-pixel frames cost +704 MiB on one frame
request, and the table was kept in a 256-entry cache. Now: what can never be
served (pixel data shorter than Rows x Columns x Samples x Bits x frames, a
frame count past any real object) is refused at ingest with a reason through
both doors; what is served builds its frame table in memory that does not
grow with the frame count; and the table cache is bounded in bytes.
"""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dicomweb import frames, wado
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.dimse.server import DimseServer
from tests.dicom_factory import ct_slice, to_bytes
from tests.dimse.peers import send_files

STOW_TYPE = 'multipart/related; type="application/dicom"; boundary=hostile'


def _one_bit_frames(count: int, pixel_bytes: int | None = None) -> bytes:
    ds = ct_slice(size=1)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.1"
    ds.Rows = ds.Columns = 1
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    del ds.RescaleIntercept, ds.RescaleSlope
    ds.NumberOfFrames = count
    size = pixel_bytes if pixel_bytes is not None else (count + 7) // 8
    ds.PixelData = b"\x55" * (size + size % 2)
    ds["PixelData"].VR = "OB"
    return to_bytes(ds)


def _stow(client: TestClient, data: bytes) -> tuple[int, dict[str, object]]:
    body = b"--hostile\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--hostile--\r\n"
    response = client.post("/dicom-web/studies", content=body, headers={"Content-Type": STOW_TYPE})
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_one_bit_frames(4_000_000), "NumberOfFrames 4000000"),  # 0.5 MB, 4 million frames
        (_one_bit_frames(1000, pixel_bytes=10), "pixel data holds"),  # shorter than declared
    ],
    ids=["four-million-frames", "short-pixel-data"],
)
def test_what_can_never_be_served_is_refused_with_a_reason(
    archive: Archive,
    client: TestClient,
    dimse_server: DimseServer,
    tmp_path: Path,
    data: bytes,
    reason: str,
) -> None:
    path = tmp_path / "hostile.dcm"
    path.write_bytes(data)
    ((code, comment),) = send_files(dimse_server.port, [path])
    assert code == 0xC000 and reason in comment
    status, body = _stow(client, data)
    assert status == 409
    (item,) = body["00081198"]["Value"]  # type: ignore[index]
    assert reason in item["0040A160"]["Value"][0]
    assert archive.counts()["instances"] == 0


def test_a_frame_of_many_one_bit_frames_costs_little_memory(
    sqlite_archive: Archive, tmp_path: Path
) -> None:
    from app.http.app import create_app
    from pacs.auth.accounts import create_account
    from pacs.auth.principal import Role

    count = 900_000  # allowed (real whole-slide images have hundreds of thousands of tiles)
    result = sqlite_archive.ingest(io.BytesIO(_one_bit_frames(count)), Origin(door="import"))
    create_account(sqlite_archive.sessions, "admin", "hostile-test-password", Role.ADMIN)
    base = (
        f"/dicom-web/studies/{result.study_uid}/series/{result.series_uid}"
        f"/instances/{result.sop_instance_uid}"
    )
    with TestClient(create_app(sqlite_archive)) as client:
        client.auth = ("admin", "hostile-test-password")
        client.get("/health")  # app start-up outside the measurement
        tracemalloc.start()
        try:
            for number in (1, count):
                response = client.get(
                    f"{base}/frames/{number}",
                    headers={"Accept": 'multipart/related; type="application/octet-stream"'},
                )
                assert response.status_code == 200, response.text
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 16 << 20, f"one frame request peaked at {peak >> 20} MiB"
    assert wado.frame_tables.held_bytes < 1 << 20


def test_the_frame_table_cache_is_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    def table(count: int) -> frames.FrameTable:
        return frames.FrameTable(
            tuple((frames.Span(i * 10, 10),) for i in range(count)), encapsulated=True
        )

    sizes = iter([200] * 50 + [100_000])
    monkeypatch.setattr(frames, "build_table", lambda *args: table(next(sizes)))
    cache = frames.FrameCache(size=1000, max_bytes=256 << 10)
    for index in range(50):
        cache.get(f"small{index}", None, 0, "", None)  # type: ignore[arg-type]
    assert 0 < cache.held_bytes <= 256 << 10
    before = cache.held_bytes
    assert len(cache.get("huge", None, 0, "", None).frames) == 100_000  # type: ignore[arg-type]
    assert cache.held_bytes == before  # used for its request, not kept


def test_native_frame_spans_are_computed_not_stored() -> None:
    spans = frames.NativeFrames(start=1000, frame_bits=1, count=4_000_000)
    assert len(spans) == 4_000_000
    assert spans[0] == (frames.Span(1000, 1),)
    assert spans[-1] == (frames.Span(1000 + 3_999_999 // 8, 1),)
    with pytest.raises(IndexError):
        spans[4_000_000]
