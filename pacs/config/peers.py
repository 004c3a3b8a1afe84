"""Who a DICOM caller is: a title proves nothing, a title at its registered address does.

A peer sends its calling AE title in clear text; anyone can send any title.
So a registered AE's privileges (query, retrieve) go only to a caller whose
title AND address match the registration, and, when the registration asks
for it, who came over DICOM TLS with a client certificate naming the peer.
Every refusal carries its reason, for the log and the audit trail.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass

from pacs.config.values import RemoteAE, Snapshot

RESOLVE_TTL_S = 60.0


@dataclass(frozen=True)
class Caller:
    """What a DICOM peer shows us: its calling AE title, its address, its TLS certificate."""

    ae_title: str
    address: str
    # None: plain TCP. On DICOM TLS: the names its client certificate carries
    # (subject common name and subject alternative names; empty without a certificate).
    tls_names: frozenset[str] | None = None


@dataclass(frozen=True)
class Verdict:
    """Whether the caller may go on; when not, why (said in the log and the audit)."""

    allowed: bool
    reason: str = ""
    peer: RemoteAE | None = None  # the registered peer the caller proved to be


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Resolver:
    """Host names of registered peers to addresses, remembered for a minute."""

    def __init__(self, ttl: float = RESOLVE_TTL_S) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def addresses(self, host: str) -> frozenset[str]:
        literal = _ip(host)
        if literal is not None:
            return frozenset({str(literal)})
        with self._lock:
            known = self._known.get(host)
        if known is not None and time.monotonic() - known[0] < self.ttl:
            return known[1]
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError:
            found: frozenset[str] = frozenset()
        else:
            found = frozenset(str(_ip(str(info[4][0]))) for info in infos)
        with self._lock:
            self._known[host] = (time.monotonic(), found)
        return found


def identify(snapshot: Snapshot, caller: Caller, resolver: Resolver) -> Verdict:
    """The registered peer the caller proves to be; refused with the reason when it does not."""
    title = caller.ae_title
    peer = snapshot.remote_aes.get(title)
    if peer is None:
        return Verdict(False, f"AE title {title!r} is not registered")
    if not peer.enabled:
        return Verdict(False, f"AE {title} is registered but disabled")
    calling_ip = _ip(caller.address)
    if calling_ip is None or str(calling_ip) not in resolver.addresses(peer.host):
        return Verdict(
            False, f"AE {title} is registered at {peer.host}, but called from {caller.address}"
        )
    if (peer.tls_required or peer.tls_identity) and caller.tls_names is None:
        return Verdict(False, f"AE {title} must call over DICOM TLS")
    if peer.tls_identity and peer.tls_identity not in (caller.tls_names or frozenset()):
        shown = ", ".join(sorted(caller.tls_names or ())) or "no certificate"
        return Verdict(
            False,
            f"AE {title} must show a client certificate for {peer.tls_identity} (showed {shown})",
        )
    return Verdict(True, peer=peer)


def registered_address(snapshot: Snapshot, address: str, resolver: Resolver) -> bool:
    """Whether an enabled registered peer lives at ``address`` (before its title is known).

    A connection is judged by its address alone until its A-ASSOCIATE-RQ
    arrives; the title is checked against the same registration then.
    """
    calling_ip = _ip(address)
    if calling_ip is None:
        return False
    return any(
        peer.enabled and str(calling_ip) in resolver.addresses(peer.host)
        for peer in snapshot.remote_aes.values()
    )


def admit(snapshot: Snapshot, caller: Caller, resolver: Resolver, *, strict: bool) -> Verdict:
    """May the caller open an association at all?

    Open to anyone unless the archive runs strict or keeps a list of allowed
    calling AEs; then only to registered peers (proven by address and
    certificate) and to the allowed calling titles.
    """
    identity = identify(snapshot, caller, resolver)
    if identity.allowed:
        return identity
    if caller.ae_title in snapshot.calling_aes:
        return Verdict(True)
    if not strict and not snapshot.calling_aes:
        return Verdict(True)
    if caller.ae_title in snapshot.remote_aes:
        return identity  # a registered title from the wrong place: say so
    return Verdict(False, f"AE title {caller.ae_title!r} is neither registered nor allowed")


def permit(snapshot: Snapshot, caller: Caller, resolver: Resolver, service: str) -> Verdict:
    """May the caller use ``service`` ("find", "move", "get", "store")?

    Query and retrieval only for a proven registered peer with that service;
    storage for any admitted caller unless a list of allowed calling AEs is kept.
    """
    identity = identify(snapshot, caller, resolver)
    if identity.allowed:
        assert identity.peer is not None
        if service in identity.peer.services or service == "store":
            return identity
        return Verdict(
            False, f"AE {caller.ae_title} is not registered for {service}", identity.peer
        )
    if service == "store" and (not snapshot.calling_aes or caller.ae_title in snapshot.calling_aes):
        return Verdict(True)
    return identity
