"""Retrieval speed: WADO-RS metadata, frames, whole series, rendered frames, and C-GET.

    .venv/bin/python -m bench.retrieve                      # 500-slice series + 300-slice study
    .venv/bin/python -m bench.retrieve --instances 100 --study-slices 50 --requests 50
    .venv/bin/python -m bench.retrieve --memory             # 1 GB instance + 2,000-slice study

A benchmark archive is built in a temp data folder through ``archive.ingest`` (the one
writer path): a 500-instance 512x512 16-bit CT series (a noisy body phantom, generated with
numpy) and a second study of 300 slices. Then ``pacs serve`` runs as a child process on free
loopback ports, with a bearer token for HTTP and the benchmark's AE registered for C-GET
through ``PACS_REMOTE_AES``. Each latency case runs ``--requests`` times on one keep-alive
HTTP session (random instances, after a short warm-up) and reports p50/p95 in ms; whole-series
retrieval reports MB/s over ``--series-runs`` runs (it moves ~250 MB each). The server's peak
resident memory is its ``VmHWM``. Figures are printed, never judged: the benchmark does not
fail on time.

Orthanc runs side by side when its binary and DICOMweb plugin are installed (Debian
``orthanc orthanc-dicomweb``) and a network namespace can be made (root): Orthanc binds every
interface, so it runs in a namespace with only loopback, and so does the client that measures
it (this script re-run with ``--orthanc-child``). It gets the same files (uploaded through its
REST API) and the same requests; the report gives ours/Orthanc ratios. Otherwise it is skipped
with a note.

``--memory`` checks the bound on the server's resident memory (300 MB) instead: it writes a
``--large-mb`` multi-frame instance to disk in 1 MiB chunks (never built in memory) and a
``--study-instances`` CT study, imports both with ``pacs import`` (the child's peak from
``wait4``), then serves them and retrieves each through WADO-RS (study, instance, series
metadata; streamed and discarded) and DIMSE (getscu C-GET of both, movescu C-MOVE of the large
one to a storescp it starts). The server's VmHWM is reset through /proc/<pid>/clear_refs before
each phase and read after; one table gives MB, seconds, MB/s and the peak per phase. Generated
and received files are deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
from pydicom.uid import generate_uid

from bench.ingest import (
    PeakWatcher,
    ct_slice,
    drop_namespace,
    free_port,
    make_namespace,
    peak_rss_mb,
    phantom,
)

CALLING_AE = "BENCHSCU"
ORTHANC_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
TARGETS_MS = {"series metadata": 150.0, "single frame": 20.0}
OCTET_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"
ANY_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
JPEG_LS_DICOM = (
    'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.80'
)


@dataclass
class BenchData:
    """What the benchmark archive holds, to address requests."""

    study: str
    series: str
    instances: list[str]
    second_study: str


@dataclass
class Timing:
    name: str
    samples_ms: list[float]

    def percentile(self, p: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def line(self) -> str:
        target = TARGETS_MS.get(self.name)
        verdict = ""
        if target is not None:
            verdict = f"  (target p95 <= {target:.0f} ms: "
            verdict += "met)" if self.percentile(95) <= target else "NOT met)"
        return (
            f"{self.name:<22} n={len(self.samples_ms):<4} p50 {self.percentile(50):7.1f} ms"
            f"  p95 {self.percentile(95):7.1f} ms  mean {statistics.fmean(self.samples_ms):7.1f} ms"
            + verdict
        )


# --- the archive ----------------------------------------------------------------------------


def build_archive(data_dir: Path, instances: int, study_slices: int, size: int) -> BenchData:
    """Generate and ingest both studies; an admin account is created for the token."""
    from pacs.archive import Archive
    from pacs.archive.ingest import Origin
    from pacs.settings import Settings

    archive = Archive.open(Settings(data_dir=data_dir, storage_fsync=False))
    base = phantom(size)
    rng = np.random.default_rng(20261123)
    series_uids = {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid()}
    second = {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid()}
    sop_uids: list[str] = []
    started = time.perf_counter()
    try:
        for uids, count in ((series_uids, instances), (second, study_slices)):
            for index in range(count):
                ds = ct_slice(index, base, uids, rng)
                buffer = io.BytesIO()
                ds.save_as(buffer, enforce_file_format=True)
                buffer.seek(0)
                archive.ingest(buffer, Origin(door="import"))
                if uids is series_uids:
                    sop_uids.append(str(ds.SOPInstanceUID))
    finally:
        archive.close()
    elapsed = time.perf_counter() - started
    total = instances + study_slices
    print(f"built archive: {total} instances of {size}x{size} in {elapsed:.1f} s", flush=True)
    return BenchData(series_uids["study"], series_uids["series"], sop_uids, second["study"])


def make_token(data_dir: Path) -> str:
    from pacs.archive import Archive
    from pacs.auth.accounts import create_account, create_token
    from pacs.auth.principal import Role
    from pacs.settings import Settings

    archive = Archive.open(Settings(data_dir=data_dir))
    try:
        create_account(archive.sessions, "bench", secrets.token_urlsafe(16), Role.ADMIN)
        return create_token(archive.sessions, "bench", "retrieve benchmark")
    finally:
        archive.close()


# --- the server -----------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    dicom_port: int


@contextmanager
def serve(
    workdir: Path,
    data_dir: Path,
    remote: list[dict[str, Any]] | None = None,
    processes: int = 1,
) -> Iterator[Server]:
    """``pacs serve`` on the benchmark archive, loopback only, on free ports.

    ``remote`` is the ``PACS_REMOTE_AES`` list; by default only the C-GET peer.
    ``processes`` answer HTTP and DICOM (one unless a scaling run asks): with one,
    its VmHWM is the peak of whichever serves a retrieval.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    dicom_port, http_port = free_port(), free_port()
    if remote is None:
        remote = [{"ae_title": CALLING_AE, "host": "127.0.0.1", "port": 104, "services": ["get"]}]
    env |= {
        "PACS_DATA_DIR": str(data_dir),
        "PACS_DICOM_HOST": "127.0.0.1",
        "PACS_DICOM_PORT": str(dicom_port),
        "PACS_HL7_PORT": "0",  # no HL7 listener: not what this runs
        "PACS_HTTP_HOST": "127.0.0.1",
        "PACS_HTTP_PORT": str(http_port),
        "PACS_LOG_LEVEL": "WARNING",
        "PACS_REMOTE_AES": json.dumps(remote),
        "PACS_DICOM_PROCESSES": str(processes),
        "PACS_HTTP_PROCESSES": str(processes),
    }
    with (workdir / "pacs.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = Server(process, f"http://127.0.0.1:{http_port}", dicom_port)
        try:
            _wait_http(server)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_http(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"pacs serve exited with {server.process.returncode}")
        try:
            requests.get(server.base_url + "/dicom-web/studies", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError("pacs serve did not answer HTTP in time")


# --- the cases ------------------------------------------------------------------------------


def measure(name: str, n: int, request: Callable[[int], None], warmup: int = 5) -> Timing:
    for index in range(warmup):
        request(index)
    samples = []
    for index in range(n):
        started = time.perf_counter()
        request(index)
        samples.append((time.perf_counter() - started) * 1000)
    return Timing(name, samples)


def _fetch(session: requests.Session, url: str, accept: str, expect: bytes = b"") -> None:
    """GET the whole body; a non-200 or a body without ``expect`` stops the benchmark."""
    response = session.get(url, headers={"Accept": accept})
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:200]}")
    if expect not in response.content:
        raise RuntimeError(f"GET {url}: the answer lacks {expect!r} (not what was asked)")


