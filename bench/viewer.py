"""Viewer speed: open a CT study in headless Chromium; time to first image and to whole series.

    .venv/bin/python -m bench.viewer                    # 300 slices, 5 runs, OHIF and Orthanc too
    .venv/bin/python -m bench.viewer --slices 100 --runs 3 --no-ohif

A one-series CT study (512x512, 16-bit noisy phantom) is built in a temp data folder through
``archive.ingest`` (``bench.retrieve.build_archive``), ``pacs serve`` runs as a child process on
free loopback ports, and Debian's ``/usr/bin/chromium`` (driven by Playwright, never a downloaded
browser) opens the study. Each clock starts just before ``page.goto`` and stops when:

- first image: our viewer marks the viewport drawn (``.vp[data-index='0'][data-rendered]``);
  for OHIF, a cornerstone canvas shows non-black pixels;
- whole series cached: our viewer's series card gets the class ``cached`` (every image of the
  series decoded into its cache); OHIF has no such signal in the page, so the clock stops when
  the browser has finished fetching a frame of every instance of the series (resource timing's
  ``responseEnd``). OHIF fetches the whole series only with its study prefetcher on, which the
  server's generated configuration switches on (OHIF's own default settings).

"Cold" is a fresh browser context per run (no HTTP cache, no cookies but the session one from
``POST /login``); "warm" opens the same URL again in that context. Each stop is stamped inside
the page (an init script; Playwright's polling would add 0.3-0.5 s on a busy 2-core machine)
and compared with the wall clock read just before ``page.goto``. Targets (first image <= 1.5 s,
whole series <= 10 s) are reported, never enforced: the benchmark does not fail on time.

OHIF is installed into the benchmark's data folder (``viewer.ohif``, from npm ``@ohif/app``; the
tarball is cached like ``pacs ohif install`` does) and served by our server at ``/ohif/``.
Orthanc runs beside it when installed (Debian ``orthanc orthanc-dicomweb``) and a network
namespace can be made: Orthanc binds every interface, so it and the browser that measures it run
in a namespace with only loopback (this script re-run with ``--orthanc-child``). Orthanc serves
the same OHIF files with its ServeFolders plugin and answers DICOMweb with its plugin; the page
itself (an OHIF route that ServeFolders does not know) is handed to the browser by Playwright,
without cross-origin isolation headers, as on a plain Orthanc install. Orthanc's peak memory
includes the REST upload of the files.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.ingest import PeakWatcher, drop_namespace, make_namespace
from bench.retrieve import ORTHANC_PLUGIN, BenchData, build_archive, orthanc_server, serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ORTHANC = Path("/usr/sbin/Orthanc")
SERVE_FOLDERS = Path("/usr/share/orthanc/plugins/libServeFolders.so")
USERNAME = "viewerbench"
TARGETS_S = {"first image": 1.5, "series cached": 10.0}
FIRST_TIMEOUT_S = 60.0
CACHED_TIMEOUT_S = 120.0
# The clocks stop inside the page (a stamp in epoch ms, from performance.timeOrigin) rather
# than when Playwright's polling notices: on two busy cores that polling lags by 0.3-0.5 s.
STAMP = "const stamp = () => performance.timeOrigin + performance.now();"
# Our viewer: the reader marks the drawn viewport and the fully cached series card.
OURS_PROBE = (
    "(() => {"
    + STAMP
    + """
  new MutationObserver(() => {
    if (!window.__first && document.querySelector(".vp[data-index='0'][data-rendered]")) {
      window.__first = stamp();
    }
    if (!window.__cached && document.querySelector('.series-card.cached')) {
      window.__cached = stamp();
    }
  }).observe(document, {subtree: true, childList: true, attributes: true,
                        attributeFilter: ['class', 'data-rendered']});
})();"""
)
# OHIF: each animation frame, shrink the cornerstone canvas onto a small 2D canvas and look for
# a non-black pixel (works for 2D and WebGL canvases); a resource observer sees every frame
# request of the series finish (responseEnd), which is when OHIF can cache it.
OHIF_PROBE = (
    "((series, instances) => {"
    + STAMP
    + """
  const drawn = () => {
    for (const c of document.querySelectorAll('canvas.cornerstone-canvas')) {
      if (!c.width || !c.height) continue;
      const s = document.createElement('canvas'); s.width = 32; s.height = 32;
      const g = s.getContext('2d'); g.drawImage(c, 0, 0, 32, 32);
      const d = g.getImageData(0, 0, 32, 32).data;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i] > 16 || d[i + 1] > 16 || d[i + 2] > 16) return true;
      }
    }
    return false;
  };
  const tick = () => { if (drawn()) window.__first = stamp(); else requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const marker = `/series/${series}/instances/`;
  const seen = new Set();
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const at = entry.name.indexOf(marker);
      if (at < 0 || !entry.name.includes('/frames/')) continue;
      seen.add(entry.name.slice(at + marker.length).split('/')[0]);
      window.__frames = seen.size;
      if (!window.__cached && seen.size >= instances) {
        window.__cached = performance.timeOrigin + entry.responseEnd;
      }
    }
  }).observe({type: 'resource', buffered: true});
})"""
)


@dataclass
class Run:
    """One open of the study: seconds to the first image and to the whole series (None: never)."""

    first_s: float | None
    cached_s: float | None
    note: str = ""


@dataclass
class Case:
    """Cold and warm runs of one viewer against one server."""

    name: str
    cold: list[Run] = field(default_factory=list)
    warm: list[Run] = field(default_factory=list)
    skipped: str = ""
    peak_rss_mb: float | None = None  # the server's, when measured apart from ours


# --- setup ----------------------------------------------------------------------------------


def make_login(data_dir: Path) -> str:
    """An admin account for the browser's session (``make_token`` does not hand out a password)."""
    from pacs.archive import Archive
    from pacs.auth.accounts import create_account
    from pacs.auth.principal import Role
    from pacs.settings import Settings

    password = secrets.token_urlsafe(16)
    archive = Archive.open(Settings(data_dir=data_dir))
    try:
        create_account(archive.sessions, USERNAME, password, Role.ADMIN)
    finally:
        archive.close()
    return password


