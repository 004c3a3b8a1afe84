"""Sending and fetching from the browser (issue 18 item 6), in Vietnamese and English.

Real peers: DCMTK's storescp receives a study sent from the study's actions page
(C-STORE SCU, a send job with progress), and a second ``pacs serve`` process acts
as the remote PACS that the "Other PACS" page queries (C-FIND SCU) and retrieves
from (C-MOVE to our own DIMSE listener, a job with progress). Each action is audited.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.audit.filters import AuditFilter
from pacs.config import remote_ae
from pacs.dimse.server import DimseServer
from pacs.jobs import RunningJobs
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes
from tests.routing.helpers import admin_token, fast, store_study, storescp
from tests.serve_process import serve_process
from tests.viewer import pages

pytestmark = pytest.mark.slow  # a browser (and a peer) per test
WAIT_MS = 60_000


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Jobs polled often: a send or a retrieval starts within a tenth of a second."""
    return fast(Settings(data_dir=tmp_path / "data"))


@pytest.mark.parametrize(
    ("locale", "sent_text"), [("vi-VN", "Đã gửi · 3/3 ảnh"), ("en-GB", "Sent · 3 of 3 images")]
)
def test_send_a_study_to_a_dcmtk_storescp(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    runners: RunningJobs,
    dcmtk: None,
    tmp_path: Path,
    locale: str,
    sent_text: str,
) -> None:
    study, uids = store_study(archive, 3)
    with storescp(tmp_path) as scp:
        archive.remote_aes.add(
            remote_ae(
                ae_title="STORESCP",
                host="127.0.0.1",
                port=scp.port,
                services=["store"],
                description="Bệnh viện tuyến tỉnh",
            )
        )
        page = open_page(locale=locale)
        page.goto(f"{live_http}/viewer/studies/actions?study={study}")
        page.wait_for_selector(
            "#send select[name=destination] option[value='ae:STORESCP']", state="attached"
        )
        assert "STORESCP · Bệnh viện tuyến tỉnh" in page.inner_text("#send select")
        page.click("#send button[type=submit]")
        page.wait_for_selector("#send-progress[data-state=sent]", timeout=WAIT_MS)
        assert " ".join(page.inner_text("#send-progress").split()) == sent_text
        received = sorted(str(dcmread(p).SOPInstanceUID) for p in scp.folder.iterdir())
        assert received == sorted(uids) and scp.received() == 3
    (event,) = archive.audit.events(AuditFilter(action="study-send"))
    assert (event.actor, event.study_uid) == ("admin", study)


def _stow(base: str, token: str, study: str, count: int) -> None:
    boundary = uuid.uuid4().hex
    series = generate_uid()
    parts = [
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + to_bytes(ct_slice(study, series, index=i, size=16, patient_id="BN0042"))
        + b"\r\n"
        for i in range(count)
    ]
    response = httpx.post(
        f"{base}/dicom-web/studies",
        content=b"".join(parts) + f"--{boundary}--\r\n".encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_find_and_retrieve_from_a_second_pacs_serve(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    runners: RunningJobs,
    dimse_server: DimseServer,
    tmp_path: Path,
) -> None:
    token = admin_token(tmp_path / "remote" / "data")
    wanted = generate_uid()
    with serve_process(tmp_path / "remote", {"PACS_AE_TITLE": "REMOTE"}) as remote:
        base = f"http://127.0.0.1:{remote.http_port}"
        _stow(base, token, wanted, 3)
        ours = {"ae_title": "PACS", "host": "127.0.0.1", "port": dimse_server.port}
        registered = httpx.post(
            f"{base}/api/aes",
            json={**ours, "services": ["echo", "find", "move", "store"]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
        archive.remote_aes.add(
            remote_ae(ae_title="REMOTE", host="127.0.0.1", port=remote.dicom_port)
        )
        page = open_page()
        page.click("#nav a[data-nav='remote']")
        page.wait_for_selector(
            "#remote-find select[name=ae] option[value=REMOTE]", state="attached"
        )
        assert page.inner_text("#remote h1") == "Tìm và lấy ca chụp từ PACS khác"
        page.fill("#remote-find input[name=PatientID]", "BN0042")
        page.click("#remote-find button[type=submit]")
        row = f"#remote-results tr[data-study='{wanted}']"
        page.wait_for_selector(row, timeout=WAIT_MS)
        assert page.inner_text("#remote-count") == "Tìm thấy 1 ca chụp"
        assert page.inner_text(f"{row} .name") == "Nguyễn Văn An"
        assert page.inner_text(f"{row} .count") == "3"

        page.click("#lang")  # English from here
        page.wait_for_function(
            "() => document.querySelector('#remote-count')?.textContent === '1 studies found'"
        )
        page.click(f"{row} button.retrieve")
        page.wait_for_selector(f"{row} .retrieval[data-state=done]", timeout=WAIT_MS)
        assert page.inner_text(f"{row} .retrieval").split() == ["Retrieved", "·", "3", "images"]
    assert len(archive.locate(wanted)) == 3
    actions = {e.action for e in archive.audit.events()}
    assert {"remote-find", "remote-retrieve"} <= actions
