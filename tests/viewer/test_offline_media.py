"""The offline viewer on DICOMDIR media, opened from the file system in Debian's Chromium.

Real parts: the export job's code (``Exports.run``, what the job runner calls), the
media unpacked into a temporary folder, and ``/usr/bin/chromium`` opening its
``INDEX.HTM`` through a ``file://`` URL with no server anywhere (every request the
page makes is checked to be a file). The canvas is read back and compared with the
values the standard's window gives for the stored pixels, so a wrong decode, byte
order or window shows as a failure, not as "something was drawn".
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from playwright.sync_api import Browser, Page
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.fileset import FileSet
from pydicom.uid import JPEGBaseline8Bit, generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.principal import Kind, Principal, Role
from tests.dicom_factory import ct_slice, to_bytes
from tests.reports.helpers import PASSPHRASE, make_signing_pki, radiologist

pytestmark = pytest.mark.slow  # a browser per test

ADMIN = Principal(Kind.USER, "admin", Role.ADMIN)
MPEG2 = "1.2.840.10008.1.2.4.100"
PIXELS = """() => {
  const canvas = document.getElementById('image');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  return {width: canvas.width, height: canvas.height, rgba: Array.from(data)};
}"""


def _ingest(archive: Archive, ds: Dataset) -> None:
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))


def _jpeg(ds: Dataset, picture: Image.Image, photometric: str) -> None:
    """Make ``ds`` a JPEG Baseline image of ``picture`` (Pillow's encoder, as a modality's)."""
    stream = io.BytesIO()
    picture.save(stream, "JPEG", quality=95, subsampling=1)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.Rows, ds.Columns = picture.height, picture.width
    ds.SamplesPerPixel = 3 if picture.mode == "RGB" else 1
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    for keyword in ("RescaleIntercept", "RescaleSlope"):
        delattr(ds, keyword)
    ds.PixelData = encapsulate([stream.getvalue()])


def _store_mixed_study(archive: Archive) -> tuple[str, list[Dataset], Image.Image]:
    """Three CT slices, a greyscale and a colour JPEG Baseline image and an MPEG-2 video."""
    study = generate_uid()
    slices = []
    series = generate_uid()
    for index in range(3):
        ds = ct_slice(study, series, index=index, size=32, seed=index)
        _ingest(archive, ds)
        slices.append(ds)
    grey = Image.fromarray(np.add.outer(np.arange(40), np.arange(48)).astype(np.uint8) * 2, "L")
    ds = ct_slice(study, generate_uid())
    ds.SeriesNumber = 2
    _jpeg(ds, grey, "MONOCHROME2")
    _ingest(archive, ds)
    colour = np.zeros((48, 64, 3), np.uint8)
    colour[:, :32] = (220, 20, 20)
    colour[:, 32:] = (20, 20, 220)
    ds = ct_slice(study, generate_uid())
    ds.SeriesNumber = 3
    _jpeg(ds, Image.fromarray(colour, "RGB"), "YBR_FULL_422")
    _ingest(archive, ds)
    video = ct_slice(study, generate_uid())
    video.SeriesNumber = 4
    video.file_meta.TransferSyntaxUID = MPEG2
    video.SamplesPerPixel, video.PhotometricInterpretation = 3, "YBR_PARTIAL_420"
    video.BitsAllocated, video.BitsStored, video.HighBit, video.PlanarConfiguration = 8, 8, 7, 0
    video.NumberOfFrames = 2
    video.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(64)])
    _ingest(archive, video)
    return study, slices, grey


def _media(archive: Archive, study: str, folder: Path) -> Path:
    """Export ``study`` as DICOMDIR media (what the export job runs) and unpack it."""
    view = archive.exports.create(ADMIN, [study], "dicomdir")
    done = archive.exports.run(view.id)
    assert done.status == "done", done
    with zipfile.ZipFile(archive.exports.path(view.id)) as media:
        media.extractall(folder)
    return folder


def _offline_page(browser: Browser, index: Path) -> tuple[Page, list[str]]:
    page = browser.new_context(locale="vi-VN").new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(index.as_uri())
    page.wait_for_selector("#image[data-state=drawn]", timeout=20_000)
    assert errors == []
    return page, requests


def _grey_of(page: Page) -> np.ndarray:
    shown = page.evaluate(PIXELS)
    rgba = np.array(shown["rgba"], np.int16).reshape(shown["height"], shown["width"], 4)
    assert (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 3] == 255).all()
    return rgba[..., 0]


def _windowed(ds: Dataset, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 over the modality values of ``ds``: what the canvas must show."""
    values = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    shown = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.clip(np.floor(shown + 0.5), 0, 255).astype(np.int16)


def _default_window(ds: Dataset) -> tuple[float, float]:
    values = ds.pixel_array.astype(np.float64) + float(ds.RescaleIntercept)
    return (values.min() + values.max()) / 2, values.max() - values.min()


