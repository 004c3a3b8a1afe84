"""Routing's value types and the rules their fields obey: rules, DICOMweb endpoints, matching.

The admin API builds every rule through :func:`rule` and every endpoint
through :func:`endpoint`, so one set of checks decides what is valid and the
error names the field and the rule it broke.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

TRIGGERS = ("stable", "instance")
AUTH_KINDS = ("none", "bearer", "basic")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_PATTERN_CHARS = 64
MASK = "********"


class InvalidRoute(ValueError):
    """A rule or endpoint value breaks a rule; the message names the field and the rule."""


class UnknownRoute(LookupError):
    """No rule, endpoint or send with that name or id."""


class DuplicateRoute(ValueError):
    """A rule or endpoint with that name exists already."""


@dataclass(frozen=True)
class Destination:
    """Where a send goes: a registered remote AE (C-STORE) or a DICOMweb endpoint (STOW-RS)."""

    kind: str  # "ae" or "web"
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


def destination(text: str) -> Destination:
    """``ae:TITLE`` or ``web:NAME`` as a :class:`Destination`; :class:`InvalidRoute` otherwise."""
    kind, _, name = str(text).partition(":")
    name = name.strip()
    if kind not in ("ae", "web") or not name or len(name) > 64:
        raise InvalidRoute(
            "destination: 'ae:<remote AE title>' or 'web:<DICOMweb endpoint name>', "
            f"not {str(text)[:80]!r}"
        )
    return Destination(kind, name)


@dataclass(frozen=True)
class Rule:
    """Send what arrives (a stable study, or each instance) and matches, to one destination."""

    name: str
    destination: str  # ae:TITLE or web:NAME
    trigger: str = "stable"
    calling_ae: str = ""  # wildcard patterns (* and ?), case-insensitive; empty: any
    modality: str = ""
    body_part: str = ""
    description: str = ""
    window_start: str = ""  # HH:MM local time; both empty: any time
    window_end: str = ""
    priority: int = 0  # higher goes first on its destination
    enabled: bool = True
    id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "enabled": self.enabled,
            "trigger": self.trigger,
            "calling_ae": self.calling_ae,
            "modality": self.modality,
            "body_part": self.body_part,
            "description": self.description,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "destination": self.destination,
            "priority": self.priority,
        }

    def matches(self, arrival: Arrival, now: datetime) -> bool:
        """Whether ``arrival`` (a study or an instance) at local time ``now`` is for this rule."""
        return (
            self.enabled
            and _any(self.calling_ae, arrival.calling_aes)
            and _any(self.modality, arrival.modalities)
            and _any(self.body_part, arrival.body_parts)
            and _any(self.description, [arrival.description])
            and in_window(self.window_start, self.window_end, now)
        )


@dataclass(frozen=True)
class Arrival:
    """What a rule looks at: a study's (or one instance's) senders, modalities, body parts."""

    study_uid: str
    calling_aes: tuple[str, ...]
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    description: str
    stamp: str  # what makes this arrival distinct (the study's updated_at, an instance UID)
    sop_uids: tuple[str, ...] = ()  # empty: the whole study


@dataclass(frozen=True)
class Endpoint:
    """A DICOMweb destination: its base URL and the credential STOW-RS requests carry."""

    name: str
    url: str
    auth: str = "none"
    username: str = ""
    secret: str = ""
    description: str = ""
    enabled: bool = True
    id: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The endpoint as the API shows it: the secret masked, never echoed."""
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "auth": self.auth,
            "username": self.username,
            "secret": MASK if self.secret else "",
            "description": self.description,
            "enabled": self.enabled,
        }


def rule(**fields: Any) -> Rule:
    """A checked :class:`Rule` from plain values; :class:`InvalidRoute` names what is wrong."""
    value = Rule(**fields)
    _check_name(value.name)
    if value.trigger not in TRIGGERS:
        raise InvalidRoute(f"trigger: one of {', '.join(TRIGGERS)}, not {value.trigger[:20]!r}")
    destination(value.destination)
    for field in ("calling_ae", "modality", "body_part", "description"):
        pattern = getattr(value, field)
        if len(pattern) > _PATTERN_CHARS * (4 if field == "description" else 1):
            raise InvalidRoute(f"{field}: a pattern of at most {_PATTERN_CHARS} characters")
        if not pattern.isprintable():
            raise InvalidRoute(f"{field}: printable characters only")
    for field in ("window_start", "window_end"):
        text = getattr(value, field)
        if text and not _TIME.match(text):
            raise InvalidRoute(f"{field}: HH:MM (00:00 to 23:59), not {text[:8]!r}")
    if bool(value.window_start) != bool(value.window_end):
        raise InvalidRoute("window_start and window_end: give both or neither")
    if not -1000 <= value.priority <= 1000:
        raise InvalidRoute("priority: -1000 to 1000")
    return replace(value, destination=destination(value.destination).key)


def endpoint(**fields: Any) -> Endpoint:
    """A checked :class:`Endpoint`; :class:`InvalidRoute` names what is wrong."""
    value = Endpoint(**fields)
    _check_name(value.name)
    parts = urlsplit(value.url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value.url) > 512:
        raise InvalidRoute("url: an http:// or https:// DICOMweb base URL of at most 512 chars")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidRoute("url: no credentials, query or fragment (use auth and secret)")
    if value.auth not in AUTH_KINDS:
        raise InvalidRoute(f"auth: one of {', '.join(AUTH_KINDS)}")
    if value.auth != "none" and not value.secret:
        raise InvalidRoute(f"secret: {value.auth} authentication needs a secret")
    if value.auth == "basic" and (not value.username or ":" in value.username):
        raise InvalidRoute("username: basic authentication needs a user name without ':'")
    if len(value.secret) > 4096 or len(value.username) > 128 or len(value.description) > 255:
        raise InvalidRoute("secret, username or description too long")
    return replace(value, url=value.url.rstrip("/"))


def _check_name(name: str) -> None:
    if not _NAME.match(name or ""):
        raise InvalidRoute(
            "name: 1 to 64 letters, digits, spaces, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def wildcard(pattern: str) -> re.Pattern[str]:
    """A DICOM-style wildcard (``*`` any run, ``?`` one character) as a whole-value regex."""
    escaped = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(escaped, re.IGNORECASE | re.DOTALL)


def _any(pattern: str, values: Iterable[str]) -> bool:
    """An empty pattern matches anything; else some value matches it whole."""
    if not pattern or pattern == "*":
        return True
    compiled = wildcard(pattern)
    return any(compiled.fullmatch(value.strip()) for value in values)


def in_window(start: str, end: str, now: datetime) -> bool:
    """Whether ``now``'s time of day is in [start, end) (a window may cross midnight)."""
    if not start:
        return True
    current = now.strftime("%H:%M")
    if start <= end:
        return start <= current < end
    return current >= start or current < end
