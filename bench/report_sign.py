"""Time to sign a report: the result slip drawn (PDF), PAdES-signed, the SR and the
Encapsulated PDF built and stored through the ingest path (issue 17 target: under 1 s).

    .venv/bin/python -m bench.report_sign --reports 20
    .venv/bin/python -m bench.report_sign --key-images 4 --db postgresql+psycopg://postgres@127.0.0.1:5432/test

A temporary archive (SQLite unless ``--db``) holds one small CT study; a throwaway CA signs
a radiologist's certificate (PKCS#12, openssl). Each round creates a draft and signs it
through ``archive.reports`` (the HTTP door adds only JSON around it); the first signing
(fonts loaded, imports warmed) is reported apart. Prints p50/p95/max of the whole sign
call and of its parts; never fails on time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pacs.archive import Archive
from pacs.auth.principal import Kind, Principal, Role
from pacs.reports import documents, signing
from pacs.reports.service import ReportText
from pacs.settings import Settings
from tests.reports.helpers import PASSPHRASE, make_signing_pki, radiologist, store_study


def _timed(
    parts: dict[str, list[float]], name: str, function: Callable[..., Any]
) -> Callable[..., Any]:
    """``function`` wrapped to add its duration to ``parts[name]``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            parts.setdefault(name, []).append(time.perf_counter() - started)

    return wrapper


def _row(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (
        f"{name:<28} p50 {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms  max {ms[-1]:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=20)
    parser.add_argument("--key-images", type=int, default=2)
    parser.add_argument("--db", default="", help="index database URL (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        settings = Settings(
            data_dir=root / "data",
            database_url=args.db or f"sqlite:///{root / 'index.sqlite'}",
            public_base_url="https://pacs.benhvien.vn",
            report_hospital_name="Bệnh viện Đa khoa Tỉnh",
        )
        archive = Archive.open(settings)
        try:
            run(archive, root, args.reports, args.key_images)
        finally:
            archive.close()


def run(archive: Archive, root: Path, rounds: int, key_images: int) -> None:
    pki = make_signing_pki(root / "pki")
    user, _ = radiologist(archive, pki, "bs.lan")
    principal = Principal(Kind.USER, user, Role.RADIOLOGIST, "bench")
    study, uids = store_study(archive, slices=max(1, key_images))
    parts: dict[str, list[float]] = {}
    reports = archive.reports
    documents.render_pdf = _timed(parts, "slip PDF (reportlab)", documents.render_pdf)
    signing.pades = _timed(parts, "PAdES (pyHanko)", signing.pades)
    documents.build_sr = _timed(parts, "SR (highdicom)", documents.build_sr)
    archive.ingest = _timed(parts, "ingest SR + PDF", archive.ingest)  # type: ignore[method-assign]
    totals = []
    for n in range(rounds + 1):
        text = ReportText(
            findings="Nhu mô não không thấy tổn thương khu trú.\n" * 5,
            conclusion="Chưa phát hiện bất thường.",
            key_images=uids[:key_images],
        )
        draft = reports.create(principal, study, text)
        started = time.perf_counter()
        reports.sign(principal, draft["id"], PASSPHRASE)
        elapsed = time.perf_counter() - started
        if n == 0:
            print(f"first signing (cold: fonts, imports)   {elapsed * 1000:7.1f} ms")
            parts.clear()
            continue
        totals.append(elapsed)
    print(
        f"{rounds} signings, {key_images} key images, index {archive.engine.url.get_backend_name()}"
    )
    print(_row("sign (whole call)", totals))
    for name, values in parts.items():
        print(_row(name, values))


if __name__ == "__main__":
    main()
