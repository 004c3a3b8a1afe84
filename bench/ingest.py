"""Ingest throughput: a CT series sent with DCMTK storescu to our server (and Orthanc beside it).

    .venv/bin/python bench/ingest.py                 # 2000 slices, ours and Orthanc if installed
    .venv/bin/python bench/ingest.py --count 200 --no-orthanc

The series (512x512, 16-bit, a noisy body phantom so that sizes and any compression are
realistic) is generated once per set of parameters and cached in the temp folder. Every case
starts a fresh server on a fresh data folder (embedded default: SQLite + files, fsync on),
then sends the whole series either on one association or with four concurrent storescu
processes each sending a quarter. DCMTK runs with ``TCP_NODELAY=1`` (without it each C-STORE
waits ~40 ms for a delayed ACK, see FIELD-NOTES), and so does Orthanc, which is built on
DCMTK. Ours runs with its defaults, DIMSE worker processes included (``dicom_processes``: one
per CPU, at most 4). Peak resident memory is the sum of ``VmHWM`` over the server's processes,
and CPU the server's user + system time per instance, both from /proc. Stock Debian Orthanc
runs with its defaults inside a network namespace that has only loopback, because it cannot be
told to bind to one address.

Every case runs ``--rounds`` times (default 2), the servers taking turns at going first, and
the summary gives the median of each. Cases share the machine's state as equally as we can
make them: the disk is synced before each, and no data folder is deleted until the run ends
(see :func:`measure` for what a deletion did to the next case). Orthanc 1.10 does not fsync
the files it stores; ours does (file and folder) before it answers. The figures are printed,
never judged: the benchmark does not fail on time.

The disk's limit is measured in the same rounds: a trivial writer stores the same files
the way ingest must make them durable (write, fsync, rename, fsync the folder), with one
thread and with ``--clients`` threads, and the summary says what share of it ours reaches.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
CACHE_VERSION = 1
CALLING_AE = "BENCH"
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
ORTHANC_PORT = 4242


@dataclass
class Result:
    """One measured case: which server, how the files were sent, what it cost."""

    server: str
    clients: int
    instances: int
    stored: int
    seconds: float
    megabytes: float
    peak_rss_mb: float
    failures: int
    cpu_seconds: float = 0.0  # the server's user + system time while the files were sent

    @property
    def per_second(self) -> float:
        return self.instances / self.seconds if self.seconds else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.megabytes / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_instance(self) -> float:
        return 1000 * self.cpu_seconds / self.instances if self.instances else 0.0


# --- the series -----------------------------------------------------------------------------


def phantom(size: int) -> np.ndarray:
    """A body ellipse of soft tissue with lungs and a spine, in stored values (HU + 1024)."""
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    image = np.full((size, size), -1000.0)
    image[(x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1] = 40.0
    for cx in (-0.4, 0.4):
        image[((x - cx) / 0.28) ** 2 + ((y + 0.05) / 0.4) ** 2 <= 1] = -850.0
    image[(x / 0.1) ** 2 + ((y - 0.45) / 0.1) ** 2 <= 1] = 700.0
    return image + 1024.0


def ct_slice(
    index: int, base: np.ndarray, uids: Mapping[str, str], rng: np.random.Generator
) -> Dataset:
    """One CT Image Storage instance: the phantom plus scanner-like noise."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.PatientName = "Nguyễn^Văn Bench"
    ds.PatientID = "BENCH0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyDate = "20261123"
    ds.StudyTime = "080000"
    ds.AccessionNumber = "BENCH1"
    ds.StudyID = "1"
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [-128.0, -128.0, -0.5 * index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 0.5
    ds.Rows, ds.Columns = base.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    noisy = base + rng.normal(0.0, 20.0, base.shape)
    ds.PixelData = np.clip(noisy, 0, 4095).astype(np.uint16).tobytes()
    return ds


def series(count: int, size: int) -> list[Path]:
    """The cached series for these parameters, generated on first use."""
    folder = Path(tempfile.gettempdir()) / f"pacs-bench-ct-v{CACHE_VERSION}-{count}x{size}"
    done = folder / "complete"
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        print(f"generating {count} slices of {size}x{size} into {folder}", flush=True)
        base = phantom(size)
        rng = np.random.default_rng(20261123)
        uids = {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid()}
        for index in range(count):
            ct_slice(index, base, uids, rng).save_as(
                folder / f"{index:05d}.dcm", enforce_file_format=True
            )
        done.write_text("ok\n")
    return sorted(folder.glob("*.dcm"))


# --- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (our DIMSE workers are children of ``pacs serve``)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children = task.read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(process_tree(int(child)))
    return found


def peak_rss_mb(pid: int) -> float:
    """Sum of ``VmHWM`` (high-water marks of resident memory) over a process tree, in MB.

    The processes may peak at different moments, so the sum may overstate the
    tree's simultaneous peak; it never understates it.
    """
    total = 0.0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process tree so far, in seconds (all threads)."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class PeakWatcher(threading.Thread):
    """Polls a process's high-water mark so the figure survives a crash near the end."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, peak_rss_mb(self.pid))

    def stop(self) -> float:
        self.peak = max(self.peak, peak_rss_mb(self.pid))
        self._stop.set()
        return self.peak


@dataclass
class Server:
    """A running SCP the clients can reach: AE, port, pid, and how to run a client beside it."""

    name: str
    ae_title: str
    port: int
    process: subprocess.Popen[bytes]
    prefix: tuple[str, ...] = ()  # e.g. ("ip", "netns", "exec", NAME) for a namespaced server

    def dcmtk(self, tool: str, *args: str) -> list[str]:
        return [*self.prefix, tool, "-aet", CALLING_AE, "-aec", self.ae_title, *args]

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            echo = self.dcmtk("echoscu", "127.0.0.1", str(self.port))
            if subprocess.run(echo, env=DCMTK_ENV, capture_output=True).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer C-ECHO within {timeout:.0f} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def ours(workdir: Path) -> Iterator[Server]:
    """``pacs serve`` on the embedded default, loopback only, on free ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    port = free_port()
    env |= {
        "PACS_DATA_DIR": str(workdir / "data"),
        "PACS_DICOM_HOST": "127.0.0.1",
        "PACS_DICOM_PORT": str(port),
        "PACS_HL7_PORT": "0",  # no HL7 listener: not what this runs
        "PACS_HTTP_HOST": "127.0.0.1",
        "PACS_HTTP_PORT": str(free_port()),
        "PACS_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "PACS_LOG_LEVEL": "WARNING",
    }
    if "PACS_DICOM_PROCESSES" in os.environ:  # the scaling runs (bench.processes says how)
        env["PACS_DICOM_PROCESSES"] = os.environ["PACS_DICOM_PROCESSES"]
    with (workdir / "pacs.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = Server("pacs", "PACS", port, process)
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()


def count_ours(workdir: Path) -> int:
    from pacs.archive import Archive
    from pacs.settings import Settings

    settings = Settings(data_dir=workdir / "data", database_url="", storage_url="")
    archive = Archive.open(settings)
    try:
        return int(archive.counts()["instances"])
    finally:
        archive.close()


def orthanc_available() -> bool:
    return shutil.which("Orthanc") is not None


def make_namespace() -> tuple[str, ...]:
    """A network namespace with only loopback; empty prefix when we may not create one."""
    name = f"pacsbench{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        subprocess.run(
            ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return ()
    return ("ip", "netns", "exec", name)


def drop_namespace(prefix: Sequence[str]) -> None:
    if prefix:
        subprocess.run(["ip", "netns", "del", prefix[-1]], capture_output=True)


@contextmanager
def orthanc(workdir: Path, prefix: tuple[str, ...]) -> Iterator[Server]:
    """Stock Orthanc with its default settings, storage and index in ``workdir``."""
    config = workdir / "cfg"
    config.mkdir()
    port = ORTHANC_PORT if prefix else free_port()
    (config / "orthanc.json").write_text(
        json.dumps(
            {
                "Name": "bench",
                "StorageDirectory": str(workdir / "storage"),
                "IndexDirectory": str(workdir / "index"),
                "DicomAet": "ORTHANC",
                "DicomPort": port,
                "HttpPort": free_port() if not prefix else 8042,
                "RemoteAccessAllowed": False,
                "AuthenticationEnabled": False,
                "DicomModalities": {"bench": [CALLING_AE, "127.0.0.1", 11113]},
                "Plugins": [],
            }
        )
    )
    with (workdir / "orthanc.log").open("wb") as log:
        # `ip netns exec` enters the namespace and execs: the pid is Orthanc's own.
        # Orthanc is built on DCMTK, which disables Nagle only when told by TCP_NODELAY=1;
        # our server sets it on its sockets itself, so Orthanc gets it too (its best case).
        process = subprocess.Popen(
            [*prefix, "Orthanc", str(config)],
            env=DCMTK_ENV,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = Server("orthanc", "ORTHANC", port, process, prefix)
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()


def count_orthanc(workdir: Path) -> int:
    """Stored attachments (one file per instance; Orthanc keeps no other file there)."""
    return sum(1 for path in (workdir / "storage").rglob("*") if path.is_file())


# --- the measurement ------------------------------------------------------------------------


def send(server: Server, files: Sequence[Path], clients: int) -> tuple[float, int]:
    """Wall time for ``clients`` storescu processes sharing the files; failed processes."""
    shares = [files[i::clients] for i in range(clients)]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            server.dcmtk("storescu", "127.0.0.1", str(server.port), *map(str, share)),
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for share in shares
    ]
    failures = 0
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            failures += 1
            print(f"  storescu exited {process.returncode}: {err.decode()[-400:]}", flush=True)
    return time.perf_counter() - started, failures


def measure(
    name: str, files: Sequence[Path], clients: int, prefix: tuple[str, ...], workdir: Path
) -> Result:
    """One case in its own folder under ``workdir``, which the caller removes when the run ends.

    No case's data is deleted while another case runs, and the disk is synced
    between cases: on this machine class (a microVM, ext4 without a journal) a
    server writing right after a deletion got the freed page-cache pages cheaply
    (fresh guest pages cost ~2 ms per 512 KiB to touch) but its file creations
    scanned every recently deleted inode (~1 ms each), and a server that does not
    fsync (Orthanc 1.10) left its writeback to whoever ran next.
    """
    megabytes = sum(path.stat().st_size for path in files) / 1e6
    workdir.mkdir(parents=True)
    os.sync()
    context = ours(workdir) if name == "pacs" else orthanc(workdir, prefix)
    with context as server:
        pid = server.process.pid
        watcher = PeakWatcher(pid)
        watcher.start()
        cpu_before = cpu_seconds(pid)
        seconds, failures = send(server, files, clients)
        cpu = cpu_seconds(pid) - cpu_before
        peak = watcher.stop()
    stored = count_ours(workdir) if name == "pacs" else count_orthanc(workdir)
    return Result(name, clients, len(files), stored, seconds, megabytes, peak, failures, cpu)


def table(results: Sequence[Result]) -> str:
    header = (
        f"{'server':<8} {'clients':>7} {'stored':>11} {'seconds':>8} "
        f"{'inst/s':>8} {'MB/s':>7} {'peak RSS MB':>12} {'CPU ms/inst':>12}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.server:<8} {r.clients:>7} {f'{r.stored}/{r.instances}':>11} {r.seconds:>8.1f} "
            f"{r.per_second:>8.1f} {r.mb_per_second:>7.1f} {r.peak_rss_mb:>12.0f}"
            f" {r.cpu_ms_per_instance:>12.2f}"
            + (f"  ({r.failures} storescu failed)" if r.failures else "")
        )
    return "\n".join(lines)


def summary(results: Sequence[Result]) -> str:
    """Median of the rounds per server and number of clients, and ours against Orthanc."""
    cases: dict[tuple[int, str], list[Result]] = {}
    for r in results:
        cases.setdefault((r.clients, r.server), []).append(r)
    lines = [
        f"{'server':<8} {'clients':>7} {'rounds':>6} {'median inst/s':>14} {'MB/s':>7}"
        f" {'CPU ms/inst':>12} {'max peak RSS MB':>16}"
    ]
    medians: dict[tuple[int, str], float] = {}
    for (clients, server), rs in sorted(cases.items()):
        medians[(clients, server)] = statistics.median(r.per_second for r in rs)
        lines.append(
            f"{server:<8} {clients:>7} {len(rs):>6} {medians[(clients, server)]:>14.1f}"
            f" {statistics.median(r.mb_per_second for r in rs):>7.1f}"
            f" {statistics.median(r.cpu_ms_per_instance for r in rs):>12.2f}"
            f" {max(r.peak_rss_mb for r in rs):>16.0f}"
        )
    for clients in sorted({c for c, _ in cases}):
        if medians.get((clients, "orthanc")):
            ratio = medians[(clients, "pacs")] / medians[(clients, "orthanc")]
            lines.append(f"ours / Orthanc with {clients} client(s): {ratio:.2f}x")
    return "\n".join(lines)


def disk_limit(files: Sequence[Path], writers: int, workdir: Path) -> float:
    """Instances/s a trivial writer reaches storing ``files`` the way ingest must: each file
    written whole, fsynced, renamed into place and its folder fsynced (no parsing, no
    index). ``writers`` threads share the files, as associations do."""
    workdir.mkdir(parents=True)
    payloads = [path.read_bytes() for path in files]

    def write(share: Sequence[int]) -> None:
        folder = workdir / f"w{share[0] if share else 0}"
        folder.mkdir(exist_ok=True)
        for index in share:
            target, temporary = folder / f"{index}.dcm", folder / f".{index}.tmp"
            with temporary.open("wb") as out:
                out.write(payloads[index])
                out.flush()
                os.fsync(out.fileno())
            temporary.rename(target)
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    shares = [range(i, len(files), writers) for i in range(writers)]
    os.sync()
    started = time.perf_counter()
    threads = [threading.Thread(target=write, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(files) / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="slices in the series")
    parser.add_argument("--size", type=int, default=512, help="rows and columns")
    parser.add_argument("--clients", type=int, default=4, help="concurrent storescu processes")
    parser.add_argument("--no-orthanc", action="store_true", help="measure only our server")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="repeat every case; servers alternate who goes first",
    )
    args = parser.parse_args(argv)
    if shutil.which("storescu") is None:
        print("DCMTK storescu not found: `make system-deps` installs it", file=sys.stderr)
        return 2
    files = series(args.count, args.size)
    servers = ["pacs"]
    prefix: tuple[str, ...] = ()
    if not args.no_orthanc:
        if orthanc_available():
            servers.append("orthanc")
            prefix = make_namespace()
            if not prefix:
                print("no network namespace (needs root): Orthanc binds all interfaces here")
        else:
            print("Orthanc not installed (apt-get install orthanc): measuring ours only")
    results: list[Result] = []
    limits: dict[int, list[float]] = {}
    run_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        for round_number in range(args.rounds):
            for writers in (1, args.clients):
                folder = run_dir / f"{round_number}-disk-{writers}"
                limits.setdefault(writers, []).append(disk_limit(files, writers, folder))
            order = servers if round_number % 2 == 0 else servers[::-1]
            for clients in (1, args.clients):
                for name in order:
                    print(
                        f"round {round_number + 1}: {name}, {len(files)} files, "
                        f"{clients} storescu ...",
                        flush=True,
                    )
                    workdir = run_dir / f"{round_number}-{name}-{clients}"
                    results.append(measure(name, files, clients, prefix, workdir))
    finally:
        drop_namespace(prefix)
        shutil.rmtree(run_dir, ignore_errors=True)
    print()
    print(
        f"{len(files)} CT slices {args.size}x{args.size} 16-bit, "
        "storescu (and Orthanc) with TCP_NODELAY=1"
    )
    print(table(results))
    print()
    print(summary(results))
    for writers, rates in sorted(limits.items()):
        limit = statistics.median(rates)
        ours_rate = statistics.median(
            r.per_second for r in results if r.server == "pacs" and r.clients == writers
        )
        print(
            f"disk limit, {writers} fsyncing writer(s): {limit:.1f} files/s;"
            f" ours reaches {100 * ours_rate / limit:.0f}% of it"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
