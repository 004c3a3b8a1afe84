"""The server's signing key for session cookies and share links.

Generated once into the data folder (mode 0600) so ``make run`` needs no
configuration; a cluster sets ``PACS_SECRET_KEY`` so every node agrees.

Several processes (the HTTP workers) may ask for it at the same moment on a
fresh data folder. The key is written whole to a file of its own and then
linked under the final name, which fails if another got there first: a
reader never sees the name before its content. (Creating the final name with
O_EXCL and writing into it let a second process read it still empty and sign
cookies with an empty key.)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile

from pacs.settings import Settings


def signing_key(settings: Settings) -> str:
    """The configured key, else the data folder's (made on first use)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.data_dir / "secret.key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd, draft = tempfile.mkstemp(dir=settings.data_dir, prefix=".secret-", suffix=".key")
        try:
            with os.fdopen(fd, "w") as out:  # mkstemp: mode 0600
                out.write(secrets.token_hex(32))
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            os.unlink(draft)
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"{path} is empty: delete it to make a new key (logs everyone out)")
    return key
