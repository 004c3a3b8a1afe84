"""An anchor for the hash chain, kept outside the database.

The chain proves that no record was changed or removed *before* the last
one; it cannot prove that the last records still exist (deleting the tail,
or emptying the table, leaves a valid shorter chain), nor that someone with
write access to the database did not recompute every hash after an edit.
So after every batch it appends, the writer also writes the number and hash
of the newest record to a checkpoint file in the data folder, signed with an
HMAC under the server key (``PACS_SECRET_KEY``, or ``secret.key`` in the data
folder: keep it off the database host to make the anchor independent of it).
``pacs audit verify`` then checks that the database still holds that record
with that hash. Several processes (DIMSE workers, ``pacs import``) update the
file under an exclusive lock and only ever move it forward. Records forwarded
to syslog (``PACS_AUDIT_SYSLOG_HOST``) are a second, remote anchor.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


class CheckpointError(Exception):
    """The checkpoint file exists but is unreadable or its signature is wrong."""


@dataclass(frozen=True)
class Mark:
    pk: int
    hash: str
    at: str  # when the checkpoint was written (UTC, ISO 8601)


class Checkpoint:
    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self._key = key.encode()

    def _mac(self, pk: int, digest: str, at: str) -> str:
        message = f"pacs-audit-checkpoint\0{pk}\0{digest}\0{at}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self) -> Mark | None:
        """The signed mark, ``None`` when no checkpoint was ever written.

        Raises :class:`CheckpointError` when the file was altered or forged.
        """
        try:
            data = json.loads(self.path.read_text())
            mark = Mark(int(data["pk"]), str(data["hash"]), str(data["at"]))
            signature = str(data["mac"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {self.path} unreadable: {exc}") from exc
        if not hmac.compare_digest(signature, self._mac(mark.pk, mark.hash, mark.at)):
            raise CheckpointError(f"checkpoint {self.path} has a wrong signature")
        return mark

    def advance(self, pk: int, digest: str) -> None:
        """Record ``pk``/``digest`` as the newest record, unless a newer one is recorded.

        Raises :class:`CheckpointError` (and leaves the file as evidence) when
        the current checkpoint was altered.
        """
        with self._locked():
            current = self.read()
            if current is not None and current.pk >= pk:
                return
            at = datetime.now(UTC).isoformat(timespec="seconds")
            body = {"pk": pk, "hash": digest, "at": at, "mac": self._mac(pk, digest, at)}
            partial = self.path.with_suffix(".tmp")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(body, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, self.path)