def install_ohif(data_dir: Path) -> str:
    """Install OHIF where the server looks (data_dir/ohif); empty string, or why it failed."""
    from viewer.ohif import OhifInstallError, fetch_tarball, install

    cache = Path(os.environ.get("PACS_OHIF_CACHE", Path.home() / ".cache" / "pacs-ohif"))
    try:
        install(data_dir / "ohif", fetch_tarball(cache))
    except (OhifInstallError, OSError, subprocess.TimeoutExpired) as exc:
        return f"OHIF could not be installed: {exc}"
    return ""


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian chromium, headless, with the flags that work on this machine (FIELD-NOTES)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


# --- one open of the study ------------------------------------------------------------------


def _stamp(page: Any, name: str, timeout_s: float) -> float | None:
    """The page's epoch-ms stamp ``window.<name>`` in seconds, once set; None on timeout."""
    try:
        page.wait_for_function(f"() => window.{name}", timeout=timeout_s * 1000, polling=100)
    except Exception:  # Playwright's TimeoutError (or a crashed page): report, keep going
        return None
    return float(page.evaluate(f"window.{name}")) / 1000


def open_study(page: Any, url: str, progress: str) -> Run:
    """Navigate and read both stamps set by the probe (an init script) against the start."""
    started = time.time()
    page.goto(url, wait_until="commit")
    first = _stamp(page, "__first", FIRST_TIMEOUT_S)
    if first is None:
        return Run(None, None, f"no image in {FIRST_TIMEOUT_S:.0f} s")
    cached = _stamp(page, "__cached", CACHED_TIMEOUT_S)
    if cached is None:
        count = page.evaluate(progress)
        return Run(first - started, None, f"{count} cached in {CACHED_TIMEOUT_S:.0f} s")
    return Run(first - started, cached - started)


