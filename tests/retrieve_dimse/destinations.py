"""C-MOVE destinations the tests start: DCMTK's storescp, in a process of its own."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import free_port


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    """Return once ``port`` accepts connections (polled, 10 s at most)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, "the storage SCP exited"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError("the storage SCP did not listen within 10 s")


@contextlib.contextmanager
def storescp(folder: Path, *options: str, title: str = "STORESCP") -> Iterator[int]:
    """storescp writing each object it receives to a file of its own (``+uf``) in ``folder``.

    Nagle stays on (DCMTK's default, as at most sites): ``TCP_NODELAY`` is not passed on.
    """
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["storescp", "-aet", title, "+uf", *options, "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "TCP_NODELAY"},
    )
    try:
        wait_listening(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
