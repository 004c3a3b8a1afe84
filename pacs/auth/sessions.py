"""Signed session cookies for the web UI, and the grant cookie of a share link.

The cookie holds the user name and a fingerprint of the password hash, signed
and time-stamped with the server key: nothing to store per session, and a
password change or a disabled account ends every session at once.
"""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "pacs_session"
GRANT_COOKIE = "pacs_grant"


def _serializer(key: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key, salt=f"pacs-{purpose}")


def sign(key: str, purpose: str, payload: dict[str, Any]) -> str:
    return _serializer(key, purpose).dumps(payload)


def unsign(key: str, purpose: str, value: str, max_age: float) -> dict[str, Any] | None:
    try:
        payload = _serializer(key, purpose).loads(value, max_age=int(max_age))
    except BadSignature:
        return None
    return payload if isinstance(payload, dict) else None
