"""Signing a report's PDF as PAdES (pyHanko), behind one small interface.

A :class:`ReportSigner` turns a PDF into the same PDF with one more signature. Two
implementations: a PKCS#12 file kept in the index (:class:`Pkcs12Signer`; the passphrase
arrives with each signing request and is never stored) and a PKCS#11 token or HSM the
server can reach (:class:`Pkcs11Signer`, through pyHanko's PKCS#11 support; the PIN is
the passphrase). A remote-signing service (the signing hash sent to a provider) fits
the same interface: it needs only ``certificate`` and ``sign``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from asn1crypto import x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_cms import Signer

from pacs.reports.errors import SigningError

SIGNATURE_BYTES = 32 * 1024


@dataclass(frozen=True)
class CertificateInfo:
    """Who a certificate names, shown in the report and kept in the audit trail."""

    subject: str
    serial: str
    sha256: str
    not_after: datetime | None


_ABBREVIATIONS = {
    "common_name": "CN", "organization_name": "O", "organizational_unit_name": "OU",
    "country_name": "C", "state_or_province_name": "ST", "locality_name": "L",
    "email_address": "E", "serial_number": "SERIALNUMBER", "user_id": "UID",
}  # fmt: skip


def _subject(cert: x509.Certificate) -> str:
    """The subject as ``CN=..., O=...`` (the same in every language, unlike asn1crypto's
    English "Common Name: ...")."""
    parts = []
    for name, value in cert.subject.native.items():
        text = value if isinstance(value, str) else ", ".join(str(v) for v in value)
        parts.append(f"{_ABBREVIATIONS.get(name, name)}={text}")
    return ", ".join(parts)


def describe(cert: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        subject=_subject(cert)[:512],
        serial=format(cert.serial_number, "x")[:128],
        sha256=hashlib.sha256(cert.dump()).hexdigest(),
        not_after=cert.not_valid_after,
    )


class ReportSigner(Protocol):
    """Something that signs PDFs in one person's name."""

    @property
    def certificate(self) -> CertificateInfo: ...

    def sign(self, pdf: bytes, field_name: str, reason: str) -> bytes: ...

    def close(self) -> None:
        """Release what opening took (a token's session); signing again needs a new signer."""


def pades(signer: Signer, pdf: bytes, field_name: str, reason: str) -> bytes:
    """``pdf`` with one more PAdES B-B signature (an incremental update: what was signed
    before stays byte for byte).

    pyHanko's synchronous API runs its own event loop (``asyncio.run``), which fails in a
    thread that already runs one (an ASGI server's, Playwright's): there it signs in a
    short-lived thread of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _pades(signer, pdf, field_name, reason)
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(_pades, signer, pdf, field_name, reason).result()


def _pades(signer: Signer, pdf: bytes, field_name: str, reason: str) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        reason=reason,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
    )
    # A fixed reservation instead of pyHanko's estimate: the estimate is a whole dry-run
    # signature, and a software key is parsed (and its RSA key checked) for each: about
    # 220 ms of the ~450 ms a signature took here. 32 KiB holds an RSA-4096 signature with
    # a certificate chain several certificates long.
    out = signers.sign_pdf(writer, meta, signer=signer, bytes_reserved=SIGNATURE_BYTES)
    return out.getvalue()


class Pkcs12Signer:
    """A PKCS#12 file (certificate, key, chain) opened with the passphrase for one signing."""

    def __init__(self, pkcs12: bytes, passphrase: str) -> None:
        try:
            signer = signers.SimpleSigner.load_pkcs12_data(
                pkcs12, other_certs=(), passphrase=passphrase.encode()
            )
        except Exception as exc:  # pyHanko raises ValueError or its own errors alike
            raise SigningError("the certificate could not be opened: wrong passphrase?") from exc
        if signer is None or signer.signing_cert is None:
            raise SigningError("the certificate could not be opened: wrong passphrase?")
        self._signer = signer
        self._info = describe(signer.signing_cert)

    @property
    def certificate(self) -> CertificateInfo:
        return self._info

    def sign(self, pdf: bytes, field_name: str, reason: str) -> bytes:
        return pades(self._signer, pdf, field_name, reason)

    def close(self) -> None:
        """Nothing to release: the key was read from the file into memory."""


def read_pkcs12(pkcs12: bytes, passphrase: str) -> CertificateInfo:
    """Check that ``pkcs12`` opens with ``passphrase``; what its certificate says."""
    return Pkcs12Signer(pkcs12, passphrase).certificate


class Pkcs11Signer:
    """A key on a PKCS#11 token (USB token, smart card, HSM) reached by the server.

    ``library`` is the vendor's module (``PACS_PKCS11_LIBRARY``); the token is found by
    its label, the key and certificate by their label; the PIN is the passphrase.
    """

    def __init__(self, library: str, token_label: str, key_label: str, pin: str) -> None:
        from pyhanko.config.pkcs11 import TokenCriteria
        from pyhanko.sign import pkcs11

        if not library:
            raise SigningError("no PKCS#11 library configured (PACS_PKCS11_LIBRARY)")
        try:
            self._session = pkcs11.open_pkcs11_session(
                library, token_criteria=TokenCriteria(label=token_label), user_pin=pin
            )
        except Exception as exc:  # python-pkcs11 raises many kinds (PinIncorrect, NoSuchToken)
            raise SigningError(f"the token could not be used: {type(exc).__name__}") from exc
        try:
            self._signer = pkcs11.PKCS11Signer(
                self._session, cert_label=key_label, key_label=key_label
            )
            cert = self._signer.signing_cert
            if cert is None:
                raise SigningError("the token holds no certificate with that label")
        except Exception as exc:
            self._session.close()
            if isinstance(exc, SigningError):
                raise
            raise SigningError(f"the token could not be used: {type(exc).__name__}") from exc
        self._info = describe(cert)

    @property
    def certificate(self) -> CertificateInfo:
        return self._info

    def sign(self, pdf: bytes, field_name: str, reason: str) -> bytes:
        return pades(self._signer, pdf, field_name, reason)

    def close(self) -> None:
        self._session.close()
