"""An EMR link opens the viewer in Chromium: IHE IID by study (after the user's login), IID by
patient (the list page, one click to the study), and a HIS-minted per-study link."""

from __future__ import annotations

import requests

from pacs.archive import Archive
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from tests.viewer import pages
from tests.viewer.studies import store_pattern_ct


def test_iid_and_his_link_open_the_viewer(
    open_page: pages.PageOpener, live_http: str, archive: Archive, admin_auth: tuple[str, str]
) -> None:
    study = store_pattern_ct(archive, slices=2)[0].StudyInstanceUID
    create_account(archive.sessions, "his", "his-integration-password", Role.INTEGRATION)
    page = open_page(locale=None)
    page.goto(f"{live_http}/IHEInvokeImageDisplay?requestType=STUDY&studyUID={study}")
    pages.wait_rendered(page)
    assert page.url == f"{live_http}/viewer/?StudyInstanceUIDs={study}"

    page.goto(f"{live_http}/IHEInvokeImageDisplay?requestType=PATIENT&patientID=BN0001")
    assert "Nguyễn Văn An" in page.inner_text("h1")
    page.click(f"a[href*='{study}']")
    pages.wait_rendered(page)

    minted = requests.post(
        f"{live_http}/api/ehr/links",
        json={"study_uid": study, "user": "bs.lan", "minutes": 5},
        auth=("his", "his-integration-password"),
        timeout=10,
    )
    assert minted.status_code == 201, minted.text
    link_page = open_page(locale=None, logged_in=False)  # the HIS user has no session of ours
    link_page.goto(minted.json()["url"])
    pages.wait_rendered(link_page)
    assert link_page.locator(".reader.shared").count() == 1
