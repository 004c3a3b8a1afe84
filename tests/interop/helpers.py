"""Shared pieces of the interop tests: test files, stored-body comparison, storescu."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

from pacs.archive import Archive
from pacs.part10 import read_header


def body(data: bytes) -> bytes:
    """The dataset bytes after the file meta group (what a C-STORE carries)."""
    return data[read_header(io.BytesIO(data)).body_offset :]


def stored_bytes(archive: Archive, sop_instance_uid: str) -> tuple[bytes, str]:
    (instance,) = archive.locate(sop_instance_uid=sop_instance_uid)
    with archive.open_blob(instance.blob_key) as blob:
        return blob.read(), instance.sha256


# storescu proposes uncompressed syntaxes unless told otherwise; these make it propose
# each file's own syntax (first) so the file travels as it is.
PROPOSE = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.4.100": "-xm",
    "1.2.840.10008.1.2.4.102": "-xn",
    "1.2.840.10008.1.2.4.107": "-x4",
    "1.2.840.10008.1.2.4.108": "-x5",
    "1.2.840.10008.1.2.5": "-xr",
}


def propose_own_syntax(path: Path) -> tuple[str, ...]:
    syntax = read_header(io.BytesIO(path.read_bytes()[:4096])).transfer_syntax_uid
    flag = PROPOSE.get(syntax)
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
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
