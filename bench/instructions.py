"""Instructions per C-STORE: our server under callgrind, a figure that load does not move.

    .venv/bin/python -m bench.instructions                  # 50 CT slices on one association
    .venv/bin/python -m bench.instructions --count 100 --tree /path/to/other/checkout

On a machine shared with others (2 cores, load 10-15) the server's CPU time per
instance moved by a third between runs of the same code (2.6 to 3.4 ms, then 4-5 ms
under load 9-12), so a regression of 10 % could neither be bisected nor a fix
shown. Instruction counts barely move: ``pacs serve`` runs with one DICOM process
under ``valgrind --tool=callgrind`` with instrumentation off while it starts, a few
slices warm it up (the first of a series takes the long way), then counting is
switched on for ``--count`` slices sent by storescu on one association, and a dump
of the same length of idle time is taken first so that what the background threads
cost per second (job runners, audit) can be taken out. SHA-256 (libcrypto) is
reported apart: under valgrind OpenSSL cannot use the CPU's SHA instructions, so its
count is about 20 times what it costs natively (one 512 KiB SHA-256 is 0.32 ms here),
but how many passes ingest makes over each object shows in it exactly.

First use (50 slices, this machine, 2026-12-05): the commit before the lazy content
hash 29.4 M (SHA-256) + 17.1 M (the rest) instructions per slice, that commit 14.7 +
17.2, main two hours later 14.7 + 9.6, the association's start being counted too: the
copy of our presentation contexts that pynetdicom made per association (about 8 M
per slice here, amortised over 50) is gone. The rest also holds what the association's
own threads do per second of waiting, which valgrind stretches: compare runs of
similar length. Runs ``app.cli`` (checkouts from 2026-12-04 16:07 on).
Needs valgrind (Debian ``valgrind``) and DCMTK; takes 2-4 minutes. Figures are
printed, never judged.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.ingest import CALLING_AE, DCMTK_ENV, free_port, series

IDLE_S = 10.0


def _total(dump: Path) -> int:
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return 0


def _crypto(dump: Path) -> int:
    """Instructions spent in libcrypto (SHA-256 in our ingest) in one callgrind dump."""
    report = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(dump)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(
        int(line.split()[0].replace(",", ""))
        for line in report.splitlines()
        if "libcrypto" in line and line.strip()[:1].isdigit()
    )


def _dump(workdir: Path, trigger: str) -> Path:
    for path in sorted(workdir.glob("callgrind.*")):
        if f"Trigger: dump {trigger}" in path.read_text(errors="replace")[:3000]:
            return path
    raise RuntimeError(f"no callgrind dump '{trigger}' in {workdir}")


def _storescu(port: int, files: Sequence[Path]) -> int:
    command = ["storescu", "-to", "300", "-aet", CALLING_AE, "-aec", "PACS", "127.0.0.1"]
    return subprocess.run(
        [*command, str(port), *map(str, files)], env=DCMTK_ENV, capture_output=True
    ).returncode


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], capture_output=True, check=False)


def measure(tree: Path, count: int, workdir: Path) -> str:
    """One run: ``pacs serve`` from ``tree`` under callgrind; the report's lines."""
    files = series(max(count + 5, 300), 512)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    env |= {
        "PACS_DATA_DIR": str(workdir / "data"),
        "PACS_DICOM_HOST": "127.0.0.1",
        "PACS_DICOM_PORT": str(port),
        "PACS_DICOM_PROCESSES": "1",  # the main process serves: one process to count
        "PACS_HL7_PORT": "0",
        "PACS_HTTP_HOST": "127.0.0.1",
        "PACS_HTTP_PORT": str(free_port()),
        "PACS_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "PACS_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(tree),
    }
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    out = f"--callgrind-out-file={workdir}/callgrind.%p"
    with (workdir / "pacs.log").open("wb") as log:
        server = subprocess.Popen(
            [*valgrind, out, sys.executable, "-m", "app.cli", "serve"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            echo = ["echoscu", "-to", "60", "-aet", CALLING_AE, "-aec", "PACS", "127.0.0.1"]
            deadline = time.monotonic() + 900
            while subprocess.run([*echo, str(port)], env=DCMTK_ENV, capture_output=True).returncode:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: see {workdir / 'pacs.log'}")
                time.sleep(2)
            _storescu(port, files[-5:])  # warm-up: the series' first instance, lazy imports
            pid = str(server.pid)
            _control("-i", "on", pid)
            _control("-z", pid)
            time.sleep(IDLE_S)
            _control("-d", "idle", pid)
            started = time.monotonic()
            status = _storescu(port, files[:count])
            seconds = time.monotonic() - started
            _control("-d", "store", pid)
        finally:
            server.terminate()
            server.wait(300)
    idle, store = _dump(workdir, "idle"), _dump(workdir, "store")
    idle_per_s = _total(idle) / IDLE_S
    crypto = _crypto(store)
    rest = _total(store) - crypto - idle_per_s * seconds
    return "\n".join(
        [
            f"{count} CT slices 512x512 on one association (storescu exit {status}), "
            f"{seconds:.0f} s under callgrind",
            f"  SHA-256 (libcrypto)          {crypto / count / 1e6:8.2f} M instructions/instance",
            f"  everything else, idle taken  {rest / count / 1e6:8.2f} M instructions/instance",
            f"  background threads at rest   {idle_per_s / 1e6:8.2f} M instructions/s",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="slices counted")
    parser.add_argument(
        "--tree", type=Path, default=Path.cwd(), help="checkout whose pacs serve is measured"
    )
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate", "storescu"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (Debian valgrind, dcmtk)", file=sys.stderr)
            return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    try:
        print(measure(args.tree.resolve(), args.count, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
