"""SMART on FHIR scopes (App Launch 2.0, section 3) that narrow what an API token may read.

A token without scopes acts with everything its account's role permits (scripts, the
HIS). A token with scopes, the kind a client app gets from ``POST /fhir/auth/token``
(client credentials), may only read, and only the resource types its scopes name:
``system/ImagingStudy.read`` (v1) or ``system/ImagingStudy.rs`` (v2), ``user/*.read``...
Reading is all this archive's FHIR door does, so only read and search permissions are
granted; ``patient/`` scopes need a launch context (the patient an app was opened for),
which this server does not issue, so they are refused rather than widened to every
patient. The images behind an ImagingStudy (its DICOMweb Endpoint) are read with the
same token when it holds an ImagingStudy scope.
"""

from __future__ import annotations

import re

RESOURCE_TYPES = ("ImagingStudy", "Patient", "DiagnosticReport", "Endpoint")
CONTEXTS = ("system", "user")
_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*|[cruds]+)$")
MAX_SCOPES = 32
MAX_TEXT = 1000


class ScopeError(ValueError):
    """A scope this server cannot grant, with the reason (OAuth 2.0 ``invalid_scope``)."""


def _permissions(action: str) -> set[str]:
    """The v2 permission letters of a v1 or v2 action (``read`` is ``rs``, ``*`` all)."""
    if action == "read":
        return {"r", "s"}
    if action == "write":
        return {"c", "u", "d"}
    if action == "*":
        return set("cruds")
    return set(action)


def parse(text: str) -> frozenset[str]:
    """The read scopes of a space-separated ``scope`` value, normalised to ``context/Type.rs``
    (or ``.r``/``.s``); raises :class:`ScopeError` for a scope that grants nothing here.

    Identity and launch scopes (``openid``, ``fhirUser``, ``launch``...) are ignored: this
    server issues no id_token and no launch context.
    """
    if len(text) > MAX_TEXT:
        raise ScopeError(f"at most {MAX_TEXT} characters of scopes")
    granted: set[str] = set()
    words = text.split()
    if len(words) > MAX_SCOPES:
        raise ScopeError(f"at most {MAX_SCOPES} scopes")
    for word in words:
        if word in ("openid", "fhirUser", "profile", "offline_access", "online_access"):
            continue
        if word == "launch" or word.startswith("launch/"):
            continue
        match = _SCOPE.match(word)
        if not match:
            raise ScopeError(f"not a SMART scope: {word[:80]!r}")
        context, kind, action = match.groups()
        if context == "patient":
            raise ScopeError(f"{word[:80]}: patient/ scopes need a launch context; ask user/ "
                             "or system/ scopes")  # fmt: skip
        if kind != "*" and kind not in RESOURCE_TYPES:
            raise ScopeError(f"{word[:80]}: this server serves {', '.join(RESOURCE_TYPES)}")
        reads = "".join(p for p in "rs" if p in _permissions(action))
        if not reads:
            raise ScopeError(f"{word[:80]}: this server grants only read and search")
        granted.add(f"{context}/{kind}.{reads}")
    if not granted:
        raise ScopeError("no resource scope asked, e.g. system/ImagingStudy.rs")
    return frozenset(granted)


def allows(scopes: frozenset[str] | None, kind: str, permission: str) -> bool:
    """Whether ``scopes`` let a client ``permission`` (``r`` read, ``s`` search) ``kind``;
    ``None`` (a token without scopes, a session) allows what the role allows."""
    if scopes is None:
        return True
    for scope in scopes:
        _, _, rest = scope.partition("/")
        scope_kind, _, letters = rest.partition(".")
        if scope_kind in ("*", kind) and permission in letters:
            return True
    return False


def text(scopes: frozenset[str] | None) -> str:
    """The space-separated form (sorted), as stored and as a token response's ``scope``."""
    return " ".join(sorted(scopes or ()))


def load(stored: str | None) -> frozenset[str] | None:
    """Scopes as stored on a token row: ``None`` (no column value) means unrestricted."""
    if stored is None:
        return None
    return frozenset(stored.split())
