"""OHIF at /ohif/: installation rewrites the public path; the server generates its config.

The install test uses the real npm package (the ``ohif_tarball`` fixture fetches it once
by ``npm pack`` into a cache); where npm or the registry is unavailable outside CI it
skips, saying so. tests/viewer/test_ohif_viewer.py opens it in Chromium.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.http.app import create_app
from pacs.archive import Archive
from viewer.ohif import install


@pytest.fixture
def installed(ohif_tarball: Path, sqlite_archive: Archive) -> Path:
    target = Path(sqlite_archive.settings.ohif_dir or "")
    install(target, ohif_tarball)
    return target


def test_install_rewrites_public_path_and_drops_models(installed: Path) -> None:
    assert not (installed / "ort").exists() and not (installed / "dicom-microscopy-viewer").exists()
    size = sum(p.stat().st_size for p in installed.rglob("*") if p.is_file())
    assert size < 80 * 1024 * 1024
    index = (installed / "index.html").read_text()
    assert "<script>" not in index  # inline scripts moved out, so a CSP can forbid them
    assert not re.search(r'(src|href|content)="/(?!ohif/)', index)
    assert 'window.PUBLIC_URL="/ohif/"' in (installed / "pacs-boot.js").read_text()
    runtimes = [
        p
        for p in installed.glob("*.js")
        if '__webpack_require__.p = "/' in p.read_text(errors="ignore")
    ]
    assert runtimes and all(
        '__webpack_require__.p = "/ohif/"' in p.read_text(errors="ignore") for p in runtimes
    )
    assert not (installed / "app-config.js").exists()


def test_served_under_ohif_with_generated_config(installed: Path, sqlite_archive: Archive) -> None:
    with TestClient(create_app(sqlite_archive)) as http:
        page = http.get("/ohif/")
        assert page.status_code == 200 and "/ohif/app.bundle." in page.text
        assert page.headers["cross-origin-opener-policy"] == "same-origin"
        assert page.headers["cross-origin-embedder-policy"] == "require-corp"
        assert http.get("/ohif/viewer?StudyInstanceUIDs=1.2.3").text == page.text  # SPA route
        assert http.get("/ohif/no-such-file.js").status_code == 404
        assert http.get("/ohif/../../etc/passwd").status_code == 404
        config = http.get("/ohif/app-config.js").text
        data = json.loads(config.removeprefix("window.config = ").rstrip(";\n"))
        assert data["extensions"] == [] and data["modes"] == []  # OHIF 3.13 needs both lists
        assert data["studyPrefetcher"]["enabled"] is True
        source = data["dataSources"][0]["configuration"]
        assert source["qidoRoot"] == "http://testserver/dicom-web"
        for flag in (
            "qidoSupportsIncludeField",
            "supportsFuzzyMatching",
            "supportsWildcard",
            "enableStudyLazyLoad",
        ):
            assert source[flag] is True
        assert source["thumbnailRendering"] == "thumbnail"
        bundle = next(installed.glob("app.bundle.*.js")).name
        assert http.get(f"/ohif/{bundle}").headers["content-type"].startswith("text/javascript")


def test_not_installed_says_how(sqlite_archive: Archive) -> None:
    with TestClient(create_app(sqlite_archive)) as http:
        response = http.get("/ohif/")
        assert response.status_code == 404 and "make ohif" in response.json()["detail"]