def run_case(
    name: str,
    browser: Any,
    runs: int,
    log_in: Callable[[Any], None],
    open_page: Callable[[Any], Run],
    prepare: Callable[[Any], None] = lambda page: None,
) -> Case:
    """``runs`` cold opens, each in a fresh context followed by one warm open in it."""
    case = Case(name)
    for index in range(runs):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            log_in(context)
            page = context.new_page()
            prepare(page)
            case.cold.append(open_page(page))
            case.warm.append(open_page(page))
        finally:
            context.close()
        print(
            f"  {name} run {index + 1}: cold {describe(case.cold[-1])}; "
            f"warm {describe(case.warm[-1])}",
            flush=True,
        )
    return case


def session_login(base: str, password: str) -> Callable[[Any], None]:
    """POST /login through the context's own request client: the cookie lands in the context."""

    def log_in(context: Any) -> None:
        answer = context.request.post(
            f"{base}/login", data={"username": USERNAME, "password": password}
        )
        if not answer.ok:
            raise RuntimeError(f"POST /login: {answer.status} {answer.text()[:200]}")

    return log_in


def measure_ours(browser: Any, base: str, data: BenchData, password: str, runs: int) -> Case:
    url = f"{base}/viewer/?StudyInstanceUIDs={data.study}"
    progress = "document.querySelector('.series-card')?.dataset.cached || '0'"
    return run_case(
        "our viewer",
        browser,
        runs,
        session_login(base, password),
        lambda page: open_study(page, url, progress),
        lambda page: page.add_init_script(OURS_PROBE),
    )


def measure_ohif(
    name: str,
    browser: Any,
    base: str,
    data: BenchData,
    runs: int,
    log_in: Callable[[Any], None],
    prepare: Callable[[Any], None] = lambda page: None,
) -> Case:
    url = f"{base}/ohif/viewer?StudyInstanceUIDs={data.study}"
    probe = f"{OHIF_PROBE}({json.dumps(data.series)}, {len(data.instances)});"
    progress = f"`${{window.__frames || 0}}/{len(data.instances)} frames`"

    def setup(page: Any) -> None:
        page.add_init_script(probe)
        prepare(page)

    def open_page(page: Any) -> Run:
        return open_study(page, url, progress)

    return run_case(name, browser, runs, log_in, open_page, setup)


def orthanc_ohif_config(text: str) -> str:
    """Our generated OHIF config with the thumbnail mode Orthanc's DICOMweb plugin can serve."""
    config = json.loads(text.strip().removeprefix("window.config = ").removesuffix(";"))
    config["dataSources"][0]["configuration"]["thumbnailRendering"] = "wadors"
    return f"window.config = {json.dumps(config)};\n"


# --- Orthanc beside it ----------------------------------------------------------------------


def orthanc_missing(ohif_skipped: str) -> str:
    """Why OHIF-on-Orthanc cannot run here, or an empty string."""
    if not ORTHANC.is_file():
        return "Orthanc not installed"
    for plugin in (ORTHANC_PLUGIN, SERVE_FOLDERS):
        if not plugin.is_file():
            return f"Orthanc plugin missing: {plugin}"
    if ohif_skipped:
        return f"it is measured with OHIF, which is skipped ({ohif_skipped})"
    return ""


def run_orthanc_side(workdir: Path, data: BenchData, runs: int) -> Case:
    """The Orthanc measurements in a loopback-only namespace (this script as a child)."""
    prefix = make_namespace()
    if not prefix:
        return Case("OHIF on Orthanc", skipped="cannot create a network namespace (needs root)")
    job = workdir / "orthanc-job.json"
    job.write_text(json.dumps({"data": data.__dict__, "runs": runs, "workdir": str(workdir)}))
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "bench.viewer", "--orthanc-child", str(job)],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            text=True,
            timeout=3600,
        )
    finally:
        drop_namespace(prefix)
    lines = done.stdout.rstrip().splitlines()
    if done.returncode != 0 or not lines:
        return Case("OHIF on Orthanc", skipped=f"Orthanc run failed (exit {done.returncode})")
    print("\n".join(lines[:-1]), flush=True)  # the child's progress lines
    result = json.loads(lines[-1])
    return Case(
        "OHIF on Orthanc",
        [Run(**r) for r in result["cold"]],
        [Run(**r) for r in result["warm"]],
        peak_rss_mb=result["peak_rss_mb"],
    )


