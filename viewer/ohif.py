"""OHIF Viewer at ``/ohif/``: installed from npm's ``@ohif/app`` and served by this server.

``make ohif`` (``pacs ohif install``) unpacks the package's prebuilt ``dist/``
into the data folder, drops the AI-segmentation models (``ort/``) and the
microscopy viewer (about 150 MB), and rewrites the public path the build
hard-codes as ``/`` (index.html, webpack runtimes, CSS, manifest) to
``/ohif/``. Inline scripts move to a file so the page keeps a CSP without
'unsafe-inline'. The app configuration is generated per request by the
server: same-origin DICOMweb, so the browser's session or share-grant cookie
authenticates every request, as for any other client.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

OHIF_PACKAGE = "@ohif/app"
OHIF_VERSION = "3.13.2"
PREFIX = "/ohif/"
DROPPED = ("ort/", "dicom-microscopy-viewer/")
BOOT_SCRIPT = "pacs-boot.js"


class OhifInstallError(Exception):
    """npm could not fetch the package, or it does not look like OHIF's build."""


def fetch_tarball(cache_dir: Path, version: str = OHIF_VERSION) -> Path:
    """``npm pack`` the package once into ``cache_dir`` (about 50 MB)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / f"ohif-app-{version}.tgz"
    if tarball.is_file():
        return tarball
    npm = shutil.which("npm")
    if npm is None:
        raise OhifInstallError("npm is needed to fetch OHIF (Debian package npm)")
    result = subprocess.run(
        [npm, "pack", f"{OHIF_PACKAGE}@{version}", "--pack-destination", str(cache_dir)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0 or not tarball.is_file():
        raise OhifInstallError(f"npm pack {OHIF_PACKAGE}@{version} failed: {result.stderr[-500:]}")
    return tarball


def _extract_dist(tarball: Path, target: Path) -> None:
    with tarfile.open(tarball) as archive:
        members = []
        for member in archive.getmembers():
            name = member.name.removeprefix("package/")
            if not name.startswith("dist/") or name.removeprefix("dist/").startswith(DROPPED):
                continue
            member.name = name.removeprefix("dist/")
            if member.name:
                members.append(member)
        if not any(m.name == "index.html" for m in members):
            raise OhifInstallError(f"{tarball} holds no dist/index.html")
        archive.extractall(target, members=members, filter="data")


def _rewrite_index(text: str) -> tuple[str, str]:
    """index.html under /ohif/, and its inline scripts as one external boot script."""
    inline = re.findall(r"<script>(.*?)</script>", text, flags=re.S)
    boot = ";\n".join(
        script.replace('window.PUBLIC_URL="/"', f'window.PUBLIC_URL="{PREFIX}"')
        for script in inline
    )
    text = re.sub(r"<script>.*?</script>", "", text, flags=re.S)
    text = re.sub(r'<script[^>]*init-service-worker\.js"></script>', "", text)
    text = re.sub(r'(href|src|content)="/(?!/)', rf'\1="{PREFIX}', text)
    tag = f'</title><script src="{PREFIX}{BOOT_SCRIPT}"></script>'
    return text.replace("</title>", tag, 1), boot


def rewrite_public_path(root: Path) -> None:
    """Make the build work under /ohif/ instead of the site root."""
    index = root / "index.html"
    html, boot = _rewrite_index(index.read_text())
    index.write_text(html)
    (root / BOOT_SCRIPT).write_text(boot + ";\n")
    for path in root.glob("*.js"):
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        patched = text.replace(
            '__webpack_require__.p = "/";', f'__webpack_require__.p = "{PREFIX}";'
        )
        if patched != text:
            path.write_text(patched, encoding="utf-8", errors="surrogateescape")
    for path in root.glob("*.css"):
        text = path.read_text(encoding="utf-8")
        path.write_text(re.sub(r"url\(/(?!/)", f"url({PREFIX}", text), encoding="utf-8")
    manifest = root / "manifest.json"
    if manifest.is_file():
        manifest.write_text(manifest.read_text().replace('"/assets/', f'"{PREFIX}assets/'))
    for leftover in ("app-config.js", "sw.js", "init-service-worker.js", "_redirects", "_headers"):
        (root / leftover).unlink(missing_ok=True)  # the config is ours; no service worker


def install(target: Path, tarball: Path) -> None:
    """Replace ``target`` with a fresh, rewritten OHIF build from ``tarball``."""
    with tempfile.TemporaryDirectory(dir=target.parent if target.parent.exists() else None) as tmp:
        staging = Path(tmp) / "ohif"
        staging.mkdir()
        _extract_dist(tarball, staging)
        rewrite_public_path(staging)
        (staging / ".version").write_text(OHIF_VERSION)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), target)


def app_config(dicomweb_root: str) -> str:
    """OHIF's window.config: this server's DICOMweb, with the features it supports switched on."""
    config: dict[str, Any] = {
        "routerBasename": PREFIX.rstrip("/"),
        "showStudyList": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        # OHIF 3.13 stops at start-up ("appConfig.extensions is not iterable") without these;
        # its bundled extensions and modes register themselves, these are extra ones.
        "extensions": [],
        "modes": [],
        # OHIF's own defaults: fetch the rest of the displayed series in the background,
        # nearest images first, so scrolling does not wait on the network.
        "studyPrefetcher": {
            "enabled": True,
            "displaySetsCount": 2,
            "maxNumPrefetchRequests": 10,
            "order": "closest",
        },
        "defaultDataSourceName": "pacs",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "pacs",
                "configuration": {
                    "friendlyName": "PACS",
                    "name": "pacs",
                    "wadoUriRoot": dicomweb_root,
                    "qidoRoot": dicomweb_root,
                    "wadoRoot": dicomweb_root,
                    "qidoSupportsIncludeField": True,
                    "supportsReject": False,
                    "supportsStow": True,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "thumbnail",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": True,
                    "supportsWildcard": True,
                    "staticWado": False,
                    "singlepart": "bulkdata,video",
                    "omitQuotationForMultipartRequest": True,
                    "bulkDataURI": {"enabled": True},
                },
            }
        ],
    }
    return f"window.config = {json.dumps(config, indent=2)};\n"
