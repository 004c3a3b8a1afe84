"""Register DICOM peers in an archive under test the way an administrator would (the database)."""

from __future__ import annotations

from pacs.archive import Archive
from pacs.config import UnknownAE, remote_ae
from pacs.settings import RemoteAE


def register(archive: Archive, *peers: RemoteAE) -> None:
    """Add each peer (the settings file's shape), replacing one with the same title."""
    for peer in peers:
        value = remote_ae(
            ae_title=peer.ae_title,
            host=peer.host,
            port=peer.port,
            services=peer.services,
            charset_fallback=peer.charset_fallback,
            charset_profile=peer.charset_profile,
            tls_required=peer.tls_required,
            tls_identity=peer.tls_identity,
            description=peer.description,
            enabled=peer.enabled,
        )
        try:
            archive.remote_aes.replace(peer.ae_title, value)
        except UnknownAE:
            archive.remote_aes.add(value)
