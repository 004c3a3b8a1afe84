"""Password hashing with Argon2id (argon2-cffi's defaults follow RFC 9106).

Each Argon2 computation takes 64 MiB and ~100 ms of a core by design; forty
concurrent guesses took the server from 264 to 1,140 MiB. A semaphore lets
only a few run at once (the others wait their turn), bounding the memory
that guessing can take whatever the number of connections.
"""

from __future__ import annotations

import os
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MAX_CONCURRENT_HASHES = max(2, min(4, os.cpu_count() or 2))
_hashing = threading.BoundedSemaphore(MAX_CONCURRENT_HASHES)
# Verifying against this when the user does not exist keeps the timing the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    with _hashing:
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        with _hashing:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def random_password() -> str:
    """A password an admin can type once: 20 URL-safe characters (~120 bits)."""
    return secrets.token_urlsafe(15)
