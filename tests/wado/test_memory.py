"""Bounded memory: retrieving a ~200 MB multi-frame instance does not load it into the server.

The server runs in its own process so that its peak resident memory (VmHWM)
measures only the server; the object is written and ingested by other
processes for the same reason.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import free_port
from tests.dicom_factory import ct_slice, to_bytes

ROOT = Path(__file__).parents[2]
FRAMES, SIZE = 400, 512  # 400 x 512 x 512 x 2 bytes = 200 MiB


def _write_big_instance(path: Path) -> tuple[str, str, str]:
    """Header from pydicom, then the Pixel Data element written in chunks (never all in memory)."""
    ds = ct_slice(size=SIZE)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.2"
    ds.NumberOfFrames = FRAMES
    del ds.PixelData
    length = FRAMES * SIZE * SIZE * 2
    rng = np.random.default_rng(1)
    with path.open("wb") as out:
        out.write(to_bytes(ds))
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))
        for _ in range(FRAMES):
            out.write(rng.integers(0, 4095, SIZE * SIZE, dtype=np.uint16).tobytes())
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def _run(code: str, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PACS_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env)


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_retrieving_a_200_mb_instance_keeps_server_memory_flat(tmp_path: Path) -> None:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read the server's peak memory")
    source = tmp_path / "big.dcm"
    study, series, sop = _write_big_instance(source)
    data_dir = tmp_path / "data"
    setup = _run(
        f"""
        from pacs.archive import Archive
        from pacs.auth.accounts import create_account
        from pacs.auth.principal import Role
        from pacs.archive.ingest import Origin
        from pacs.settings import Settings
        archive = Archive.open(Settings(storage_fsync=False))
        create_account(archive.sessions, "admin", "memory-test-pw", Role.ADMIN)
        with open({str(source)!r}, "rb") as fp:
            archive.ingest(fp, Origin(door="import"))
        archive.close()
        """,
        data_dir,
    )
    assert setup.wait(timeout=300) == 0
    source.unlink()
    port = free_port()
    server = _run(
        f"""
        import uvicorn
        from pacs.archive import Archive
        from app.http.app import create_app
        from pacs.settings import Settings
        uvicorn.run(create_app(Archive.open(Settings())), host="127.0.0.1", port={port},
                    log_level="warning")
        """,
        data_dir,
    )
    base = f"http://127.0.0.1:{port}"
    session = requests.Session()
    session.auth = ("admin", "memory-test-pw")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if session.get(f"{base}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.1)
        instance = f"{base}/dicom-web/studies/{study}/series/{series}/instances/{sop}"
        assert session.get(f"{instance}/metadata").ok  # warm up the code paths
        assert session.get(f"{instance}/frames/1").ok
        before = _hwm_kib(server.pid)
        received = 0
        with session.get(instance, stream=True, timeout=120) as response:
            assert response.status_code == 200
            for chunk in response.iter_content(1 << 20):
                received += len(chunk)
        frames = session.get(f"{instance}/frames/1,200,400")
        assert frames.ok and len(frames.content) > 3 * SIZE * SIZE * 2
        after = _hwm_kib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)
        session.close()
    assert received > FRAMES * SIZE * SIZE * 2
    growth_mib = (after - before) / 1024
    print(f"server VmHWM {before >> 10} -> {after >> 10} MiB for {received >> 20} MiB sent")
    assert growth_mib < 100, f"server peak memory grew by {growth_mib:.0f} MiB"
