"""The records pages in Chromium: upload files and a folder (per-file outcome), and a study's
actions (correct and see it through QIDO-RS, C-FIND and the study list; merge, reject, export a
DICOMDIR with progress, download it and read it back with FileSet and dcmdump), in Vietnamese
and English."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page
from pydicom.fileset import FileSet
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.dimse.server import DimseServer
from pacs.jobs import RunningJobs
from pacs.query import Level
from pacs.settings import RemoteAE
from tests.dicom_factory import ct_slice, to_bytes
from tests.peers import register
from tests.query_dimse.scu import STUDY_ROOT, c_find, find_association, query
from tests.viewer import pages

pytestmark = pytest.mark.slow  # a browser per test


def _store(archive: Archive, patient_id: str, name: str, series: int = 2) -> str:
    study = generate_uid()
    for s in range(series):
        series_uid = generate_uid()
        ds = ct_slice(study, series_uid, index=0, size=8, patient_id=patient_id, patient_name=name)
        ds.SeriesNumber = s + 1
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    return study


def _studies(archive: Archive, **keys: str) -> list:
    from pydicom.dataset import Dataset

    identifier = Dataset()
    for keyword, value in {"PatientID": "", "PatientName": "", **keys}.items():
        setattr(identifier, keyword, value)
    return list(archive.search(Level.STUDY, identifier).matches)


def test_upload_files_shows_each_outcome(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    tmp_path: Path,
) -> None:
    study = generate_uid()
    files = []
    for i in range(2):
        path = tmp_path / f"slice{i}.dcm"
        path.write_bytes(to_bytes(ct_slice(study, generate_uid(), index=i, size=8)))
        files.append(str(path))
    junk = tmp_path / "notes.txt"
    junk.write_text("not DICOM")
    page = open_page()
    page.goto(f"{live_http}/viewer/upload")
    assert page.inner_text("#upload h1") == "Tải lên tệp DICOM"
    page.set_input_files("#files", [*files, str(junk)])
    page.wait_for_function(
        "() => document.querySelectorAll('#upload-results [data-outcome=stored]').length === 2"
        " && document.querySelectorAll('#upload-results [data-outcome=failed]').length === 1",
        timeout=30_000,
    )
    outcomes = page.eval_on_selector_all(
        "#upload-results tbody tr",
        "rows => rows.map(r => [r.querySelector('.path').textContent, r.dataset.outcome,"
        " r.querySelector('.outcome').textContent])",
    )
    assert sorted(outcomes) == [
        ["notes.txt", "failed", "Bị từ chối"],
        ["slice0.dcm", "stored", "Đã lưu"],
        ["slice1.dcm", "stored", "Đã lưu"],
    ]
    assert "Đã lưu 2/3" in page.inner_text("#upload-summary")
    assert [str(m.StudyInstanceUID) for m in _studies(archive, StudyInstanceUID=study)] == [study]


def test_upload_a_folder_in_english(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    tmp_path: Path,
) -> None:
    """A folder chosen whole (webkitdirectory), sub-folders walked, each file's outcome."""
    study = generate_uid()
    folder = tmp_path / "CD"
    for i, sub in enumerate(("SERIES1", "SERIES1", "SERIES2/DEEP")):
        path = folder / sub / f"IM{i}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(to_bytes(ct_slice(study, generate_uid(), index=i, size=8)))
    (folder / "README.TXT").write_text("not DICOM")
    page = open_page(locale="en-GB")
    page.goto(f"{live_http}/viewer/upload")
    assert page.inner_text("#upload h1") == "Upload DICOM files"
    page.set_input_files("#folder", str(folder))
    page.wait_for_function(
        "() => document.querySelectorAll('#upload-results [data-outcome=stored]').length === 3"
        " && document.querySelectorAll('#upload-results [data-outcome=failed]').length === 1",
        timeout=30_000,
    )
    outcomes = page.eval_on_selector_all(
        "#upload-results tbody tr",
        "rows => rows.map(r => [r.querySelector('.path').textContent, r.dataset.outcome])",
    )
    assert sorted(outcomes) == [
        ["CD/README.TXT", "failed"],
        ["CD/SERIES1/IM0", "stored"],
        ["CD/SERIES1/IM1", "stored"],
        ["CD/SERIES2/DEEP/IM2", "stored"],
    ]
    assert "3 of 4 stored" in page.inner_text("#upload-summary")
    assert len(archive.locate(study)) == 3


def _wait_message(page: Page, form: str, text: str) -> None:
    page.wait_for_function(
        "([form, text]) => document.querySelector(`#${form} .message`)?.textContent.includes(text)",
        arg=[form, text],
        timeout=30_000,
    )


