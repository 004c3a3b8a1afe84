"""Pages the server writes (status, share link states, errors, favicon) in Vietnamese by
default and in English when asked, HEAD on them, and JSON errors kept for programs."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from PIL import Image

from pacs.archive import Archive

ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}
NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Accept": "text/html"}


def test_status_page_in_both_languages(anonymous_client: TestClient) -> None:
    vi = anonymous_client.get("/")
    assert vi.status_code == 200 and vi.headers["content-type"].startswith("text/html")
    assert "<html lang='vi'>" in vi.text
    for text in ("Trạng thái máy chủ PACS", "Ca chụp", "Mở trình xem ảnh", "Đăng nhập", "cổng"):
        assert text in vi.text, text
    assert "href='viewer/'" in vi.text and "href='viewer/login'" in vi.text
    en = anonymous_client.get("/", headers=ENGLISH)
    assert "<html lang='en'>" in en.text and "PACS server status" in en.text
    assert "Studies" in en.text and "Log in" in en.text and "Ca chụp" not in en.text
    switched = anonymous_client.get("/?lang=en")  # the link on the page; remembered
    assert "PACS server status" in switched.text and switched.cookies.get("pacs.lang") == "en"
    assert "PACS server status" in anonymous_client.get("/").text
    anonymous_client.get("/?lang=vi")
    assert "Trạng thái máy chủ PACS" in anonymous_client.get("/").text


def test_head_and_favicon(anonymous_client: TestClient) -> None:
    for path in ("/", "/favicon.ico", "/viewer/"):
        head = anonymous_client.head(path)
        assert head.status_code == 200 and head.content == b"", path
    icon = anonymous_client.get("/favicon.ico")
    assert icon.headers["content-type"] == "image/x-icon"
    assert Image.open(io.BytesIO(icon.content)).format == "ICO"
    assert anonymous_client.head("/favicon.ico").headers["content-type"] == "image/x-icon"


def test_error_pages_for_people_json_for_programs(anonymous_client: TestClient) -> None:
    page = anonymous_client.get("/viewer/nothing-here.js", headers=NAVIGATE)
    assert page.status_code == 404 and "<html lang='vi'>" in page.text
    assert "Không tìm thấy." in page.text
    english = anonymous_client.get("/viewer/nothing-here.js", headers={**NAVIGATE, **ENGLISH})
    assert english.status_code == 404 and "Not found." in english.text
    script = anonymous_client.get("/viewer/nothing-here.js", headers={"Sec-Fetch-Mode": "cors"})
    assert script.status_code == 404 and script.json()["detail"]
    api = anonymous_client.get("/api/orders/999999", headers=NAVIGATE)
    assert api.headers["content-type"].startswith("application/json")
    refused = anonymous_client.get("/api/me", headers=NAVIGATE)  # the Basic challenge stays
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")


def test_share_link_states_in_both_languages(
    client: TestClient, archive: Archive, anonymous_client: TestClient
) -> None:
    from tests.viewer.studies import store_pattern_ct

    archive.settings.public_base_url = "http://testserver"
    study = store_pattern_ct(archive, slices=1)[0].StudyInstanceUID
    share = client.post(f"/api/studies/{study}/shares", json={}).json()
    path = share["url"].split("testserver", 1)[1]
    assert client.delete(f"/api/shares/{share['grant_id']}").status_code == 204
    gone = anonymous_client.get(path, follow_redirects=False)
    assert gone.status_code == 410 and "Liên kết này đã bị thu hồi." in gone.text
    assert "<html lang='vi'>" in gone.text
    anonymous_client.cookies.set("pacs.lang", "en")
    gone_en = anonymous_client.get(path, follow_redirects=False)
    assert "This link has been withdrawn." in gone_en.text and "thu hồi" not in gone_en.text
    assert anonymous_client.head(path, follow_redirects=False).status_code == 410
    forged = anonymous_client.get("/s/not-a-token", follow_redirects=False)
    assert forged.status_code == 410 and "This link is not valid." in forged.text
