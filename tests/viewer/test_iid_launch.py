"""An EMR link opens the viewer in Chromium: IHE IID by study (after the user's login), IID by
patient (the list page, one click to the study), and a HIS-minted per-study link."""

from __future__ import annotations

import requests
from playwright.sync_api import Browser

from pacs.archive import Archive
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from tests.viewer import pages
from tests.viewer.studies import store_pattern_ct


def test_iid_and_his_link_open_the_viewer(
    browser: Browser, live_http: str, archive: Archive, admin_auth: tuple[str, str]
) -> None:
    study = store_pattern_ct(archive, slices=2)[0].StudyInstanceUID
    create_account(archive.sessions, "his", "his-integration-password", Role.INTEGRATION)
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        pages.log_in(page, live_http, *admin_auth)
        page.goto(f"{live_http}/IHEInvokeImageDisplay?requestType=STUDY&studyUID={study}")
        pages.wait_rendered(page)
        assert page.url == f"{live_http}/viewer/?StudyInstanceUIDs={study}"

        page.goto(f"{live_http}/IHEInvokeImageDisplay?requestType=PATIENT&patientID=BN0001")
        assert "Nguyễn Văn An" in page.inner_text("h1")
        page.click(f"a[href*='{study}']")
        pages.wait_rendered(page)
    finally:
        context.close()

    minted = requests.post(
        f"{live_http}/api/ehr/links",
        json={"study_uid": study, "user": "bs.lan", "minutes": 5},
        auth=("his", "his-integration-password"),
        timeout=10,
    )
    assert minted.status_code == 201, minted.text
    fresh = browser.new_context()  # the HIS user has no session of ours
    try:
        link_page = fresh.new_page()
        link_page.goto(minted.json()["url"])
        pages.wait_rendered(link_page)
        assert link_page.locator(".reader.shared").count() == 1
    finally:
        fresh.close()
    assert not errors, errors
