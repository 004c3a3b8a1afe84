"""The attacks of issue 15, once, against one real ``pacs serve``: what got through.

One server (SQLite + files, 2 DICOM processes, strict DICOM with one registered
modality, loopback only) is given a few good instances first, whose WADO-RS
bytes are hashed; then each attack runs, bounded in count and time:

1. 200 hostile DICOM connections (half A-ASSOCIATE-RQs, garbage, full requests
   from an unknown title left idle) from 127.0.0.2 and up, while the registered
   modality at 127.0.0.1 does C-ECHO and C-STORE; then 8 A-ASSOCIATE-RQs that
   declare 4 GiB and stream as fast as loopback takes them;
2. 150 wrong PINs on a PIN share link, then the right PIN;
3. HTTP Basic and bearer guesses;
4. a hostile pixel corpus over STOW-RS, then frame requests on what is stored;
5. the QIDO inputs that gave 500 before, and a short random QIDO fuzz.

Each row says how many requests were tried, how many were refused (4xx, DIMSE
failure, connection closed by the server), how many got a 5xx, whether the
server crashed (a process gone or /health failing), whether data was lost (a good
instance no longer retrievable with the same hash) and the server's peak
resident memory so far (the sum of ``VmHWM`` over its processes, from /proc).
A figure, not a verdict: nothing here passes or fails on time.

    PYTHONPATH=. .venv/bin/python -m bench.attacks
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import secrets
import socket
import string
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from bench.ingest import free_port, peak_rss_mb, process_tree
from tests.dicom_factory import ct_slice, to_bytes

MODALITY = "MODALITY"
ADMIN_PASSWORD = secrets.token_urlsafe(16)
PIN = "2468"
STOW_BOUNDARY = "hostile"


@dataclass
class Row:
    """One attack's outcome."""

    name: str
    tried: int = 0
    refused: int = 0
    server_errors: int = 0
    crashed: bool = False
    lost: int = 0
    peak_mb: float = 0.0
    largest_mb: float = 0.0  # the largest single process's VmHWM
    notes: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def count(self, status: int, what: str) -> None:
        """Count one HTTP answer; a 5xx is kept, with its request, in the notes."""
        self.tried += 1
        self.statuses[status] += 1
        if 400 <= status < 500:
            self.refused += 1
        elif status >= 500:
            self.server_errors += 1
            if len(self.notes) < 5:
                self.notes.append(f"{status} on {what}")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    dicom_port: int


