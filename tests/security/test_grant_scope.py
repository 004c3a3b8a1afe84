"""A share grant for study A never opens study B, through any route, and dies when expired."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth import grants
from pacs.auth.keys import signing_key
from pacs.auth.models import ShareGrant
from tests.dicom_factory import ct_slice, to_bytes
from tests.security.routes import api_routes
from tests.security.test_route_policy import _operations


def _store(archive: Archive) -> dict[str, str]:
    ds = ct_slice(size=32)
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="test"))
    return {
        "study": str(ds.StudyInstanceUID),
        "series": str(ds.SeriesInstanceUID),
        "instance": str(ds.SOPInstanceUID),
    }


def _fill(path: str, uids: dict[str, str]) -> str:
    """A route template filled in with one study's real UIDs (frames 1, tag PixelData)."""
    values = {
        "study": uids["study"], "study_uid": uids["study"], "series": uids["series"],
        "series_uid": uids["series"], "instance": uids["instance"], "sop_uid": uids["instance"],
        "frames": "1", "frame_list": "1", "tag": "7FE00010", "fmt": "png",
    }  # fmt: skip
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: values.get(m.group(1), "1.2.3"), path)


def test_grant_for_study_a_never_opens_study_b(archive: Archive) -> None:
    a, b = _store(archive), _store(archive)
    info = grants.create_grant(archive.sessions, a["study"], "admin", days=1)
    token = grants.link_token(signing_key(archive.settings), info.grant_id)
    app = create_app(archive)
    reading = [
        path
        for path, route in api_routes(app)
        if "GET" in route.methods
        and _operations(route.dependant) & {"search", "retrieve"}
        and "{study" in path
    ]
    assert (
        len(reading) >= 12
    )  # studies, series, instances, metadata, frames, rendered, thumbnails...
    with TestClient(app) as phone:
        assert phone.get(f"/s/{token}", follow_redirects=False).status_code == 303
        opened_a = [path for path in reading if phone.get(_fill(path, a)).status_code == 200]
        assert len(opened_a) >= 10, opened_a  # the grant does open its own study
        for path in reading:
            response = phone.get(_fill(path, b))
            assert response.status_code == 403, (path, response.status_code)
        wado_uri = phone.get(
            "/wado",
            params={"requestType": "WADO", "studyUID": b["study"], "seriesUID": b["series"],
                    "objectUID": b["instance"], "contentType": "application/dicom"},
        )  # fmt: skip
        assert wado_uri.status_code == 403
        # Searching without a study in the path finds only study A.
        found = phone.get("/dicom-web/studies").json()
        assert [item["0020000D"]["Value"][0] for item in found] == [a["study"]]

        with archive.sessions.begin() as session:
            session.execute(
                update(ShareGrant)
                .where(ShareGrant.grant_id == info.grant_id)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        assert phone.get(_fill(reading[0], a)).status_code == 401  # expired: cookie is dead too
        assert phone.get(f"/s/{token}", follow_redirects=False).status_code == 410
