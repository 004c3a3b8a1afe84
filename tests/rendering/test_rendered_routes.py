"""``rendered`` and ``thumbnail`` over HTTP: formats, parameters, errors, scope and audit."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydicom.data import get_testdata_file

from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth import grants
from pacs.auth.keys import signing_key
from tests.dicom_factory import ct_slice, to_bytes

STUDY = "1.2.826.0.1.3680043.8.498.10"
SERIES = "1.2.826.0.1.3680043.8.498.11"
OTHER_STUDY = "1.2.826.0.1.3680043.8.498.20"


@pytest.fixture
def stored(archive: Archive) -> list[str]:
    sops = []
    for index in range(3):
        ds = ct_slice(STUDY, SERIES, index=index, size=64)
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="test"))
        sops.append(str(ds.SOPInstanceUID))
    archive.ingest(io.BytesIO(to_bytes(ct_slice(OTHER_STUDY))), Origin(door="test"))
    return sops


def _url(sop: str, tail: str = "rendered") -> str:
    return f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{sop}/{tail}"


def test_rendered_instance_jpeg_and_png(client: TestClient, stored: list[str]) -> None:
    jpeg = client.get(_url(stored[0]))
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (64, 64)
    png = client.get(_url(stored[0]), headers={"Accept": "image/png"})
    assert png.headers["content-type"] == "image/png"
    by_param = client.get(_url(stored[0]), params={"accept": "image/png"})
    assert by_param.headers["content-type"] == "image/png"
    weighted = client.get(_url(stored[0]), headers={"Accept": "image/jpeg;q=0.5, image/png"})
    assert weighted.headers["content-type"] == "image/png"


def test_window_and_viewport(client: TestClient, stored: list[str]) -> None:
    narrow = client.get(_url(stored[0]), params={"window": "0,1", "accept": "image/png"})
    pixels = np.asarray(Image.open(io.BytesIO(narrow.content)))
    assert set(np.unique(pixels)) <= {0, 255}  # a 1-wide window is a threshold
    small = client.get(_url(stored[0]), params={"viewport": "32,32"})
    assert Image.open(io.BytesIO(small.content)).size == (32, 32)


@pytest.mark.parametrize(
    ("params", "headers", "code"),
    [
        ({"window": "abc"}, {}, 400),
        ({"window": "40,80,SIGMOID"}, {}, 400),
        ({"viewport": "0,10"}, {}, 400),
        ({"quality": "0"}, {}, 422),
        ({}, {"Accept": "application/dicom"}, 406),
    ],
)
def test_bad_parameters(
    client: TestClient,
    stored: list[str],
    params: dict[str, str],
    headers: dict[str, str],
    code: int,
) -> None:
    response = client.get(_url(stored[0]), params=params, headers=headers)
    assert response.status_code == code
    assert response.json()["detail"]


def test_frames_rendered_and_out_of_range(client: TestClient, stored: list[str]) -> None:
    assert client.get(_url(stored[0], "frames/1/rendered")).status_code == 200
    missing = client.get(_url(stored[0], "frames/2/rendered"))
    assert missing.status_code == 404 and "out of range" in missing.json()["detail"]
    assert client.get(_url("1.2.3", "rendered")).status_code == 404


def test_rendered_series_is_multipart(client: TestClient, stored: list[str]) -> None:
    response = client.get(f"/dicom-web/studies/{STUDY}/series/{SERIES}/rendered")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith('multipart/related; type="image/jpeg"')
    assert response.content.count(b"Content-Type: image/jpeg") == 3


def test_thumbnails_cached(client: TestClient, stored: list[str], archive: Archive) -> None:
    for url in (
        f"/dicom-web/studies/{STUDY}/thumbnail",
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/thumbnail",
        _url(stored[1], "thumbnail"),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert max(Image.open(io.BytesIO(response.content)).size) <= 128
    cache = archive.settings.data_dir / "cache" / "thumbnails"
    cached = list(cache.iterdir())
    assert len(cached) == 1  # study, series and middle instance show the same picture
    assert client.get(f"/dicom-web/studies/{STUDY}/thumbnail").content == cached[0].read_bytes()


def test_real_compressed_file_renders(client: TestClient, archive: Archive) -> None:
    path = get_testdata_file("US1_J2KR.dcm")
    assert path is not None
    with open(path, "rb") as fp:
        result = archive.ingest(fp, Origin(door="test"))
    url = (
        f"/dicom-web/studies/{result.study_uid}/series/{result.series_uid}"
        f"/instances/{result.sop_instance_uid}/rendered"
    )
    image = Image.open(io.BytesIO(client.get(url).content))
    assert image.mode == "RGB" and image.size == (640, 480)


def test_anonymous_refused_and_access_audited(
    anonymous_client: TestClient, client: TestClient, stored: list[str], archive: Archive
) -> None:
    assert anonymous_client.get(_url(stored[0])).status_code == 401
    client.get(_url(stored[0]))
    last = archive.audit.events()[-1]
    assert (last.action, last.actor, last.study_uid, last.patient_id) == (
        "wado",
        "admin",
        STUDY,
        "BN0001",
    )


def test_share_grant_sees_only_its_study(archive: Archive, stored: list[str]) -> None:
    info = grants.create_grant(archive.sessions, STUDY, "admin", days=1)
    token = grants.link_token(signing_key(archive.settings), info.grant_id)
    other_sop = archive.locate(OTHER_STUDY)[0]
    with TestClient(create_app(archive)) as phone:
        assert phone.get(f"/s/{token}", follow_redirects=False).status_code == 303
        assert phone.get(_url(stored[0])).status_code == 200
        assert phone.get(f"/dicom-web/studies/{STUDY}/thumbnail").status_code == 200
        other = (
            f"/dicom-web/studies/{OTHER_STUDY}/series/{other_sop.series_uid}"
            f"/instances/{other_sop.sop_instance_uid}"
        )
        assert phone.get(f"{other}/rendered").status_code == 403
        assert phone.get(f"{other}/thumbnail").status_code == 403
        assert phone.get(f"/dicom-web/studies/{OTHER_STUDY}/thumbnail").status_code == 403
        grants.revoke_grant(archive.sessions, info.grant_id)
        assert phone.get(_url(stored[0])).status_code == 401
