"""The server's signing key for session cookies and share links.

Generated once into the data folder (mode 0600) so ``make run`` needs no
configuration; a cluster sets ``PACS_SECRET_KEY`` so every node agrees.
"""

from __future__ import annotations

import contextlib
import os
import secrets

from pacs.settings import Settings


def signing_key(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.data_dir / "secret.key"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
            out.flush()
            os.fsync(out.fileno())
    return path.read_text().strip()
