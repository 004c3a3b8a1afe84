"""Shared pieces of the interop tests: test files, stored-body comparison, storescu."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

from pacs.archive import Archive
from pacs.part10 import read_header
from tests.dimse.peers import DCMTK_ENV, STORESCU_PROPOSAL, dataset_bytes


def body(data: bytes) -> bytes:
    """The dataset bytes after the file meta group (what a C-STORE carries)."""
    return dataset_bytes(data)


def stored_bytes(archive: Archive, sop_instance_uid: str) -> tuple[bytes, str]:
    (instance,) = archive.locate(sop_instance_uid=sop_instance_uid)
    with archive.open_blob(instance.blob_key) as blob:
        return blob.read(), instance.sha256


def propose_own_syntax(path: Path) -> tuple[str, ...]:
    syntax = read_header(io.BytesIO(path.read_bytes()[:4096])).transfer_syntax_uid
    flag = STORESCU_PROPOSAL.get(syntax)
    return (flag,) if flag else ()


def storescu(
    port: int, *paths: Path, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """DCMTK storescu with Nagle disabled (TCP_NODELAY=1), as the field notes advise."""
    return subprocess.run(
        [
            "storescu",
            "-aet",
            "STORESCU",
            "-aec",
            "PACS",
            *extra,
            "127.0.0.1",
            str(port),
            *map(str, paths),
        ],
        env=DCMTK_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
