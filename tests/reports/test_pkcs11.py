"""Signing with a key on a PKCS#11 token: SoftHSM2 (Debian softhsm2) stands for the USB
token or HSM, driven through pyHanko's PKCS#11 signer; the PIN is the passphrase."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pkcs11
import pytest
from asn1crypto import pem, x509
from fastapi.testclient import TestClient
from pkcs11 import Attribute, CertificateType, ObjectClass

from pacs.archive import Archive
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.settings import Settings
from tests.conftest import IN_CI
from tests.reports.helpers import make_signing_pki, store_study
from tests.reports.test_lifecycle import _validate

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "123456"


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SoftHSM2 token "bv-thu" holding the key and certificate labelled "bs.lan"."""
    if shutil.which("softhsm2-util") is None or not MODULE.exists():
        message = "SoftHSM2 not installed: run `make test`, which installs Debian softhsm2"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    pki = make_signing_pki(tmp_path / "pki")
    run = ["softhsm2-util", "--pin", PIN]
    subprocess.run([*run, "--init-token", "--free", "--label", "bv-thu", "--so-pin", "654321"],
                   check=True, capture_output=True)  # fmt: skip
    key = str(tmp_path / "pki" / "bs.lan.key")
    subprocess.run([*run, "--import", key, "--token", "bv-thu", "--label", "bs.lan", "--id", "01"],
                   check=True, capture_output=True)  # fmt: skip
    _, _, der = pem.unarmor((tmp_path / "pki" / "bs.lan.pem").read_bytes())
    cert = x509.Certificate.load(der)
    session = pkcs11.lib(str(MODULE)).get_token(token_label="bv-thu").open(rw=True, user_pin=PIN)
    with session:
        session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True,
            Attribute.LABEL: "bs.lan",
            Attribute.ID: b"\x01",
            Attribute.SUBJECT: cert.subject.dump(),
            Attribute.VALUE: der,
        })  # fmt: skip
    return pki.ca_pem


def test_sign_with_a_token(sqlite_settings: Settings, token: Path) -> None:
    from app.http.app import create_app

    settings = sqlite_settings.model_copy(update={"pkcs11_library": str(MODULE)})
    archive = Archive.open(settings)
    try:
        create_account(archive.sessions, "bs.lan", "radiologist-password", Role.RADIOLOGIST)
        with pytest.raises(Exception, match="token"):
            archive.reports.store_pkcs11("bs.lan", "bv-thu", "bs.lan", "000000", "CCHN-1")
        archive.reports.store_pkcs11("bs.lan", "bv-thu", "bs.lan", PIN, "CCHN-1")
        study, _ = store_study(archive, slices=1)
        with TestClient(create_app(archive)) as client:
            client.auth = ("bs.lan", "radiologist-password")
            report = client.post(
                f"/api/studies/{study}/reports",
                json={"findings": "Bình thường.", "conclusion": "Bình thường."},
            ).json()
            assert (
                client.post(
                    f"/api/reports/{report['id']}/sign", json={"passphrase": "000000"}
                ).status_code
                == 422
            )
            signed = client.post(f"/api/reports/{report['id']}/sign", json={"passphrase": PIN})
            assert signed.status_code == 200, signed.text
            assert "Bác sĩ bs.lan" in signed.json()["signature"]["certificate"]["subject"]
            pdf = client.get(f"/api/reports/{report['id']}/pdf").content
        _, _, ca_der = pem.unarmor(token.read_bytes())
        assert _validate(pdf, x509.Certificate.load(ca_der)) == [(True, True, True)]
    finally:
        archive.close()