def test_dicomdir_media_viewer_opens_from_the_file_system(
    archive: Archive, browser: Browser, tmp_path: Path
) -> None:
    study, slices, grey = _store_mixed_study(archive)
    folder = _media(archive, study, tmp_path / "cd")
    assert {"DICOMDIR", "INDEX.HTM", "README.TXT", "VIEWER"} <= {p.name for p in folder.iterdir()}
    assert len(FileSet(folder / "DICOMDIR")) == 6  # the viewer's files are beside, not in, it
    readme = (folder / "README.TXT").read_text(encoding="utf-8")
    assert "INDEX.HTM" in readme and "trình duyệt" in readme and "web browser" in readme
    viewer_size = sum(p.stat().st_size for p in (folder / "VIEWER").glob("VIEWER.*"))
    assert viewer_size < 64_000  # a small viewer, no library bundle

    page, requests = _offline_page(browser, folder / "INDEX.HTM")
    assert page.inner_text(".patient-name") == "Nguyễn Văn An"
    assert page.inner_text("#lang") == "English"
    assert page.inner_text("#position") == "Ảnh 1/3"

    # The first slice, windowed from its own range as the standard says.
    center, width = _default_window(slices[0])
    assert np.abs(_grey_of(page) - _windowed(slices[0], center, width)).max() <= 1
    # Scrolling: the next slice, under the same window.
    page.keyboard.press("ArrowDown")
    page.wait_for_selector("#image[data-position='2']")
    assert np.abs(_grey_of(page) - _windowed(slices[1], center, width)).max() <= 1
    # Window/level by dragging: wider to the right, the text and the pixels follow.
    before = page.inner_text("#window")
    box = page.locator("#image").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 100, box["y"] + box["height"] / 2 + 40)
    page.mouse.up()
    page.wait_for_function(f"document.getElementById('window').textContent !== {before!r}")
    text = page.inner_text("#window")
    level, wide = (float(part.split()[-1]) for part in text.split(":")[1].split(","))
    assert wide > width
    assert np.abs(_grey_of(page) - _windowed(slices[1], level, wide)).max() <= 2

    # The greyscale JPEG Baseline image: the browser's own decoder, shown as stored.
    page.click(".series li:nth-child(2) button")
    page.wait_for_selector("#image[data-state=drawn][width='48']")
    assert np.abs(_grey_of(page) - np.asarray(grey, np.int16)).max() <= 3
    # The colour one (YBR_FULL_422): red on the left, blue on the right.
    page.click(".series li:nth-child(3) button")
    page.wait_for_selector("#image[data-state=drawn][width='64']")
    rgba = np.array(page.evaluate(PIXELS)["rgba"]).reshape(48, 64, 4)
    assert (rgba[24, 8, :3] > (180, -1, -1)).all() and (rgba[24, 8, 1:3] < 70).all()
    assert rgba[24, 56, 2] > 180 and (rgba[24, 56, :2] < 70).all()

    # The MPEG-2 video: no decoder here or in the browser, a clear message in each language.
    page.click(".series li:nth-child(4) button")
    page.wait_for_selector("#image[data-state=message]")
    message = page.inner_text("#message")
    assert "không giải mã được" in message and "MPEG2 Main Profile / Main Level" in message
    page.click("#lang")
    assert "cannot decode images compressed as MPEG2" in page.inner_text("#message")
    assert page.inner_text("#lang") == "Tiếng Việt"
    assert page.inner_text(".patient-name") == "Nguyễn Văn An"
    assert page.inner_text(".series li:nth-child(1) button").startswith("Series 1 · CT")
    assert requests and all(url.startswith("file://") for url in requests), requests


def test_media_of_a_reported_study_carries_its_pdf_and_sr(
    archive: Archive, client: TestClient, browser: Browser, tmp_path: Path
) -> None:
    """Issue 19's result package on media: the signed report's PDF opens, its SR reads."""
    client.auth = radiologist(archive, make_signing_pki(tmp_path / "pki"), "bs.lan")
    slice_ = ct_slice(size=16)
    _ingest(archive, slice_)
    study = str(slice_.StudyInstanceUID)
    report = client.post(
        f"/api/studies/{study}/reports",
        json={"findings": "Gan nhiễm mỡ độ I.", "conclusion": "Gan nhiễm mỡ."},
    ).json()
    signed = client.post(f"/api/reports/{report['id']}/sign", json={"passphrase": PASSPHRASE})
    assert signed.status_code == 200, signed.text
    pdf = client.get(f"/api/reports/{report['id']}/pdf").content
    folder = _media(archive, study, tmp_path / "cd")
    assert len(FileSet(folder / "DICOMDIR")) == 3  # the image, the SR, the PDF document

    page, requests = _offline_page(browser, folder / "INDEX.HTM")
    assert page.inner_text("h3") == "Kết quả chẩn đoán"
    link = page.locator(".report-pdf a")
    assert link.inner_text().startswith("Mở kết quả (PDF)")
    href = link.get_attribute("href")
    assert href is not None and href.endswith(".PDF")
    assert (folder / href).read_bytes() == pdf
    page.click(".report-sr button")
    document = page.inner_text("#document")
    assert "Gan nhiễm mỡ độ I." in document and "Conclusion: Gan nhiễm mỡ." in document
    assert "Người xác nhận: Bác sĩ" in document or "Người xác nhận: bs.lan" in document
    page.click("#document .back")
    page.wait_for_selector("#images:not([hidden]) #image[data-state=drawn]")
    assert all(url.startswith("file://") for url in requests), requests
    shown = dcmread(next(p for p in folder.rglob("IM*") if p.is_file()), stop_before_pixels=True)
    assert shown.StudyInstanceUID == study
