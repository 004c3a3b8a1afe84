"""A C-ECHO to a configured peer: the administrator's "can we reach it?" button.

The answer says what failed in words an administrator can act on: nothing
listens at that address, the peer rejected our AE title, TLS failed, or it
answered with a non-success status.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from pacs.config.values import RemoteAE


@dataclass(frozen=True)
class EchoResult:
    ok: bool
    reason: str
    status: int | None = None
    elapsed_ms: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "success": self.ok,
            "reason": self.reason,
            "status": None if self.status is None else f"0x{self.status:04X}",
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


def _unreachable(remote: RemoteAE, timeout: float) -> str | None:
    """Why a TCP connection to the peer fails, or None when it connects."""
    try:
        socket.create_connection((remote.host, remote.port), timeout=timeout).close()
    except OSError as exc:
        return f"cannot connect to {remote.host}:{remote.port}: {exc.strerror or exc}"
    return None


def c_echo(
    calling_ae: str,
    remote: RemoteAE,
    *,
    timeout: float = 10.0,
    tls: ssl.SSLContext | None = None,
) -> EchoResult:
    """Associate with ``remote`` as ``calling_ae``, send one C-ECHO, release."""
    started = time.monotonic()
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    tls_args = (tls, remote.host) if tls is not None else None
    try:
        assoc = ae.associate(remote.host, remote.port, ae_title=remote.ae_title, tls_args=tls_args)
    except (OSError, ssl.SSLError) as exc:
        return EchoResult(False, f"TLS or network failure: {exc}", None, _ms(started))
    try:
        if not assoc.is_established:
            if assoc.is_rejected and assoc.acceptor.primitive is not None:
                rejection = assoc.acceptor.primitive
                reason = (
                    f"association rejected by {remote.ae_title}: {rejection.reason_str} "
                    f"({rejection.result_str}, {rejection.source_str})"
                )
            else:
                reason = _unreachable(remote, timeout) or (
                    f"{remote.host}:{remote.port} accepted the connection but aborted the "
                    "association (wrong port, TLS expected, or not a DICOM peer)"
                )
            return EchoResult(False, reason, None, _ms(started))
        answer = assoc.send_c_echo()
        status = int(answer.Status) if answer and "Status" in answer else None
        if status is None:
            return EchoResult(False, "no answer to the C-ECHO (timeout)", None, _ms(started))
        if status != 0x0000:
            return EchoResult(False, f"C-ECHO answered status 0x{status:04X}", status, _ms(started))
        return EchoResult(True, "C-ECHO succeeded", status, _ms(started))
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000
