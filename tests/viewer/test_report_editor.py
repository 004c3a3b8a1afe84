"""The report editor in Chromium, in Vietnamese, end to end: a template fills the draft, the
autosave keeps what is typed across a reload, a saved phrase is inserted, a thumbnail
marks a key image, a wrong passphrase
is refused in Vietnamese, signing shows who signed with which certificate, the PDF link
answers the signed PDF, and an addendum is written and signed beside the unchanged report.
Screenshots of each state go to tests/viewer/artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacs.archive import Archive
from tests.reports.helpers import PASSPHRASE, make_signing_pki, radiologist, store_study
from tests.viewer import pages

pytestmark = pytest.mark.slow  # a browser per test


def _saved(page: object) -> None:
    page.wait_for_selector(".autosave[data-state=saved]", timeout=15_000)  # type: ignore[attr-defined]


def test_write_sign_and_amend_a_report(
    open_page: pages.PageOpener, live_http: str, archive: Archive, tmp_path: Path, artifacts: Path
) -> None:
    user, password = radiologist(archive, make_signing_pki(tmp_path / "pki"), "bs.lan")
    study, uids = store_study(archive, slices=2)
    page = open_page(user=(user, password))
    page.goto(f"{live_http}/viewer/report?study={study}")
    page.wait_for_selector("#reporting select[name=template] option >> nth=1", state="attached")
    assert page.inner_text("#reporting h1") == "Kết quả chẩn đoán hình ảnh"
    label = page.eval_on_selector_all(
        "select[name=template] option", "os => os.map(o => o.textContent.trim())"
    )
    head = next(text for text in label if text.startswith("CT · CT sọ não"))
    page.select_option("select[name=template]", label=head)
    page.click("#apply-template")
    _saved(page)
    assert "Nhu mô não" in page.input_value("textarea[name=findings]")
    page.fill("textarea[name=conclusion]", "Không thấy chảy máu nội sọ.")
    page.dispatch_event("textarea[name=conclusion]", "input")
    _saved(page)
    page.screenshot(path=str(artifacts / "report-draft-vi.png"))

    page.reload()  # the autosaved draft is what the server kept
    page.wait_for_function(
        "() => document.querySelector('textarea[name=conclusion]')?.value"
        " === 'Không thấy chảy máu nội sọ.'"
    )
    page.fill("input[name=phrase-name]", "bt")
    page.fill("input[name=phrase-text]", "Xương sọ bình thường.")
    page.click("#save-phrase")
    page.click("button.phrase:has-text('bt')")
    _saved(page)
    assert page.input_value("textarea[name=findings]").endswith("Xương sọ bình thường.")

    page.click(f".key-image[data-uid='{uids[1]}']")  # a key image, linked from its thumbnail
    page.wait_for_selector(f".key-image[data-uid='{uids[1]}'][aria-pressed=true]")
    _saved(page)

    page.fill("input[name=passphrase]", "sai-mat-khau")
    page.click("#sign")
    page.wait_for_selector("#reporting .error")
    assert page.inner_text("#reporting .error").startswith("Không ký được")
    page.fill("input[name=passphrase]", PASSPHRASE)
    page.click("#sign")
    page.wait_for_selector(".status[data-status=final]", timeout=30_000)
    assert "Ký bởi bs.lan" in page.inner_text(".signature .signed-by")
    assert "Bác sĩ bs.lan" in page.inner_text(".signature .certificate")
    assert page.get_attribute("textarea[name=conclusion]", "readonly") is not None
    page.screenshot(path=str(artifacts / "report-signed-vi.png"))
    href = page.get_attribute(".signature a.pdf", "href")
    pdf = page.request.get(f"{live_http}{href}")
    assert pdf.ok and pdf.body().startswith(b"%PDF") and b"/ByteRange" in pdf.body()
    signed_pdf = pdf.body()
    report_id = page.get_attribute(".history .version >> nth=0", "data-id")
    assert page.request.get(f"{live_http}/api/reports/{report_id}").json()["key_images"] == [
        uids[1]
    ]

    page.click("#addendum")
    page.wait_for_selector(".status[data-status=draft]")
    page.fill("textarea[name=findings]", "Bổ sung: nang màng nhện nhỏ thái dương trái.")
    page.dispatch_event("textarea[name=findings]", "input")
    _saved(page)
    page.fill("input[name=passphrase]", PASSPHRASE)
    page.click("#sign")
    page.wait_for_function(
        "() => document.querySelectorAll('.history .version').length === 2"
        " && document.querySelector('.status').dataset.status === 'final'"
    )
    versions = page.eval_on_selector_all(
        ".history .version", "bs => bs.map(b => b.textContent.trim())"
    )
    assert "bổ sung cho #" in versions[1]
    page.screenshot(path=str(artifacts / "report-addendum-vi.png"))
    first_id = page.get_attribute(".history .version >> nth=0", "data-id")
    assert page.request.get(f"{live_http}/api/reports/{first_id}/pdf").body() == signed_pdf
