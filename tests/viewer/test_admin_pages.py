"""The administration pages in Chromium, each in Vietnamese and in English (issue 18 item 1):
create a user, see and clear a lock, reset a second factor (QR code), add a modality and
C-ECHO it, revoke a share link, search and export the audit trail; an auditor sees the audit
tab only. Every action goes through the real server and lands in the audit trail."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.audit.filters import AuditFilter
from pacs.auth import accounts
from pacs.auth.principal import Kind, Principal, Role
from tests.conftest import free_port
from tests.dicom_factory import ct_slice, to_bytes
from tests.viewer import pages

# A browser per test, like the shell's tests: kept out of the fast suite.
pytestmark = pytest.mark.slow
WAIT_MS = 15_000
LOCALES = Path(__file__).parents[2] / "viewer" / "app" / "src" / "features" / "admin" / "locales"
LANGS = ["vi", "en"]
BROWSER_LOCALE = {"vi": "vi-VN", "en": "en-GB"}


def text(lang: str, key: str) -> str:
    """The page's own words for ``key`` in ``lang`` (up to the first placeholder)."""
    found: object = json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8"))
    for part in key.split("."):
        assert isinstance(found, dict)
        found = found[part]
    assert isinstance(found, str)
    return found.split("{")[0].strip()


@pytest.fixture
def echo_peer() -> Iterator[int]:
    """A pynetdicom Verification SCP (title MODALITY1) on a free loopback port."""
    ae = AE(ae_title="MODALITY1")
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False)
    yield port
    server.shutdown()


def _log_in(page: Any, base: str, username: str, password: str, start: str) -> None:
    page.goto(f"{base}/viewer/{start}")
    page.fill("#login input[name=username]", username)
    page.fill("#login input[name=password]", password)
    page.click("#login button[type=submit]")


def _text_in(page: Any, selector: str, text: str) -> None:
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector)?.textContent.includes(text)",
        arg=[selector, text],
        timeout=WAIT_MS,
    )


@pytest.mark.parametrize("lang", LANGS)
def test_accounts(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    tmp_path: Path,
    lang: str,
) -> None:
    accounts.create_account(archive.sessions, "bs.khoa", "mat-khau-dai-1", Role.CLINICIAN)
    for _ in range(accounts.MAX_FAILED_LOGINS):
        accounts.check_password(archive.sessions, "bs.khoa", "wrong-guess")
    page = open_page(locale=BROWSER_LOCALE[lang], logged_in=False)
    _log_in(page, live_http, *admin_auth, "admin")
    page.wait_for_selector("#accounts-page #users tr[data-user='bs.khoa']", timeout=WAIT_MS)
    assert page.inner_text("#nav a[data-nav='admin']") == text(lang, "nav")
    assert page.inner_text("#accounts-page h1") == text(lang, "tabs.accounts")
    row = "#users tr[data-user='bs.khoa']"
    assert text(lang, "accounts.lockedUntil") in page.inner_text(f"{row} .state")
    page.click(f"{row} button.unlock")
    _text_in(page, f"{row} .state", text(lang, "accounts.active"))
    assert accounts.check_password(archive.sessions, "bs.khoa", "mat-khau-dai-1")

    page.fill("#new-user input[name=username]", "ktv.hoa")
    page.select_option("#new-user select[name=role]", "radiologist")
    page.click("#new-user button[type=submit]")
    page.wait_for_selector("#users tr[data-user='ktv.hoa']", timeout=WAIT_MS)
    generated = page.inner_text("#secret-value")  # no password typed: one generated
    assert text(lang, "accounts.secret.password") in page.inner_text("#secret")
    assert accounts.check_password(archive.sessions, "ktv.hoa", generated) is not None

    page.click("#users tr[data-user='ktv.hoa'] button.reset-totp")
    page.wait_for_selector("#secret img.qr", timeout=WAIT_MS)
    assert page.inner_text("#secret-value").startswith("otpauth://totp/")
    qr_width = page.evaluate("() => document.querySelector('#secret img.qr').naturalWidth")
    assert qr_width > 50  # the PNG decoded in the browser
    page.screenshot(path=str(tmp_path / f"admin-accounts-{lang}.png"), full_page=True)

    page.click("#admin-tabs a[data-tab='storage']")
    page.wait_for_selector("#stores", timeout=WAIT_MS)
    assert text(lang, "storage.neverChecked") in page.inner_text("#last-check")
    page.click("#check-now")
    _text_in(page, "#check-queued", text(lang, "storage.checkQueued"))
    done = [e.action for e in archive.audit.events(AuditFilter(action="user"))]
    assert {"user-unlock", "user-create", "user-totp-reset"} <= set(done)
    assert archive.audit.events(AuditFilter(action="check-request"))


