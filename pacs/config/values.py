"""The configuration's value types and the rules their fields obey.

Every door (admin API, CLI, the TOML seed) builds a :class:`RemoteAE` through
:func:`remote_ae`, so one set of rules decides what a valid peer is and the
error says which field broke which rule.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SERVICES = ("echo", "find", "move", "get", "store")
DEFAULT_SERVICES = ("echo", "store", "find", "move", "get")
CHARSET_PROFILES = ("utf8", "ascii", "latin1")
# A host name as RFC 1123 allows it (letters, digits, hyphens, dots), or an IP address.
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")
# Defined terms of (0008,0005) are upper-case letters, digits, spaces, underscores, hyphens.
_CHARSET = re.compile(r"^[A-Z0-9 _-]{1,64}$")


class InvalidConfig(ValueError):
    """A configuration value breaks a rule; the message names the field and the rule."""


class UnknownAE(LookupError):
    """No remote AE with that title is configured."""


class DuplicateAE(ValueError):
    """A remote AE with that title is already configured."""


@dataclass(frozen=True)
class RemoteAE:
    """A DICOM peer: where to reach it, what it may ask for, how to talk to it."""

    ae_title: str
    host: str
    port: int
    services: tuple[str, ...] = DEFAULT_SERVICES
    charset_fallback: str | None = None
    charset_profile: str = "utf8"
    tls_required: bool = False
    tls_identity: str | None = None
    description: str = ""
    enabled: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "ae_title": self.ae_title,
            "host": self.host,
            "port": self.port,
            "services": list(self.services),
            "charset_fallback": self.charset_fallback,
            "charset_profile": self.charset_profile,
            "tls_required": self.tls_required,
            "tls_identity": self.tls_identity,
            "description": self.description,
            "enabled": self.enabled,
        }


@dataclass(frozen=True)
class CallingAE:
    """A calling AE title allowed to associate (and store) without being a registered peer."""

    ae_title: str
    description: str = ""


@dataclass(frozen=True)
class Snapshot:
    """The whole configuration as one node last read it (immutable, shared between threads)."""

    version: int
    remote_aes: dict[str, RemoteAE] = field(default_factory=dict)
    calling_aes: frozenset[str] = frozenset()


def check_ae_title(value: object, name: str = "ae_title") -> str:
    """An AE title per PS3.5: 1-16 characters, no backslash or control character."""
    text = str(value if value is not None else "").strip()
    if not text or len(text) > 16:
        raise InvalidConfig(f"{name}: an AE title has 1 to 16 characters")
    if "\\" in text or any(ord(ch) < 0x20 or ord(ch) > 0x7E for ch in text):
        raise InvalidConfig(f"{name}: an AE title has no backslash and only printable ASCII")
    return text


def check_host(value: object) -> str:
    text = str(value if value is not None else "").strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not _HOSTNAME.match(text):
        raise InvalidConfig("host: give an IP address or a host name (letters, digits, - and .)")
    return text.lower()


def check_port(value: object) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise InvalidConfig("port: a number from 1 to 65535") from None
    if not 1 <= number <= 65535:
        raise InvalidConfig("port: a number from 1 to 65535")
    return number


def check_services(values: Iterable[str]) -> tuple[str, ...]:
    chosen = [str(v).strip().lower() for v in values if str(v).strip()]
    unknown = sorted(set(chosen) - set(SERVICES))
    if unknown:
        raise InvalidConfig(f"services: unknown {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    return tuple(s for s in SERVICES if s in chosen)


def check_charset_fallback(value: object) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if not _CHARSET.match(text):
        raise InvalidConfig("charset_fallback: a DICOM character set term such as 'ISO_IR 100'")
    return text


def check_charset_profile(value: object) -> str:
    text = str(value or "utf8").strip().lower()
    if text not in CHARSET_PROFILES:
        raise InvalidConfig(f"charset_profile: one of {', '.join(CHARSET_PROFILES)}")
    return text


def check_text(value: object, name: str, limit: int = 255) -> str:
    text = str(value if value is not None else "").strip()
    if len(text) > limit or any(ord(ch) < 0x20 for ch in text):
        raise InvalidConfig(f"{name}: at most {limit} characters on one line")
    return text


def remote_ae(
    *,
    ae_title: object,
    host: object,
    port: object,
    services: Iterable[str] = DEFAULT_SERVICES,
    charset_fallback: object = None,
    charset_profile: object = "utf8",
    tls_required: bool = False,
    tls_identity: object = None,
    description: object = "",
    enabled: bool = True,
) -> RemoteAE:
    """A validated :class:`RemoteAE`; raises :class:`InvalidConfig` naming the bad field."""
    identity = check_text(tls_identity, "tls_identity") or None
    return RemoteAE(
        ae_title=check_ae_title(ae_title),
        host=check_host(host),
        port=check_port(port),
        services=check_services(services),
        charset_fallback=check_charset_fallback(charset_fallback),
        charset_profile=check_charset_profile(charset_profile),
        tls_required=bool(tls_required),
        tls_identity=identity,
        description=check_text(description, "description"),
        enabled=bool(enabled),
    )
