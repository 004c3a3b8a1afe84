"""A signing PKI (a CA and a radiologist's certificate as PKCS#12) and a stored study."""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from tests.dicom_factory import ct_slice, to_bytes

PASSPHRASE = "mật-khẩu-ký-số"
EXTENSIONS = (
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n"
)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


@dataclass(frozen=True)
class SigningPki:
    ca_pem: Path
    p12: dict[str, Path]  # user name -> PKCS#12 file (passphrase PASSPHRASE)


def make_signing_pki(d: Path, users: tuple[str, ...] = ("bs.lan",)) -> SigningPki:
    """A CA and, per user, a certificate it signed (digital signature, non-repudiation)."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=Test Signing CA/O=Bệnh viện Thử", "-utf8", "-keyout", "ca.key", "-out", "ca.pem",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)  # fmt: skip
    (d / "ext.cnf").write_text(EXTENSIONS)
    files = {}
    for user in users:
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-utf8", "-subj",
                 f"/CN=Bác sĩ {user}/O=Bệnh viện Thử", "-keyout", f"{user}.key",
                 "-out", f"{user}.csr", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{user}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf",
                 "-out", f"{user}.pem", cwd=d)  # fmt: skip
        _openssl("pkcs12", "-export", "-inkey", f"{user}.key", "-in", f"{user}.pem",
                 "-certfile", "ca.pem", "-out", f"{user}.p12",
                 "-passout", f"pass:{PASSPHRASE}", cwd=d)  # fmt: skip
        files[user] = d / f"{user}.p12"
    return SigningPki(d / "ca.pem", files)


def store_study(archive: Archive, slices: int = 2) -> tuple[str, list[str]]:
    """A small CT study in the archive: (study UID, SOP Instance UIDs)."""
    first = ct_slice(index=0)
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    uids = []
    for index in range(slices):
        ds = first if index == 0 else ct_slice(study, series, index=index)
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
        uids.append(str(ds.SOPInstanceUID))
    return study, uids


def radiologist(
    archive: Archive, pki: SigningPki, user: str, code: str = "000123/BYT-CCHN"
) -> tuple[str, str]:
    """A radiologist account with a stored certificate: (user, password) for HTTP Basic."""
    password = f"{user}-password-long"
    create_account(archive.sessions, user, password, Role.RADIOLOGIST)
    archive.reports.store_pkcs12(user, pki.p12[user].read_bytes(), PASSPHRASE, code)
    return user, password