def orthanc_ohif_folder(workdir: Path) -> Path:
    """Our OHIF install, with a static app-config.js pointing at Orthanc's DICOMweb."""
    from viewer.ohif import app_config

    folder = workdir / "ohif-orthanc"
    shutil.copytree(workdir / "data" / "ohif", folder)
    # Orthanc's DICOMweb plugin 1.x has no /thumbnail; OHIF's other thumbnail mode works there.
    text = orthanc_ohif_config(app_config("/dicom-web"))
    (folder / "app-config.js").write_text(text)
    return folder


def orthanc_with_ohif(
    workdir: Path, ohif: Path
) -> AbstractContextManager[tuple[subprocess.Popen[bytes], str]]:
    """Orthanc as bench/retrieve runs it, plus OHIF served by its ServeFolders plugin."""
    serve_ohif = {
        "Plugins": [str(ORTHANC_PLUGIN), str(SERVE_FOLDERS)],
        "ServeFolders": {
            "AllowCache": True,
            "Extensions": {".wasm": "application/wasm", ".mjs": "text/javascript"},
            "Folders": {"/ohif": str(ohif)},
        },
    }
    return orthanc_server(workdir, serve_ohif)


def orthanc_child(job_file: Path) -> None:
    """In the namespace: Orthanc gets our files, then OHIF is timed against it; one JSON line."""
    job = json.loads(job_file.read_text())
    data, runs, workdir = BenchData(**job["data"]), int(job["runs"]), Path(job["workdir"])
    ohif = orthanc_ohif_folder(workdir)
    index_html = (ohif / "index.html").read_bytes()

    def prepare(page: Any) -> None:
        # ServeFolders knows files, not OHIF's routes: hand over index.html for /ohif/viewer.
        # Without cross-origin isolation headers (ServeFolders sends none, so under COEP
        # OHIF's decode workers would be blocked): OHIF runs as on a plain Orthanc install.
        page.route(
            "**/ohif/viewer*",
            lambda route: route.fulfill(status=200, body=index_html, content_type="text/html"),
        )

    with orthanc_with_ohif(workdir, ohif) as (process, base):
        session = requests.Session()
        for path in sorted((workdir / "data" / "blobs").rglob("*.dcm")):
            session.post(base + "/instances", data=path.read_bytes()).raise_for_status()
        watcher = PeakWatcher(process.pid)
        watcher.start()
        with chromium() as browser:
            case = measure_ohif(
                "OHIF on Orthanc", browser, base, data, runs, lambda ctx: None, prepare
            )
        peak = watcher.stop()
    result = {
        "cold": [r.__dict__ for r in case.cold],
        "warm": [r.__dict__ for r in case.warm],
        "peak_rss_mb": peak,
    }
    print(json.dumps(result))


# --- the report -----------------------------------------------------------------------------


def describe(run: Run) -> str:
    first = f"{run.first_s:.2f} s" if run.first_s is not None else "-"
    cached = f"{run.cached_s:.2f} s" if run.cached_s is not None else "-"
    return f"first {first}, cached {cached}" + (f" ({run.note})" if run.note else "")


def _values(runs: list[Run], measure: str) -> list[float | None]:
    return [r.first_s if measure == "first image" else r.cached_s for r in runs]


def summary(runs: list[Run], measure: str, judge: bool) -> str:
    values = _values(runs, measure)
    done = [v for v in values if v is not None]
    if not done:
        return f"{measure:<14} never reached in {len(values)} runs"
    text = f"{measure:<14} p50 {statistics.median(done):6.2f} s  max {max(done):6.2f} s"
    if len(done) < len(values):
        text += f"  (reached in {len(done)}/{len(values)} runs)"
    if judge:
        target = TARGETS_S[measure]
        met = sum(1 for v in values if v is not None and v <= target)
        verdict = "met" if met == len(values) else "NOT met"
        text += f"  target <= {target:.1f} s: {verdict} ({met}/{len(values)} runs)"
    return text


