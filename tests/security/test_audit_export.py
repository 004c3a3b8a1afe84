"""Audit records leave the archive as DICOM PS3.15 messages: over HTTP, the CLI and syslog."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from app.http.app import create_app
from pacs.archive import Archive
from pacs.auth import accounts
from pacs.auth.principal import Kind, Principal, Role
from pacs.settings import Settings

DOCTOR = Principal(Kind.USER, "bs.lan", Role.RADIOLOGIST, "10.0.0.5")
CT = Principal(Kind.AE, "CT01", Role.MODALITY, "10.0.0.9:4000")


def test_dicom_audit_message_fields(archive: Archive) -> None:
    archive.audit.record(CT, "c-store", patient_id="BN1", study_uid="1.2.3")
    archive.audit.record(DOCTOR, "wado", "failure: not found", patient_id="BN1", study_uid="1.2.3")
    accounts.create_account(archive.sessions, "kiemtra", "mat-khau-dai", Role.AUDITOR)
    with TestClient(create_app(archive)) as http:
        http.auth = ("kiemtra", "mat-khau-dai")
        response = http.get("/api/audit", params={"patient_id": "BN1", "format": "dicom-xml"})
    assert response.status_code == 200
    messages = ET.fromstring(response.text).findall("AuditMessage")
    assert len(messages) == 2
    wado, store = messages  # newest first
    assert store.find("EventIdentification/EventID").get("csd-code") == "110104"  # type: ignore[union-attr]
    assert store.find("EventIdentification").get("EventActionCode") == "C"  # type: ignore[union-attr]
    assert store.find("ActiveParticipant").get("UserID") == "CT01"  # type: ignore[union-attr]
    ids = {
        p.get("ParticipantObjectTypeCode"): p.get("ParticipantObjectID")
        for p in store.findall("ParticipantObjectIdentification")
    }
    assert ids == {"1": "BN1", "2": "1.2.3"}
    assert wado.find("EventIdentification").get("EventOutcomeIndicator") == "4"  # type: ignore[union-attr]
    # Reading the trail was itself recorded.
    assert archive.audit.events()[-1].action == "audit-read"


def test_filters_and_pages_through_every_record_newest_first(archive: Archive) -> None:
    nurse = Principal(Kind.USER, "dd.mai", Role.CLINICIAN, "10.0.0.6")
    for n in range(7):
        archive.audit.record(DOCTOR, "c-find", patient_id=f"BN{n % 3}", detail=str(n))
    archive.audit.record(nurse, "share-open", patient_id="BN1", study_uid="1.2.3")
    archive.audit.record(nurse, "login")
    accounts.create_account(archive.sessions, "kiemtra", "mat-khau-dai", Role.AUDITOR)
    expected = [e.pk for e in archive.audit.events()][::-1]
    with TestClient(create_app(archive)) as http:
        http.auth = ("kiemtra", "mat-khau-dai")
        seen: list[int] = []
        url: str | None = "/api/audit?limit=2"
        while url:
            response = http.get(url)
            assert response.status_code == 200
            seen += [row["pk"] for row in response.json()]
            url = response.links.get("next", {}).get("url")
        assert seen[: len(expected)] == expected  # then the audit-read records of the paging
        assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen))

        def rows(**params: str) -> list[tuple[str, str, str]]:
            response = http.get("/api/audit", params=params)
            assert response.status_code == 200, response.text
            return [(r["actor"], r["action"], r["patient_id"]) for r in response.json()]

        assert rows(user="dd.mai") == [("dd.mai", "login", ""), ("dd.mai", "share-open", "BN1")]
        assert rows(action="share") == [("dd.mai", "share-open", "BN1")]
        assert rows(patient_id="BN1", action="c-find") == [("bs.lan", "c-find", "BN1")] * 2
        today = datetime.now(UTC).date()
        assert len(rows(since=str(today), until=str(today), action="c-find")) == 7
        assert rows(since=str(today + timedelta(days=1))) == []
        assert rows(until=str(today - timedelta(days=1))) == []
        assert http.get("/api/audit", params={"since": "tomorrow"}).status_code == 400


def test_only_admins_and_auditors_read_the_trail(archive: Archive) -> None:
    accounts.create_account(archive.sessions, "bs", "mat-khau-dai", Role.CLINICIAN)
    with TestClient(create_app(archive)) as http:
        assert http.get("/api/audit").status_code == 401
        assert http.get("/api/audit", auth=("bs", "mat-khau-dai")).status_code == 403


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_syslog_rfc5424(tmp_path: object, protocol: str, sqlite_settings: Settings) -> None:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(10)
        if protocol == "tcp":
            collector.listen(1)
        settings = sqlite_settings.model_copy(
            update={
                "audit_syslog_host": "127.0.0.1",
                "audit_syslog_port": collector.getsockname()[1],
                "audit_syslog_protocol": protocol,
            }
        )
        archive = Archive.open(settings)
        try:
            archive.audit.record(DOCTOR, "qido", patient_id="BN7", study_uid="1.2.9")
            if protocol == "udp":
                data = collector.recv(65535)
            else:
                connection, _ = collector.accept()
                connection.settimeout(10)
                data = b""
                deadline = time.monotonic() + 10
                while b"</AuditMessage>" not in data and time.monotonic() < deadline:
                    data += connection.recv(65535)
                connection.close()
                length, _, data = data.partition(b" ")
                assert int(length) == len(data)
        finally:
            archive.close()
    text = data.decode("utf-8")
    assert text.startswith("<85>1 ")  # authpriv.notice, version 1
    header, _, xml = text.partition("\ufeff")
    assert " pacs - IHE+RFC-3881 - " in header
    message = ET.fromstring(xml)
    assert message.find("EventIdentification/EventID").get("csd-code") == "110112"  # type: ignore[union-attr]
