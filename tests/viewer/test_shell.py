"""The app shell: Vietnamese first, an English switch the server also honours (the pacs.lang
cookie), links only to the pages the user's role permits, and pages reachable by their URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacs.archive import Archive
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from tests.viewer import pages

# A browser per test: the whole module takes longer than the fast suite's budget.
pytestmark = pytest.mark.slow


def test_vietnamese_first_and_the_english_switch_sets_the_cookie(
    open_page: pages.PageOpener, live_http: str, tmp_path: Path
) -> None:
    page = open_page(locale="de-DE", logged_in=False)  # neither language offered: Vietnamese
    page.goto(f"{live_http}/viewer/")
    page.wait_for_selector("#login")
    assert page.inner_text("#login h1") == "Đăng nhập"
    assert page.get_attribute("html", "lang") == "vi"
    page.screenshot(path=str(tmp_path / "login-vi.png"))
    page.click("#lang")
    page.wait_for_function("() => document.querySelector('#login h1').textContent === 'Log in'")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert cookies["pacs.lang"] == "en"
    page.reload()
    page.wait_for_selector("#login")
    assert page.inner_text("#login h1") == "Log in"
    page.screenshot(path=str(tmp_path / "login-en.png"))
    page.fill("#login input[name=username]", "nobody")
    page.fill("#login input[name=password]", "wrong-password")
    page.click("#login button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('#login [role=alert]').textContent.length > 0"
    )
    assert page.inner_text("#login [role=alert]") == "Wrong user name or password"
    page.click("#lang")
    page.fill("#login input[name=password]", "wrong-again")
    page.click("#login button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('#login [role=alert]').textContent"
        " === 'Sai tên đăng nhập hoặc mật khẩu'"
    )


def test_links_follow_the_role_and_pages_have_urls(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    tmp_path: Path,
) -> None:
    create_account(archive.sessions, "kiem.toan", "auditor-password-1", Role.AUDITOR)
    page = open_page(logged_in=False)
    page.goto(f"{live_http}/viewer/studies")  # a page's own URL, before logging in
    page.fill("#login input[name=username]", "kiem.toan")
    page.fill("#login input[name=password]", "auditor-password-1")
    page.click("#login button[type=submit]")
    page.wait_for_selector("#not-allowed")
    assert page.locator("#nav a[data-nav='studies']").count() == 0
    assert page.locator("#studies").count() == 0
    page.screenshot(path=str(tmp_path / "auditor.png"))
    page.click("#logout")
    page.wait_for_selector("#login")

    page.goto(f"{live_http}/viewer/login")  # the status page's "log in" link
    page.fill("#login input[name=username]", admin_auth[0])
    page.fill("#login input[name=password]", admin_auth[1])
    page.click("#login button[type=submit]")
    page.wait_for_selector("#studies")  # then home: the study list
    assert page.locator("#nav a[data-nav='studies']").inner_text() == "Ca chụp"
    page.goto(f"{live_http}/viewer/studies")  # reloading a page of the app
    page.wait_for_selector("#studies")
    assert page.inner_text("#app h1") == "Danh sách ca chụp"
    page.screenshot(path=str(tmp_path / "admin-studies.png"))