def http_cases(session: requests.Session, root: str, data: BenchData, n: int) -> list[Timing]:
    rng = random.Random(7)
    series_url = f"{root}/studies/{data.study}/series/{data.series}"
    jpeg_ls = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.80'

    def instance_url() -> str:
        return f"{series_url}/instances/{rng.choice(data.instances)}"

    def metadata(_: int) -> None:
        _fetch(session, f"{series_url}/metadata", "application/dicom+json")

    def frame(_: int) -> None:
        _fetch(session, f"{instance_url()}/frames/1", OCTET_FRAMES)

    def rendered(_: int) -> None:
        _fetch(session, f"{instance_url()}/frames/1/rendered", "image/jpeg")

    def transcoded(_: int) -> None:
        _fetch(session, instance_url(), jpeg_ls, expect=b"1.2.840.10008.1.2.4.80")

    return [
        measure("series metadata", n, metadata),
        measure("single frame", n, frame),
        measure("rendered frame", n, rendered),
        measure("instance as JPEG-LS", max(20, n // 10), transcoded, warmup=2),
    ]


def series_throughput(
    session: requests.Session, url: str, runs: int, accept: str = ANY_DICOM
) -> tuple[float, float]:
    """(MB/s, MB per run) of whole-series multipart retrieval, streamed and discarded."""
    rates, size = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        size = 0
        with session.get(url, headers={"Accept": accept}, stream=True) as response:
            response.raise_for_status()
            for chunk in response.iter_content(1 << 20):
                size += len(chunk)
        rates.append(size / 1e6 / (time.perf_counter() - started))
    return statistics.median(rates), size / 1e6


def cget_throughput(port: int, data: BenchData, called_ae: str = "PACS") -> str:
    """Instances/s of a series-level C-GET with pynetdicom, or why it cannot run."""
    if called_ae == "PACS" and importlib.util.find_spec("pacs.dimse.get") is None:
        return "C-GET: not available (no C-GET SCP, pacs/dimse/get.py, in this tree)"
    from pydicom.dataset import Dataset
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        CTImageStorage,
        StudyRootQueryRetrieveInformationModelGet,
    )

    received = 0

    def on_store(event: Any) -> int:
        nonlocal received
        received += 1
        return 0x0000

    ae = AE(ae_title=CALLING_AE)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title=called_ae,
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    if not assoc.is_established:
        return "C-GET: association refused"
    try:
        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID = data.study
        query.SeriesInstanceUID = data.series
        started = time.perf_counter()
        final = None
        for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
            if status is not None:
                final = status.Status
        elapsed = time.perf_counter() - started
    finally:
        assoc.release()
    status_text = f"0x{final:04X}" if final is not None else "no response"
    return (
        f"C-GET (series, {received} instances): {received / elapsed:.1f} instances/s, "
        f"{elapsed:.1f} s, final status {status_text}"
    )


# --- Orthanc side by side ------------------------------------------------------------------


def orthanc_missing() -> str | None:
    """Why Orthanc cannot run beside ours here, or ``None`` when it can."""
    if shutil.which("Orthanc") is None:
        return "Orthanc binary not installed"
    if not ORTHANC_PLUGIN.is_file():
        return f"Orthanc DICOMweb plugin not installed ({ORTHANC_PLUGIN})"
    return None


def run_orthanc_side(workdir: Path, data: BenchData, args: argparse.Namespace) -> dict[str, Any]:
    """Run the Orthanc measurements in a loopback-only namespace; their figures as a dict."""
    prefix = make_namespace()
    if not prefix:
        return {"skipped": "cannot create a network namespace (needs root)"}
    job = workdir / "orthanc-job.json"
    job.write_text(json.dumps({"data": data.__dict__, "args": vars(args), "workdir": str(workdir)}))
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "bench.retrieve", "--orthanc-child", str(job)],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    finally:
        drop_namespace(prefix)
    if done.returncode != 0:
        return {"skipped": f"Orthanc run failed: {done.stderr.strip()[-500:]}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@contextmanager
def orthanc_server(
    workdir: Path, extra: dict[str, Any] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Stock Orthanc with its DICOMweb plugin on 127.0.0.1:8042 (run inside the namespace).

    ``extra`` settings are merged over ours (bench/viewer adds ServeFolders for OHIF).
    """
    config = workdir / "orthanc-cfg"
    config.mkdir(exist_ok=True)
    settings: dict[str, Any] = {
        "Name": "bench",
        "StorageDirectory": str(workdir / "orthanc-storage"),
        "IndexDirectory": str(workdir / "orthanc-index"),
        "DicomAet": "ORTHANC",
        "DicomPort": 4242,
        "HttpPort": 8042,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(ORTHANC_PLUGIN)],
        "DicomModalities": {"bench": [CALLING_AE, "127.0.0.1", 11113]},
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (config / "orthanc.json").write_text(json.dumps({**settings, **(extra or {})}))
    with (workdir / "orthanc.log").open("wb") as log:
        env = {**os.environ, "TCP_NODELAY": "1"}
        process = subprocess.Popen(
            ["Orthanc", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        base = "http://127.0.0.1:8042"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    requests.get(base + "/system", timeout=1).raise_for_status()
                    break
                except requests.RequestException:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("Orthanc did not start") from None
                    time.sleep(0.2)
            yield process, base
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def orthanc_child(job_file: Path) -> None:
    """Inside the namespace: start Orthanc, upload our blobs, measure, print one JSON line."""
    job = json.loads(job_file.read_text())
    data, args, workdir = BenchData(**job["data"]), job["args"], Path(job["workdir"])
    files = sorted((workdir / "data" / "blobs").rglob("*.dcm"))
    with orthanc_server(workdir) as (process, base):
        session = requests.Session()
        started = time.perf_counter()
        for path in files:
            session.post(base + "/instances", data=path.read_bytes()).raise_for_status()
        upload_s = time.perf_counter() - started
        watcher = PeakWatcher(process.pid)
        watcher.start()
        root = base + "/dicom-web"
        timings = http_cases(session, root, data, int(args["requests"]))
        series_url = f"{root}/studies/{data.study}/series/{data.series}"
        rate, megabytes = series_throughput(session, series_url, int(args["series_runs"]))
        jls_rate, jls_mb = series_throughput(session, series_url, 1, JPEG_LS_DICOM)
        cget = cget_throughput(4242, data, called_ae="ORTHANC")
        peak = max(watcher.stop(), peak_rss_mb(process.pid))
    print(
        json.dumps(
            {
                "timings": {t.name: t.samples_ms for t in timings},
                "series_mb_s": rate,
                "series_mb": megabytes,
                "jls_mb_s": jls_rate,
                "jls_mb": jls_mb,
                "instances": len(data.instances),
                "cget": cget,
                "peak_rss_mb": peak,
                "upload_s": upload_s,
                "files": len(files),
            }
        )
    )


def print_orthanc(result: dict[str, Any], ours: list[Timing], our_rate: float) -> None:
    if "skipped" in result:
        print(f"Orthanc: side-by-side skipped: {result['skipped']}")
        return
    print(
        f"\nOrthanc 1.10 + DICOMweb plugin (same {result['files']} files, uploaded over REST in "
        f"{result['upload_s']:.0f} s), ratio = Orthanc p50 / ours p50 (above 1: ours is faster)"
    )
    for timing in ours:
        samples = result["timings"].get(timing.name)
        if not samples:
            continue
        theirs = Timing(timing.name, samples)
        ratio = theirs.percentile(50) / max(timing.percentile(50), 1e-6)
        print(f"{theirs.line()}  ratio {ratio:5.2f}")
    ratio = our_rate / max(result["series_mb_s"], 1e-6)
    print(
        f"whole-series retrieval  {result['series_mb_s']:7.1f} MB/s ({result['series_mb']:.0f} MB)"
        f"  ratio ours/Orthanc {ratio:5.2f}"
    )
    per_second = result["instances"] * result["jls_mb_s"] / max(result["jls_mb"], 1e-6)
    print(f"series as JPEG-LS       {per_second:7.1f} instances/s ({result['jls_mb']:.0f} MB sent)")
    print(f"Orthanc peak RSS (VmHWM) {result['peak_rss_mb']:7.1f} MB")
    print(f"Orthanc {result['cget']}")


# --- --memory: the 300 MB bound, through either door ---------------------------------------

MEMORY_LIMIT_MB = 300.0
XA_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.12.1"  # classic multi-frame, offered by getscu
LARGE_SIDE = 512  # the large instance's frames: 512 x 512, 16-bit
CHUNK = 1 << 20
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}  # see FIELD-NOTES: Nagle costs 5x in DCMTK


@dataclass
class Phase:
    """One measured step: what moved, how long it took, what the process's peak was."""

    name: str
    megabytes: float
    seconds: float
    peak_mb: float
    start_mb: float | None  # resident memory when the peak was reset (None: reset refused)

    def line(self) -> str:
        rate = self.megabytes / self.seconds if self.seconds else 0.0
        start = f"{self.start_mb:6.0f}" if self.start_mb is not None else "     -"
        under = "yes" if self.peak_mb < MEMORY_LIMIT_MB else "NO"
        return (
            f"{self.name:<40} {self.megabytes:8.1f} {self.seconds:8.1f} {rate:8.1f}"
            f" {start} {self.peak_mb:8.0f}   {under}"
        )


def phase_table(phases: list[Phase]) -> str:
    header = (
        f"{'phase':<40} {'MB moved':>8} {'seconds':>8} {'MB/s':>8} {'RSS0':>6}"
        f" {'VmHWM MB':>8}   under {MEMORY_LIMIT_MB:.0f} MB"
    )
    return "\n".join([header, "-" * len(header), *(p.line() for p in phases)])


def write_large_instance(path: Path, megabytes: int) -> dict[str, str]:
    """A multi-frame XA instance of ~``megabytes`` MiB of pixels, written in 1 MiB chunks.

    Only the header goes through pydicom; Pixel Data is appended as an explicit-length OW
    element, so the generator never holds more than one chunk (a 1 GB dataset built in memory
    would make the bench itself the memory problem). Returns its UIDs.
    """
    frame_bytes = LARGE_SIDE * LARGE_SIDE * 2
    frames = max(1, megabytes * (1 << 20) // frame_bytes)
    length = frames * frame_bytes
    if length >= 0xFFFFFFFF:
        raise ValueError("--large-mb must stay under 4096 (a 32-bit element length)")
    uids: dict[str, str] = {
        "study": generate_uid(),
        "series": generate_uid(),
        "sop": generate_uid(),
    }
    _large_header(path, uids, frames)
    with path.open("ab") as out:
        out.write(b"\xe0\x7f\x10\x00OW\x00\x00" + length.to_bytes(4, "little"))
        noise = os.urandom(CHUNK)
        for index in range(length // CHUNK):
            out.write(index.to_bytes(8, "little") + noise[8:])  # every chunk differs
        out.write(noise[: length % CHUNK])
    return uids


def _large_header(path: Path, uids: dict[str, str], frames: int) -> None:
    """Everything but Pixel Data, as a Part 10 file (Explicit VR Little Endian)."""
    from pydicom import dcmwrite
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(XA_IMAGE_STORAGE)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(uids["sop"])
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = UID(XA_IMAGE_STORAGE)
    ds.SOPInstanceUID = UID(uids["sop"])
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.PatientID = "BENCHMEM1"
    ds.PatientName = "Bench^Large"
    ds.Modality = "XA"
    ds.StudyDate = "20261123"
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = LARGE_SIDE
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00181063
    ds.FrameTime = 33.3
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    dcmwrite(path, ds, enforce_file_format=True)


def write_study(folder: Path, count: int, size: int) -> dict[str, str]:
    """``count`` CT slices of one series as Part 10 files in ``folder``; the UIDs."""
    folder.mkdir(parents=True, exist_ok=True)
    uids: dict[str, str] = {
        "study": generate_uid(),
        "series": generate_uid(),
        "frame": generate_uid(),
    }
    base, rng = phantom(size), np.random.default_rng(20261123)
    for index in range(count):
        ct_slice(index, base, uids, rng).save_as(
            folder / f"{index:05d}.dcm", enforce_file_format=True
        )
    return uids


def _folder_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def _create_archive(data_dir: Path) -> None:
    """What `pacs serve` does on its first start."""
    from pacs.archive import Archive
    from pacs.settings import Settings

    Archive.open(Settings(data_dir=data_dir)).close()


def pacs_import(workdir: Path, data_dir: Path, source: Path, name: str) -> Phase:
    """``pacs import`` as a child process; its peak is the child's ``ru_maxrss`` (wait4)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    env["PACS_DATA_DIR"] = str(data_dir)
    command = [sys.executable, "-m", "app.cli", "import", "--quiet", str(source)]
    started = time.perf_counter()
    with (workdir / "import.log").open("ab") as log:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=log)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"pacs import {source} exited {process.returncode}, see import.log")
    return Phase(name, _folder_mb(source), elapsed, usage.ru_maxrss / 1024, None)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak(pid: int) -> float | None:
    """Bring VmHWM down to the current RSS (Linux 4.0+), so each phase is measured alone.

    Returns the RSS it starts from, or ``None`` where the kernel refuses: then the peak is
    cumulative, which can only overstate a phase.
    """
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return None
    return _rss_mb(pid)


def server_phase(pid: int, name: str, action: Callable[[], float]) -> Phase:
    """Reset the server's peak, run ``action`` (it returns MB moved), read the peak."""
    start = _reset_peak(pid)
    started = time.perf_counter()
    megabytes = action()
    elapsed = time.perf_counter() - started
    phase = Phase(name, megabytes, elapsed, peak_rss_mb(pid), start)
    print(phase.line(), flush=True)
    return phase


def stream_mb(session: requests.Session, url: str, accept: str, expect: bytes = b"") -> float:
    """GET ``url`` streamed in 1 MiB reads and discarded; MB received.

    A non-200, or a body without ``expect``, stops the benchmark: a figure for the wrong answer
    would be worthless.
    """
    size, found, tail = 0, not expect, b""
    with session.get(url, headers={"Accept": accept}, stream=True, timeout=600) as response:
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:200]}")
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if not found:
                found = expect in tail + chunk
                tail = chunk[-len(expect) :]
    if not found:
        raise RuntimeError(f"GET {url}: the answer lacks {expect!r}")
    return size / 1e6


def dcmtk_retrieve(
    tool: list[str], port: int, keys: list[str], received: Path, count: int
) -> float:
    """Run getscu/movescu with study-root ``keys``; MB of the ``count`` files in ``received``.

    The files are deleted afterwards (a C-GET of 2,000 slices is a gigabyte on disk).
    """
    received.mkdir(parents=True, exist_ok=True)
    command = [*tool, "-aec", "PACS", "-S", *keys, "127.0.0.1", str(port)]
    done = subprocess.run(command, env=DCMTK_ENV, capture_output=True, text=True, timeout=3600)
    try:
        files = [p for p in received.rglob("*") if p.is_file()]
        if done.returncode != 0 or len(files) != count:
            raise RuntimeError(
                f"{tool[0]}: exit {done.returncode}, {len(files)} of {count} files: "
                f"{done.stderr.strip()[-300:]}"
            )
        return sum(p.stat().st_size for p in files) / 1e6
    finally:
        shutil.rmtree(received, ignore_errors=True)


@contextmanager
def storescp(folder: Path, port: int) -> Iterator[Path]:
    """DCMTK storescp as the C-MOVE destination (AE STORESCP), writing into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    command = ["storescp", "-aet", "STORESCP", "-od", str(folder), str(port)]
    process = subprocess.Popen(
        command, env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("storescp did not start")
            time.sleep(0.05)
        yield folder
    finally:
        process.terminate()
        process.wait(10)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def memory_phases(
    server: Server, token: str, study: dict[str, str], large: dict[str, str], args: Any
) -> list[Phase]:
    """The retrievals, each with the server's peak reset before and read after."""
    workdir, pid, port = Path(args.workdir), server.process.pid, server.dicom_port
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    root = server.base_url + "/dicom-web"
    study_url = f"{root}/studies/{study['study']}"
    large_url = f"{root}/studies/{large['study']}/series/{large['series']}/instances/{large['sop']}"
    n = args.study_instances
    study_keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study['study']}"]
    large_keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={large['study']}"]
    getscu = ["getscu", "-aet", "GETSCU", "-od", str(workdir / "got")]
    phases = [
        server_phase(
            pid, f"WADO-RS study, {n} instances", lambda: stream_mb(session, study_url, ANY_DICOM)
        ),
        server_phase(
            pid,
            f"WADO-RS instance, {args.large_mb} MB",
            lambda: stream_mb(session, large_url, ANY_DICOM),
        ),
        server_phase(
            pid,
            f"WADO-RS series metadata, {n} instances",
            lambda: stream_mb(
                session,
                f"{study_url}/series/{study['series']}/metadata",
                "application/dicom+json",
                expect=b"00080018",
            ),
        ),
        server_phase(
            pid,
            f"C-GET study, {n} instances (getscu)",
            lambda: dcmtk_retrieve(getscu, port, study_keys, workdir / "got", n),
        ),
        server_phase(
            pid,
            f"C-GET instance, {args.large_mb} MB (getscu)",
            lambda: dcmtk_retrieve(getscu, port, large_keys, workdir / "got", 1),
        ),
    ]
    with storescp(workdir / "moved", args.storescp_port) as moved:
        movescu = ["movescu", "-aet", "MOVESCU", "-aem", "STORESCP"]
        phases.append(
            server_phase(
                pid,
                f"C-MOVE instance, {args.large_mb} MB (movescu)",
                lambda: _move(movescu, port, large_keys, moved),
            )
        )
    session.close()
    return phases


def _move(tool: list[str], port: int, keys: list[str], moved: Path) -> float:
    """movescu to our storescp; storescp has written the file when movescu returns."""
    command = [*tool, "-aec", "PACS", "-S", *keys, "127.0.0.1", str(port)]
    done = subprocess.run(command, env=DCMTK_ENV, capture_output=True, text=True, timeout=3600)
    try:
        files = [p for p in moved.rglob("*") if p.is_file()]
        if done.returncode != 0 or len(files) != 1:
            raise RuntimeError(
                f"movescu: exit {done.returncode}, {len(files)} files: {done.stderr[-300:]}"
            )
        return files[0].stat().st_size / 1e6
    finally:
        for path in moved.iterdir():
            path.unlink()


def memory_main(args: argparse.Namespace) -> None:
    """Generate, import, serve, retrieve: one table of MB, seconds and peak memory."""
    workdir = Path(tempfile.mkdtemp(prefix="pacs-bench-memory-"))
    data_dir = workdir / "data"
    args.workdir, args.storescp_port = str(workdir), free_port()
    try:
        started = time.perf_counter()
        large = write_large_instance(workdir / "large.dcm", args.large_mb)
        study = write_study(workdir / "study", args.study_instances, args.size)
        print(f"generated the files in {time.perf_counter() - started:.0f} s", flush=True)
        _create_archive(data_dir)  # `pacs import` acts only on an existing archive
        ingest = [
            pacs_import(
                workdir,
                data_dir,
                workdir / "study",
                f"pacs import study, {args.study_instances} instances",
            ),
            pacs_import(
                workdir,
                data_dir,
                workdir / "large.dcm",
                f"pacs import instance, {args.large_mb} MB",
            ),
        ]
        shutil.rmtree(workdir / "study")  # the archive holds its own copies now
        (workdir / "large.dcm").unlink()
        token = make_token(data_dir)
        remote = [
            {"ae_title": "GETSCU", "services": ["get"]},
            {"ae_title": "MOVESCU", "services": ["move"]},
            {
                "ae_title": "STORESCP",
                "host": "127.0.0.1",
                "port": args.storescp_port,
                "services": ["store"],
            },
        ]
        with serve(workdir, data_dir, remote) as server:
            print(f"server up, RSS {_rss_mb(server.process.pid):.0f} MB; phases:", flush=True)
            phases = memory_phases(server, token, study, large, args)
        print(
            "\npacs import (child process peak, ru_maxrss) and pacs serve (VmHWM reset per phase)"
        )
        print(phase_table(ingest + phases))
        held = all(p.peak_mb < MEMORY_LIMIT_MB for p in phases)
        print(
            f"server under {MEMORY_LIMIT_MB:.0f} MB in every retrieval: {'yes' if held else 'NO'}"
        )
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--study-slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--series-runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temp data folder")
    parser.add_argument("--no-orthanc", action="store_true", help="skip the Orthanc side")
    parser.add_argument("--orthanc-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--memory", action="store_true", help="server peak memory per retrieval (300 MB bound)"
    )
    parser.add_argument("--large-mb", type=int, default=1024, help="--memory: large instance")
    parser.add_argument("--study-instances", type=int, default=2000, help="--memory: study")
    args = parser.parse_args(argv)
    if args.memory:
        memory_main(args)
        return
    if args.orthanc_child:
        orthanc_child(args.orthanc_child)
        return

    workdir = Path(tempfile.mkdtemp(prefix="pacs-bench-retrieve-"))
    data_dir = workdir / "data"
    try:
        data = build_archive(data_dir, args.instances, args.study_slices, args.size)
        token = make_token(data_dir)
        with serve(workdir, data_dir) as server:
            watcher = PeakWatcher(server.process.pid)
            watcher.start()
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {token}"
            root = server.base_url + "/dicom-web"
            timings = http_cases(session, root, data, args.requests)
            series_url = f"{root}/studies/{data.study}/series/{data.series}"
            rate, megabytes = series_throughput(session, series_url, args.series_runs)
            jls_rate, jls_mb = series_throughput(session, series_url, 1, JPEG_LS_DICOM)
            cget = cget_throughput(server.dicom_port, data)
            peak = watcher.stop()
            session.close()
        print(f"\nours: pacs serve (SQLite + files), {args.instances}-instance series")
        for timing in timings:
            print(timing.line())
        print(
            f"whole-series retrieval  {rate:7.1f} MB/s (multipart, transfer-syntax=*, "
            f"{megabytes:.0f} MB, median of {args.series_runs} runs)"
        )
        per_second = len(data.instances) * jls_rate / max(jls_mb, 1e-6)
        print(
            f"series as JPEG-LS       {per_second:7.1f} instances/s (transcoded on the fly, "
            f"{jls_mb:.0f} MB sent, 1 run)"
        )
        print(cget)
        print(f"server peak RSS (VmHWM) {peak:7.1f} MB", flush=True)
        missing = "--no-orthanc given" if args.no_orthanc else orthanc_missing()
        if missing:
            print(f"Orthanc: side-by-side skipped: {missing}")
        else:
            print_orthanc(run_orthanc_side(workdir, data, args), timings, rate)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