def test_study_actions_correct_merge_reject_export(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    runners: RunningJobs,
    dimse_server: DimseServer,
    dcmtk: None,
    tmp_path: Path,
) -> None:
    register(archive, RemoteAE(ae_title="FINDSCU", services=["find"]))
    study = _store(archive, "BN0001", "Nguyen^Van An")
    _store(archive, "BN0002", "Nguyễn^Văn An", series=1)
    page = open_page()
    # From the study list to the study's actions.
    page.click(f"tr[data-study='{study}'] a.actions")
    page.wait_for_selector("#study-actions #correct")
    assert page.inner_text("#study-actions h1") == "Thao tác trên ca chụp"
    assert page.input_value("#correct input[name=PatientName]") == "Nguyen^Van An"

    # Correct the name (Vietnamese page): QIDO and C-FIND's engine answer it.
    page.fill("#correct input[name=PatientName]", "Nguyễn^Văn An")
    page.fill("#correct input[name=reason]", "sai chính tả")
    page.click("#correct button[type=submit]")
    _wait_message(page, "correct", "Đã sửa")
    page.wait_for_selector("#correct table.versions tbody tr")
    (found,) = _studies(archive, StudyInstanceUID=study)
    assert str(found.PatientName) == "Nguyễn^Văn An"
    # ... through each door: QIDO-RS over HTTP, C-FIND over DICOM, the study list.
    qido = page.request.get(f"{live_http}/dicom-web/studies?StudyInstanceUID={study}")
    assert qido.json()[0]["00100010"]["Value"][0]["Alphabetic"] == "Nguyễn^Văn An"
    with find_association(dimse_server.port, calling="FINDSCU") as assoc:
        identifier = query("STUDY", StudyInstanceUID=study, PatientName="")
        (match,) = c_find(assoc, STUDY_ROOT, identifier).matches
    assert str(match.PatientName) == "Nguyễn^Văn An"
    page.goto(f"{live_http}/viewer/")
    page.wait_for_function(
        "([uid, name]) => document.querySelector(`tr[data-study='${uid}']`)"
        "?.textContent.includes(name)",
        arg=[study, "Nguyễn Văn An"],
        timeout=30_000,
    )
    page.click(f"tr[data-study='{study}'] a.actions")
    page.wait_for_selector("#study-actions #merge")

    # English from here: merge BN0001 into BN0002; BN0001 still finds the study.
    page.click("#lang")
    page.wait_for_function(
        "() => document.querySelector('#study-actions h1').textContent === 'Study actions'"
    )
    page.fill("#merge input[name=target]", "BN0002")
    page.fill("#merge input[name=reason]", "duplicate record")
    page.click("#merge button[type=submit]")
    _wait_message(page, "merge", "Merged: 1")
    assert {str(m.PatientID) for m in _studies(archive, PatientID="BN0001")} == {"BN0002"}

    # Reject the first series for quality: the study keeps the other and gains a KOS.
    page.select_option("#reject select[name=code]", "113001")
    page.select_option("#reject select[name=series]", index=1)
    page.click("#reject button[type=submit]")
    _wait_message(page, "reject", "Rejected: 1")
    modalities = sorted(
        str(s.Modality) for s in archive.search(Level.SERIES, _series_query(study)).matches
    )
    assert modalities == ["CT", "KO"]

    # Export a DICOMDIR: progress until done, then a download link that answers a ZIP.
    page.select_option("#export select[name=media]", "dicomdir")
    assert page.is_checked("#export input[name=viewer]")  # the offline viewer goes along
    assert "offline viewer" in page.inner_text("#export")
    page.click("#export button[type=submit]")
    page.wait_for_selector("#export-progress[data-status=done]", timeout=60_000)
    assert "Done" in page.inner_text("#export-progress")
    href = page.get_attribute("#export-progress a.download", "href")
    assert href is not None
    response = page.request.get(f"{live_http}{href}")
    assert response.status == 200 and response.body()[:2] == b"PK"
    (tmp_path / "cd.zip").write_bytes(response.body())
    # The downloaded medium reads back: pydicom's FileSet and DCMTK from its DICOMDIR.
    with zipfile.ZipFile(tmp_path / "cd.zip") as media:
        media.extractall(tmp_path / "cd")
    fileset = FileSet(tmp_path / "cd" / "DICOMDIR")
    (kept,) = fileset.find(StudyInstanceUID=study, Modality="CT")
    assert str(kept.load().PatientName) == "Nguyễn^Văn An" and kept.PatientID == "BN0002"
    files = [str(tmp_path / "cd" / "DICOMDIR"), *(str(i.path) for i in fileset)]
    dump = subprocess.run(["dcmdump", *files], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    assert "Nguyễn^Văn An" in dump.stdout and (tmp_path / "cd" / "INDEX.HTM").exists()


def _series_query(study: str):  # type: ignore[no-untyped-def]
    from pydicom.dataset import Dataset

    identifier = Dataset()
    identifier.StudyInstanceUID = study
    identifier.SeriesInstanceUID = ""
    identifier.Modality = ""
    return identifier
