"""The DICOM peers the archive knows, as the facade exposes them (``archive.remote_aes``).

Doors read and change the peers only through this object: the DIMSE door asks
whether a caller may associate or use a service, the admin API and the CLI
add, change, remove and test peers. Reads come from the node's cache
(:mod:`pacs.config.cache`); writes go to the database and reach every node
within the cache's time to live.
"""

from __future__ import annotations

import logging
import ssl

from sqlalchemy.orm import Session, sessionmaker

from pacs.config import peers
from pacs.config.cache import DEFAULT_TTL_S, ConfigCache
from pacs.config.echo import EchoResult, c_echo
from pacs.config.peers import Caller, Resolver, Verdict
from pacs.config.repository import ConfigRepository
from pacs.config.values import (
    CallingAE,
    InvalidConfig,
    RemoteAE,
    UnknownAE,
    check_ae_title,
    remote_ae,
)
from pacs.settings import Settings

log = logging.getLogger(__name__)


class RemoteAEs:
    def __init__(
        self, sessions: sessionmaker[Session], settings: Settings, ttl: float = DEFAULT_TTL_S
    ) -> None:
        self.settings = settings
        self.repository = ConfigRepository(sessions)
        self.cache = ConfigCache(self.repository, ttl)
        self.resolver = Resolver()

    # -- reading -------------------------------------------------------------------------

    def all(self) -> list[RemoteAE]:
        """Every configured peer, by title (enabled or not)."""
        return sorted(self.cache.current().remote_aes.values(), key=lambda ae: ae.ae_title)

    def find(self, title: str) -> RemoteAE | None:
        """The peer called ``title``, or None."""
        return self.cache.current().remote_aes.get(title)

    def get(self, title: str) -> RemoteAE:
        """The peer called ``title``; raises :class:`UnknownAE`."""
        found = self.find(title)
        if found is None:
            raise UnknownAE(f"no remote AE {title}")
        return found

    def calling_aes(self) -> list[str]:
        """Calling AE titles allowed to associate without being registered peers."""
        return sorted(self.cache.current().calling_aes)

    def destination(self, title: str) -> tuple[str, int] | None:
        """Where C-MOVE sends to ``title``: its registered (enabled) host and port, or None."""
        peer = self.find(title)
        if peer is None or not peer.enabled:
            return None
        return peer.host, peer.port

    def charset_fallback_for(self, calling_ae: str | None) -> str:
        """The character set assumed for a dataset from ``calling_ae`` that declares none."""
        peer = self.find(calling_ae or "")
        if peer is not None and peer.charset_fallback:
            return peer.charset_fallback
        return self.settings.default_charset

    def charset_profile_for(self, calling_ae: str) -> str:
        """The character set profile of our C-FIND answers to ``calling_ae`` (utf8 default)."""
        peer = self.find(calling_ae)
        return peer.charset_profile if peer is not None else "utf8"

    def admit(self, caller: Caller) -> Verdict:
        """Whether ``caller`` may open an association (see :func:`pacs.config.peers.admit`)."""
        snapshot = self.cache.current()
        return peers.admit(snapshot, caller, self.resolver, strict=self.settings.dicom_strict)

    def registered_address(self, address: str) -> bool:
        """Whether an enabled registered peer lives at ``address`` (reserved DICOM connections)."""
        return peers.registered_address(self.cache.current(), address, self.resolver)

    def permit(self, caller: Caller, service: str) -> Verdict:
        """Whether ``caller`` may use ``service`` (find, move, get, store), and why not."""
        return peers.permit(self.cache.current(), caller, self.resolver, service)

    # -- writing -------------------------------------------------------------------------

    def add(self, value: RemoteAE) -> RemoteAE:
        """Register a peer; raises :class:`DuplicateAE` when the title exists."""
        self.repository.add_remote_ae(value)
        self.cache.invalidate()
        return value

    def replace(self, title: str, value: RemoteAE) -> RemoteAE:
        """Overwrite peer ``title`` (a new title renames it); raises UnknownAE, DuplicateAE."""
        self.repository.replace_remote_ae(title, value)
        self.cache.invalidate()
        return value

    def remove(self, title: str) -> None:
        """Forget peer ``title``; raises :class:`UnknownAE`."""
        self.repository.remove_remote_ae(title)
        self.cache.invalidate()

    def allow_calling(self, title: str, description: str = "") -> None:
        """Let ``title`` associate (and store) without registering it as a peer."""
        self.repository.add_calling_ae(CallingAE(check_ae_title(title), description))
        self.cache.invalidate()

    def disallow_calling(self, title: str) -> None:
        self.repository.remove_calling_ae(title)
        self.cache.invalidate()

    def seed_from_settings(self) -> list[str]:
        """Insert the settings file's ``[[remote_aes]]`` and ``allowed_calling_aes`` the
        database lacks; a title already in the database keeps the database's values."""
        remotes = []
        for item in self.settings.remote_aes:
            try:
                remotes.append(
                    remote_ae(
                        ae_title=item.ae_title,
                        host=item.host,
                        port=item.port,
                        services=item.services,
                        charset_fallback=item.charset_fallback,
                        charset_profile=item.charset_profile,
                        tls_required=item.tls_required,
                        tls_identity=item.tls_identity,
                        description=item.description or "from the settings file",
                        enabled=item.enabled,
                    )
                )
            except InvalidConfig as exc:
                raise InvalidConfig(
                    f"[[remote_aes]] {item.ae_title!r} in the settings: {exc}"
                ) from exc
        calling = [
            CallingAE(check_ae_title(title), "from the settings file")
            for title in self.settings.allowed_calling_aes
        ]
        added = self.repository.seed(remotes, calling)
        if added:
            log.info("configuration: added %s from the settings file", ", ".join(added))
            self.cache.invalidate()
        return added

    # -- testing a peer ------------------------------------------------------------------

    def echo(self, title: str, timeout: float = 10.0) -> EchoResult:
        """A real C-ECHO to peer ``title`` from our AE title; raises :class:`UnknownAE`."""
        peer = self.get(title)
        tls = self._client_tls() if peer.tls_required else None
        return c_echo(self.settings.ae_title, peer, timeout=timeout, tls=tls)

    def client_tls(self) -> ssl.SSLContext:
        """Our side of DICOM TLS to a peer (for the outbound clients of pacs.routing)."""
        return self._client_tls()

    def _client_tls(self) -> ssl.SSLContext:
        """Our side of DICOM TLS to a peer: its certificate checked against our CA file (or
        the system's), ours shown when we have one."""
        settings = self.settings
        context = ssl.create_default_context(
            cafile=str(settings.dicom_tls_ca_file) if settings.dicom_tls_ca_file else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if settings.dicom_tls_cert_file and settings.dicom_tls_key_file:
            context.load_cert_chain(settings.dicom_tls_cert_file, settings.dicom_tls_key_file)
        return context