@pytest.mark.parametrize("lang", LANGS)
def test_modality_echo_share_revoke_and_audit(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    echo_peer: int,
    tmp_path: Path,
    lang: str,
) -> None:
    archive.settings.public_base_url = live_http
    ds = ct_slice(size=8)
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="test"))
    grant = archive.auth.create_grant(str(ds.StudyInstanceUID), "bs.lan", 7)
    archive.audit.record(
        Principal(Kind.USER, "bs.lan", Role.CLINICIAN, "10.0.0.5"),
        "wado",
        patient_id="BN0001",
        study_uid=str(ds.StudyInstanceUID),
    )
    page = open_page(locale=BROWSER_LOCALE[lang], logged_in=False)
    _log_in(page, live_http, *admin_auth, "admin/modalities")
    page.wait_for_selector("#ae-form", timeout=WAIT_MS)
    assert page.inner_text("#modalities-page h1") == text(lang, "tabs.modalities")
    page.fill("#ae-form input[name=ae_title]", "MODALITY1")
    page.fill("#ae-form input[name=host]", "127.0.0.1")
    page.fill("#ae-form input[name=port]", str(echo_peer))
    page.fill("#ae-form input[name=description]", "CT phòng 2")
    page.uncheck("#ae-form input[name=service-get]")
    page.click("#ae-form button[type=submit]")
    row = "#aes tr[data-ae='MODALITY1']"
    page.wait_for_selector(row, timeout=WAIT_MS)
    page.click(f"{row} button.echo")
    _text_in(page, f"{row} .echo-result", text(lang, "aes.echoOk"))
    assert "get" not in archive.remote_aes.get("MODALITY1").services
    page.click(f"{row} button.edit")
    page.fill("#ae-form input[name=port]", str(free_port()))
    page.click("#ae-form button[type=submit]")
    page.wait_for_function("() => !document.querySelector('#aes .echo-result')?.textContent")
    page.click(f"{row} button.echo")
    _text_in(page, f"{row} .echo-result", text(lang, "aes.echoFailed"))
    page.screenshot(path=str(tmp_path / f"admin-modalities-{lang}.png"), full_page=True)

    page.click("#admin-tabs a[data-tab='shares']")
    share = f"#shares tr[data-share='{grant.grant_id}']"
    page.wait_for_selector(share, timeout=WAIT_MS)
    assert page.inner_text(f"{share} .state") == text(lang, "shares.states.active")
    page.click(f"{share} button.revoke")
    _text_in(page, f"{share} .state", text(lang, "shares.states.revoked"))
    info = archive.auth.get_grant(grant.grant_id)
    assert info is not None and info.revoked

    page.click("#admin-tabs a[data-tab='audit']")
    page.wait_for_selector("#audit-filters", timeout=WAIT_MS)
    page.fill("#audit-filters input[name=user]", "bs.lan")
    page.fill("#audit-filters input[name=patient_id]", "BN0001")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#audit tbody tr')].length === 1"
        " && document.querySelector('#audit tbody tr').dataset.action === 'wado'",
        timeout=WAIT_MS,
    )
    href = page.get_attribute("#export-csv", "href") or ""
    assert "format=csv" in href and "user=bs.lan" in href and "patient_id=BN0001" in href
    exported = page.evaluate("(url) => fetch(url).then((r) => r.text())", href)
    assert "wado" in exported and "BN0001" in exported
    page.click("#verify")
    _text_in(page, "#chain", text(lang, "audit.intact"))
    page.screenshot(path=str(tmp_path / f"admin-audit-{lang}.png"), full_page=True)
    actions = {e.action for e in archive.audit.events()}
    assert {"ae-add", "ae-echo", "ae-change", "share-revoke", "audit-read"} <= actions


def test_an_auditor_sees_the_audit_tab_only(
    open_page: pages.PageOpener, live_http: str, archive: Archive
) -> None:
    accounts.create_account(archive.sessions, "kiem.toan", "auditor-password-1", Role.AUDITOR)
    page = open_page(logged_in=False)
    _log_in(page, live_http, "kiem.toan", "auditor-password-1", "admin")
    page.wait_for_selector("#audit-page", timeout=WAIT_MS)
    tabs = page.locator("#admin-tabs a").evaluate_all("(links) => links.map((a) => a.dataset.tab)")
    assert tabs == ["audit"]
    page.goto(f"{live_http}/viewer/admin/accounts")
    page.wait_for_selector("#not-allowed", timeout=WAIT_MS)
    assert page.locator("#users").count() == 0