def p50(runs: list[Run], measure: str) -> float | None:
    done = [v for v in _values(runs, measure) if v is not None]
    return statistics.median(done) if done else None


def print_case(case: Case, judge: bool) -> None:
    if case.skipped:
        print(f"\n{case.name}: skipped: {case.skipped}")
        return
    for label, runs in (("cold", case.cold), ("warm", case.warm)):
        peak = ""
        if case.peak_rss_mb:
            peak = f", server peak RSS {case.peak_rss_mb:.0f} MB with the REST upload"
        print(f"\n{case.name}, {label} ({len(runs)} runs{peak})")
        for measure in TARGETS_S:
            print("  " + summary(runs, measure, judge))


def print_ratios(cases: list[Case]) -> None:
    """p50 of each case over our viewer's p50 (above 1: ours is faster)."""
    ours, others = cases[0], [c for c in cases[1:] if not c.skipped]
    if not others:
        return
    print("\nratios, p50 other / p50 our viewer (above 1: ours is faster)")
    for label in ("cold", "warm"):
        for measure in TARGETS_S:
            mine = p50(getattr(ours, label), measure)
            parts = []
            for case in others:
                theirs = p50(getattr(case, label), measure)
                ratio = f"{theirs / mine:5.2f}" if mine and theirs else "  n/a"
                parts.append(f"{case.name} {ratio}")
            print(f"  {label} {measure:<14} " + "   ".join(parts))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--slices", type=int, default=300, help="CT slices in the study")
    parser.add_argument("--size", type=int, default=512, help="rows and columns")
    parser.add_argument("--runs", type=int, default=5, help="cold opens per viewer")
    parser.add_argument("--no-ohif", action="store_true", help="measure our viewer only")
    parser.add_argument("--no-orthanc", action="store_true", help="skip OHIF on Orthanc")
    parser.add_argument("--keep", action="store_true", help="keep the temp data folder")
    parser.add_argument("--orthanc-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.orthanc_child:
        orthanc_child(args.orthanc_child)
        return
    if not Path(CHROMIUM).is_file():
        sys.exit(f"{CHROMIUM} not installed (`make system-deps` installs Debian chromium)")

    workdir = Path(tempfile.mkdtemp(prefix="pacs-bench-viewer-"))
    data_dir = workdir / "data"
    try:
        data = build_archive(data_dir, args.slices, 0, args.size)
        password = make_login(data_dir)
        ohif_skipped = "--no-ohif given" if args.no_ohif else install_ohif(data_dir)
        cases: list[Case] = []
        with serve(workdir, data_dir) as server, chromium() as browser:
            watcher = PeakWatcher(server.process.pid)
            watcher.start()
            base = server.base_url
            cases.append(measure_ours(browser, base, data, password, args.runs))
            if ohif_skipped:
                cases.append(Case("OHIF on ours", skipped=ohif_skipped))
            else:
                login = session_login(base, password)
                cases.append(measure_ohif("OHIF on ours", browser, base, data, args.runs, login))
            peak = watcher.stop()
        missing = "--no-orthanc given" if args.no_orthanc else orthanc_missing(ohif_skipped)
        if missing:
            cases.append(Case("OHIF on Orthanc", skipped=missing))
        else:
            print("  OHIF on Orthanc: uploading and measuring in a network namespace", flush=True)
            cases.append(run_orthanc_side(workdir, data, args.runs))
        print(
            f"\n{args.slices}-slice CT study ({args.size}x{args.size}, 16-bit), headless Chromium, "
            f"loopback; pacs serve peak RSS (VmHWM) {peak:.0f} MB"
        )
        for index, case in enumerate(cases):
            print_case(case, judge=index == 0)
        print_ratios(cases)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