@contextmanager
def serve(workdir: Path) -> Iterator[Server]:
    """``pacs serve`` on loopback, free ports, strict DICOM with one registered modality."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    dicom_port, http_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    remote = [
        {"ae_title": MODALITY, "host": "127.0.0.1", "port": 11112, "services": ["echo", "store"]}
    ]
    env |= {
        "PACS_DATA_DIR": str(workdir / "data"),
        "PACS_DICOM_HOST": "127.0.0.1",
        "PACS_DICOM_PORT": str(dicom_port),
        "PACS_HL7_PORT": "0",
        "PACS_HTTP_HOST": "127.0.0.1",
        "PACS_HTTP_PORT": str(http_port),
        "PACS_LOG_LEVEL": "WARNING",
        "PACS_REMOTE_AES": json.dumps(remote),
        "PACS_DICOM_STRICT": "true",
        "PACS_DICOM_PROCESSES": "2",
        "PACS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PACS_PUBLIC_BASE_URL": base,
    }
    with (workdir / "pacs.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, base, dicom_port)
    try:
        deadline = time.monotonic() + 60
        while not healthy(server):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pacs serve did not start; see " + str(workdir / "pacs.log"))
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def largest_hwm_mb(pid: int) -> float:
    """The largest ``VmHWM`` of one process of the tree, in MB."""
    largest = 0.0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    largest = max(largest, int(line.split()[1]) / 1024)
        except OSError:
            pass
    return largest


def healthy(server: Server) -> bool:
    try:
        return requests.get(server.base + "/health", timeout=5).status_code < 500
    except requests.RequestException:
        return False


# --- the good data --------------------------------------------------------------------------


def wado_hash(session: requests.Session, server: Server, ds: Dataset) -> str | None:
    """SHA-256 of the instance's payload as WADO-RS serves it (None: not retrievable)."""
    url = (
        f"{server.base}/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    try:
        answer = session.get(url, headers={"Accept": "multipart/related; type=application/dicom"})
    except requests.RequestException:
        return None
    if answer.status_code != 200:
        return None
    boundary = answer.headers["Content-Type"].split("boundary=")[1].split(";")[0].strip('"')
    part = answer.content.split(b"--" + boundary.encode())[1]
    return hashlib.sha256(part.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n")).hexdigest()


def stow(session: requests.Session, server: Server, data: bytes) -> requests.Response:
    body = (
        f"--{STOW_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{STOW_BOUNDARY}--\r\n".encode()
    )
    kind = f'multipart/related; type="application/dicom"; boundary={STOW_BOUNDARY}'
    return session.post(
        server.base + "/dicom-web/studies", data=body, headers={"Content-Type": kind}, timeout=60
    )


# --- 1. the DICOM port ----------------------------------------------------------------------


def _item(kind: int, value: bytes) -> bytes:
    return bytes([kind, 0]) + struct.pack(">H", len(value)) + value


def associate_rq(calling: str, called: str = "PACS") -> bytes:
    """A complete A-ASSOCIATE-RQ (Verification, Implicit VR Little Endian)."""
    context = bytes([1, 0, 0, 0]) + _item(0x30, b"1.2.840.10008.1.1")
    context += _item(0x40, b"1.2.840.10008.1.2")
    body = struct.pack(">HH", 1, 0) + called.encode().ljust(16) + calling.encode().ljust(16)
    body += bytes(32) + _item(0x10, b"1.2.840.10008.3.1.1.1") + _item(0x20, context)
    body += _item(0x50, _item(0x51, struct.pack(">L", 16384)))
    return bytes([1, 0]) + struct.pack(">L", len(body)) + body


HALF_PDU = associate_rq("INTRUDER")[:10]
GARBAGE = b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n" + bytes(range(256))


def dicom_port(server: Server, row: Row, count: int, wait: float) -> None:
    """``count`` hostile connections, then the modality's C-ECHO and C-STORE among them."""
    started = time.monotonic()
    payloads = [HALF_PDU, GARBAGE, associate_rq("INTRUDER")]

    def connect(n: int) -> socket.socket | None:
        sock = socket.socket()
        sock.settimeout(5)
        try:
            sock.bind((f"127.0.0.{2 + n % 25}", 0))
            sock.connect(("127.0.0.1", server.dicom_port))
            sock.sendall(payloads[n % 3])
        except OSError:
            sock.close()
            return None  # refused, reset or not accepted within 5 s
        sock.setblocking(False)
        return sock

    with ThreadPoolExecutor(max_workers=50) as pool:
        opened = list(pool.map(connect, range(count)))
    sockets = [sock for sock in opened if sock is not None]
    row.tried += count - len(sockets)
    row.refused += count - len(sockets)
    row.notes.append(f"{count - len(sockets)} not connected")
    row.tried += len(sockets)
    row.notes.append(f"opened in {time.monotonic() - started:.1f} s")
    ae = AE(ae_title=MODALITY)
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    ok = []
    asked = time.monotonic()
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="PACS")
    if assoc.is_established:
        echo = assoc.send_c_echo()
        ds = ct_slice(patient_id="BN-DIMSE")
        store = assoc.send_c_store(ds)
        ok = [echo.Status == 0 if echo else False, store.Status == 0 if store else False]
        assoc.release()
    row.notes.append(
        f"modality echo/store among them: {ok or 'association refused'}"
        f" in {time.monotonic() - asked:.2f} s (association to C-STORE response)"
    )
    open_ = set(range(len(sockets)))
    deadline = time.monotonic() + wait
    while open_ and time.monotonic() < deadline:
        for index in list(open_):
            try:
                while data := sockets[index].recv(4096):
                    del data
                open_.discard(index)  # closed by the server
            except BlockingIOError:
                pass
            except OSError:
                open_.discard(index)
        time.sleep(0.2)
    row.refused += len(sockets) - len(open_)
    kinds = Counter(
        ("half PDU", "garbage", "A-ASSOCIATE-RQ")[opened.index(sockets[i]) % 3] for i in open_
    )
    row.notes.append(
        f"{len(open_)} hostile connections still open after {wait:.0f} s more {dict(kinds)}"
    )
    for sock in sockets:
        sock.close()


def big_pdus(server: Server, row: Row, count: int = 8) -> None:
    """A-ASSOCIATE-RQs declaring 4 GiB, each streamed until the server closes (or 64 MiB)."""

    def one(n: int) -> int:
        sock = socket.socket()
        sock.settimeout(10)
        sent = 0
        try:
            sock.bind((f"127.0.0.{40 + n}", 0))
            sock.connect(("127.0.0.1", server.dicom_port))
            sock.sendall(bytes([0x01, 0x00]) + struct.pack(">L", 0xFFFFFFF0))
            chunk = bytes(1 << 20)
            while sent < 64 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # closed by the server
        finally:
            sock.close()
        return sent

    with ThreadPoolExecutor(max_workers=count) as pool:
        taken = list(pool.map(one, range(count)))
    row.tried += count
    row.refused += sum(1 for sent in taken if sent < 64 << 20)
    row.notes.append(f"MiB taken before the server closed: {[sent >> 20 for sent in taken]}")


# --- 2. share PINs --------------------------------------------------------------------------


def share_pins(server: Server, admin: requests.Session, study_uid: str, row: Row) -> None:
    made = admin.post(f"{server.base}/api/studies/{study_uid}/shares", json={"pin": PIN})
    if made.status_code != 201:
        row.notes.append(f"share not created: {made.status_code} {made.text[:120]}")
        return
    url = made.json()["url"]
    guesser = requests.Session()
    for n in range(150):
        pin = f"{(int(PIN) + 1 + n) % 10000:04d}"
        answer = guesser.post(url, data={"pin": pin}, allow_redirects=False)
        row.count(answer.status_code, f"POST share link, wrong PIN {pin}")
    right = requests.post(url, data={"pin": PIN}, allow_redirects=False)
    row.count(right.status_code, "POST share link, right PIN")
    row.notes.append(f"right PIN afterwards: {right.status_code}")


# --- 3. credential guesses ------------------------------------------------------------------


def credentials(server: Server, row: Row, each: int) -> None:
    url = server.base + "/dicom-web/studies"
    for n in range(each):
        answer = requests.get(url, auth=("admin", f"guess-{n}"))
        row.count(answer.status_code, "GET /dicom-web/studies with a wrong Basic password")
    for _ in range(each):
        token = secrets.token_urlsafe(32)
        answer = requests.get(url, headers={"Authorization": f"Bearer {token}"})
        row.count(answer.status_code, "GET /dicom-web/studies with a made-up bearer token")


# --- 4. hostile pixels ----------------------------------------------------------------------


def _frames(count: Any, rows: int = 1, columns: int = 1, pixel_bytes: int | None = None) -> bytes:
    ds = ct_slice(size=1, patient_id="BN-HOSTILE")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7.1")
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    del ds.RescaleIntercept, ds.RescaleSlope
    ds.NumberOfFrames = count
    size = pixel_bytes if pixel_bytes is not None else (int(count) * rows * columns + 7) // 8
    ds.PixelData = b"\x55" * (size + size % 2)
    ds["PixelData"].VR = "OB"
    return to_bytes(ds)


def _sixteen(rows: int, columns: int, frames: int, pixel_bytes: int) -> bytes:
    ds = ct_slice(size=1, patient_id="BN-HOSTILE")
    ds.Rows, ds.Columns = rows, columns
    if frames != 1:
        ds.NumberOfFrames = frames
    ds.PixelData = b"\x00" * pixel_bytes
    return to_bytes(ds)


def corpus() -> list[tuple[str, bytes]]:
    return [
        ("4 million 1-bit frames in 0.5 MB", _frames(4_000_000)),
        ("1000 frames, 10 bytes of pixels", _frames(1000, pixel_bytes=10)),
        ("2^31-1 frames", _frames(2**31 - 1, pixel_bytes=64)),
        ("65535 x 65535, 16 bytes", _sixteen(65535, 65535, 1, 16)),
        ("65535 x 65535 x 1000 frames", _sixteen(65535, 65535, 1000, 16)),
        ("64 x 64 with half its pixels", _sixteen(64, 64, 1, 4096)),
        ("0 rows", _sixteen(0, 64, 1, 128)),
        ("100 frames of 64 x 64, one frame of pixels", _sixteen(64, 64, 100, 8192)),
        ("1 million 1-bit frames, exact (125 kB)", _frames(1_000_000)),
        ("10000 1-bit frames, exact", _frames(10_000)),
    ]


def hostile_pixels(server: Server, admin: requests.Session, good: list[Dataset], row: Row) -> None:
    stored: list[tuple[str, str, str]] = [
        (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in good
    ]
    accepted = []
    for name, data in corpus():
        answer = stow(admin, server, data)
        row.count(answer.status_code, f"STOW {name}")
        if answer.status_code < 300 or answer.status_code == 202:
            accepted.append(name)
            body = answer.json()
            for item in body.get("00081199", {}).get("Value", []):
                url = item.get("00081190", {}).get("Value", [""])[0]
                parts = url.split("/studies/")[-1].split("/")
                if len(parts) >= 5:
                    stored.append((parts[0], parts[2], parts[4]))
    row.notes.append(f"STOW accepted: {accepted or 'none'}")
    frame_lists = ["1", "0", "2", "99999999", "18446744073709551617", "1,2,3", "-1", "x", "1,1,1,1"]
    for study, series, sop in stored:
        base = f"{server.base}/dicom-web/studies/{study}/series/{series}/instances/{sop}"
        for frames in frame_lists:
            answer = admin.get(
                f"{base}/frames/{frames}",
                headers={"Accept": "multipart/related; type=application/octet-stream"},
                timeout=60,
            )
            row.count(answer.status_code, f"GET .../frames/{frames} of {sop}")
        answer = admin.get(f"{base}/rendered", headers={"Accept": "image/png"}, timeout=60)
        row.count(answer.status_code, f"GET .../rendered of {sop}")


# --- 5. QIDO and other inputs that gave 500 -------------------------------------------------


def named_inputs(server: Server, admin: requests.Session, study_uid: str, row: Row) -> None:
    web = server.base + "/dicom-web"
    queries = [
        "/series?includefield=all",
        "/series?ModalitiesInStudy=CT",
        "/series?00081032=x",
        "/series?ReferencedStudySequence=1",
        "/series?00081115.0020000E=1",
        "/studies?offset=18446744073709551617",
        "/studies?limit=18446744073709551617",
        "/studies?offset=-1",
        "/instances?InstanceNumber=18446744073709551617",
        "/studies?StudyDate=99999999-",
        f"/studies/{study_uid}/series?includefield=all&offset=99999999999999999999999",
    ]
    for query in queries:
        answer = admin.get(web + query, headers={"Accept": "application/dicom+json"})
        row.count(answer.status_code, f"GET {query}")
    boundary = "b" * 5000
    answer = admin.post(
        web + "/studies",
        data=f"--{boundary}\r\n\r\n--{boundary}--\r\n".encode(),
        headers={"Content-Type": f"multipart/related; type=application/dicom; boundary={boundary}"},
    )
    row.count(answer.status_code, "STOW with a 5,000-character boundary")
    for days in ("NaN", "Infinity", "1e309", "-1"):
        answer = admin.post(
            f"{server.base}/api/studies/{study_uid}/shares",
            data='{"days": ' + days + "}",
            headers={"Content-Type": "application/json"},
        )
        row.count(answer.status_code, f"POST share with days={days}")


def random_qido(server: Server, admin: requests.Session, row: Row, count: int) -> None:
    rng = random.Random(15)
    keys = [
        "PatientID",
        "PatientName",
        "StudyDate",
        "StudyTime",
        "ModalitiesInStudy",
        "Modality",
        "AccessionNumber",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "InstanceNumber",
        "SeriesNumber",
        "includefield",
        "limit",
        "offset",
        "fuzzymatching",
        "00100010",
        "0020000D",
        "00081030",
        "00400275",
        "ReferencedSOPSequence",
        "00080020",
    ]
    levels = ["/studies", "/series", "/instances", "/studies/1.2.3/series", "/studies/1/instances"]
    alphabet = string.printable + "áàảãạăễ\x00\u202e*?\\"
    values = [
        "*",
        "?",
        "-",
        "0",
        "-1",
        "1e400",
        "NaN",
        str(2**70),
        "20250101-",
        "-20250101",
        "BN0001",
        "Nguyễn*",
        "\\",
        "all",
        "true",
        "1.2.3",
        "%",
        "' OR 1=1 --",
        "x" * 5000,
    ]
    for _ in range(count):
        params = []
        for _ in range(rng.randint(1, 4)):
            key = rng.choice(keys)
            if rng.random() < 0.5:
                value = rng.choice(values)
            else:
                value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
            params.append((key, value))
        level = rng.choice(levels)
        answer = admin.get(
            server.base + "/dicom-web" + level,
            params=params,
            headers={"Accept": "application/dicom+json"},
        )
        row.count(answer.status_code, f"GET {answer.url[len(server.base) :][:200]}")


# --- the run --------------------------------------------------------------------------------


def run(workdir: Path, args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    with serve(workdir) as server:
        admin = requests.Session()
        login = admin.post(
            server.base + "/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        login.raise_for_status()
        good = [ct_slice(patient_id="BN-GOOD", index=n) for n in range(args.good)]
        for ds in good:
            answer = stow(admin, server, to_bytes(ds))
            if answer.status_code != 200:
                raise RuntimeError(f"good instance refused: {answer.status_code} {answer.text}")
        hashes = {ds.SOPInstanceUID: wado_hash(admin, server, ds) for ds in good}
        processes = len(process_tree(server.process.pid))

        def attack(name: str, body: Callable[[Row], None]) -> None:
            row = Row(name)
            started = time.monotonic()
            try:
                body(row)
            except Exception as exc:  # a figure for the table, not a verdict
                row.notes.append(f"attack stopped: {type(exc).__name__}: {exc}")
            if row.statuses:
                row.notes.append(
                    "HTTP " + " ".join(f"{k}x{v}" for k, v in sorted(row.statuses.items()))
                )
            row.notes.append(f"{time.monotonic() - started:.1f} s")
            gone = server.process.poll() is not None
            pids = [] if gone else process_tree(server.process.pid)
            row.crashed = gone or not healthy(server) or len(pids) < processes
            row.lost = sum(
                1 for ds in good if wado_hash(admin, server, ds) != hashes[ds.SOPInstanceUID]
            )
            row.peak_mb = 0.0 if gone else peak_rss_mb(server.process.pid)
            row.largest_mb = 0.0 if gone else largest_hwm_mb(server.process.pid)
            rows.append(row)
            print(format_row(row), flush=True)

        print(header(), flush=True)
        attack("(baseline)", lambda row: row.notes.append(f"{len(good)} good instances stored"))
        attack("dicom-port", lambda row: dicom_port(server, row, args.connections, args.artim_wait))
        attack("dicom-4GiB-PDU", lambda row: big_pdus(server, row))
        study = good[0].StudyInstanceUID
        attack("share-pin", lambda row: share_pins(server, admin, study, row))
        attack("hostile-pixels", lambda row: hostile_pixels(server, admin, good, row))
        attack("qido-named", lambda row: named_inputs(server, admin, study, row))
        attack("qido-fuzz", lambda row: random_qido(server, admin, row, args.fuzz))
        attack("credentials", lambda row: credentials(server, row, args.guesses))
        print("peak per process (VmHWM MB):", per_process(server.process.pid), flush=True)
    return rows


def per_process(pid: int) -> str:
    parts = []
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        name = next(line.split()[1] for line in status if line.startswith("Name:"))
        hwm = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
        parts.append(f"{member} {name} {hwm:.0f}")
    return ", ".join(parts)


def header() -> str:
    return (
        f"{'attack':<15} {'tried':>6} {'refused':>8} {'5xx':>5} {'crash':>6} {'lost':>5}"
        f" {'RSS MB sum':>10} {'max 1 proc':>10}  notes"
    )


def format_row(row: Row) -> str:
    return (
        f"{row.name:<15} {row.tried:>6} {row.refused:>8} {row.server_errors:>5}"
        f" {'yes' if row.crashed else 'no':>6} {row.lost:>5}"
        f" {row.peak_mb:>10.0f} {row.largest_mb:>10.0f}  " + "; ".join(row.notes)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--good", type=int, default=4, help="good instances stored first")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--artim-wait", type=float, default=15.0, help="seconds to watch them")
    parser.add_argument("--guesses", type=int, default=100, help="Basic and bearer, each")
    parser.add_argument("--fuzz", type=int, default=300, help="random QIDO requests")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(args.workdir, args)
    else:
        with tempfile.TemporaryDirectory(prefix="pacs-attacks-") as workdir:
            run(Path(workdir), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
