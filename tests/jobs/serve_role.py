"""`pacs serve --role ROLE` as a child process, for the role and leader tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

ROOT = Path(__file__).parents[2]


@dataclass
class RoleProcess:
    process: subprocess.Popen[bytes]
    log: Path
    http_port: int
    dicom_port: int


def child_env() -> dict[str, str]:
    """This environment without PACS_* settings, importing the checkout under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@contextmanager
def serve_role(
    tmp_path: Path, name: str, role: str, settings: dict[str, str]
) -> Iterator[RoleProcess]:
    """Start it on free loopback ports with ``settings``; terminate it at the end (no wait
    for readiness here: each test polls for what it needs)."""
    http_port, dicom_port = free_port(), free_port()
    log = tmp_path / f"{name}.log"
    env = child_env() | {
        "PACS_DATA_DIR": str(tmp_path / name),
        "PACS_HTTP_HOST": "127.0.0.1",
        "PACS_HTTP_PORT": str(http_port),
        "PACS_DICOM_HOST": "127.0.0.1",
        "PACS_DICOM_PORT": str(dicom_port),
        "PACS_HL7_PORT": "0",  # no HL7 listener: not what this runs
        "PACS_DICOM_PROCESSES": "1",
        "PACS_LOG_LEVEL": "INFO",
        **settings,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--role", role],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield RoleProcess(process, log, http_port, dicom_port)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)
