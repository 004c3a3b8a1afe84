"""The committed viewer build matches its sources, and the server serves it safely."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi.testclient import TestClient

from viewer.routes import DIST, resolve_in_dist

APP = Path(__file__).parents[2] / "viewer" / "app"
TOP = ["index.html", "vite.config.js", "package.json", "package-lock.json", "build-hash.mjs"]


def source_hash() -> str:
    """The digest build-hash.mjs writes: sorted paths, each with its length and its bytes."""
    sources = [p.relative_to(APP).as_posix() for p in (APP / "src").rglob("*") if p.is_file()]
    names = sorted(TOP + sources)
    digest = hashlib.sha256()
    for name in names:
        content = (APP / name).read_bytes()
        digest.update(f"{name}\n{len(content)}\n".encode())
        digest.update(content)
    return digest.hexdigest()


def test_committed_build_matches_the_sources() -> None:
    recorded = (DIST / "build-hash.txt").read_text().strip()
    assert recorded == source_hash(), "viewer sources changed: run `make viewer` and commit dist/"


def test_no_source_maps_in_the_build() -> None:
    assert not list(DIST.rglob("*.map"))


def test_index_assets_and_media_types(anonymous_client: TestClient) -> None:
    page = anonymous_client.get("/viewer/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    assert "Content-Security-Policy" in page.headers
    assert anonymous_client.get("/viewer/index.html").text == page.text
    redirect = anonymous_client.get("/viewer?StudyInstanceUIDs=1.2.3", follow_redirects=False)
    assert redirect.headers["location"] == "/viewer/?StudyInstanceUIDs=1.2.3"
    kinds = {".js": "text/javascript", ".css": "text/css", ".wasm": "application/wasm"}
    for path in (DIST / "assets").iterdir():
        response = anonymous_client.get(f"/viewer/assets/{path.name}")
        assert response.status_code == 200
        assert response.content == path.read_bytes()
        assert response.headers["content-type"].startswith(kinds[path.suffix]), path.name
        assert "immutable" in response.headers["cache-control"]


def test_paths_cannot_leave_dist(anonymous_client: TestClient, tmp_path: Path) -> None:
    for path in [
        "../routes.py",
        "%2e%2e/routes.py",
        "assets/../../routes.py",
        "..%2f..%2fpacs%2fsettings.py",
        "/etc/passwd",
        "assets",
        "nothing-here.js",
    ]:
        assert anonymous_client.get(f"/viewer/{path}").status_code == 404, path
    (tmp_path / "dist").mkdir()
    (tmp_path / "secret.txt").write_text("x")
    (tmp_path / "dist" / "link").symlink_to(tmp_path / "secret.txt")
    assert resolve_in_dist("link", tmp_path / "dist") is None
    assert resolve_in_dist("../secret.txt", tmp_path / "dist") is None
    assert resolve_in_dist("a\x00b", tmp_path / "dist") is None


def test_page_scripts_get_401_without_a_password_dialog(anonymous_client: TestClient) -> None:
    """A Basic challenge on a fetch() would pop up the browser's dialog over the login form."""
    from_script = anonymous_client.get("/api/me", headers={"Sec-Fetch-Mode": "cors"})
    assert from_script.status_code == 401
    assert "www-authenticate" not in from_script.headers
    typed_url = anonymous_client.get("/api/me", headers={"Sec-Fetch-Mode": "navigate"})
    assert typed_url.headers["www-authenticate"].startswith("Basic")
    assert anonymous_client.get("/api/me").headers["www-authenticate"].startswith("Basic")


def test_pages_of_the_app_load_from_their_url(anonymous_client: TestClient) -> None:
    """/viewer/studies or /viewer/admin/users reloaded: the app's page, its assets one level up."""
    index = anonymous_client.get("/viewer/").text
    top = anonymous_client.get("/viewer/studies")
    assert top.status_code == 200 and top.text == index
    assert top.headers["cache-control"] == "no-cache"
    deeper = anonymous_client.get("/viewer/admin/users")
    assert deeper.status_code == 200
    assert '="./assets/' in index and '="./assets/' not in deeper.text
    assert deeper.text == index.replace('="./', '="../')
    for path in ["assets", "assets/nothing", "nothing-here.js", "a/b.c", "x%00y"]:
        assert anonymous_client.get(f"/viewer/{path}").status_code == 404, path
