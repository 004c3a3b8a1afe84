"""Password hashing with Argon2id, at OWASP's 19 MiB / 2 passes / 1 lane profile.

Each Argon2 computation takes its memory cost for the time it runs, by design.
argon2-cffi's default (RFC 9106's low-memory profile) is 64 MiB: forty
concurrent guesses took the server from 264 to 1,140 MiB, and even two at a
time added 128 MiB to the process's peak, which every hostile PIN or password
guess reached (bench/attacks.py: 283 -> 390 MB). OWASP's password storage
cheat sheet lists m=19 MiB, t=2, p=1 among its equivalent Argon2id
configurations (the same defence, traded between memory and passes); hashes
made with the old parameters still verify (they are in the hash string) and
are re-hashed at the next login (:func:`needs_rehash`). A semaphore lets only
a few run at once (the others wait their turn), bounding the memory that
guessing can take whatever the number of connections.

The dummy hash that keeps an unknown user's check as slow as a real one is
made at its first use, not at import: each DIMSE worker process imports this
module and never checks a password, and the hash's 19 (formerly 64) MiB stayed
in every process's peak memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import secrets
import threading
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet, Argon2id: m=19456 KiB, t=2, p=1.
MEMORY_COST_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1
_hasher = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM)
MAX_CONCURRENT_HASHES = max(2, min(4, os.cpu_count() or 2))
log = logging.getLogger(__name__)
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
MMAP_THRESHOLD_BYTES = 4 << 20


def _map_large_allocations() -> None:
    """Have glibc give each allocation of 4 MiB or more its own mapping, returned at free.

    glibc raises its mmap threshold to the size of any mapped block that is freed
    (up to 32 MiB): after the first Argon2 check, each 19 MiB buffer came from the
    calling thread's heap arena instead, and every arena kept one (16 guessing
    threads: +249 MiB for good). A fixed threshold stops that adjustment.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        if not libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
            log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    except (OSError, AttributeError):  # not glibc: its allocator decides
        pass


_map_large_allocations()
_hashing = threading.BoundedSemaphore(MAX_CONCURRENT_HASHES)


@cache
def _dummy_hash() -> str:
    """Verifying against this when the user does not exist keeps the timing the same."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    with _hashing:
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        with _hashing:
            return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def random_password() -> str:
    """A password an admin can type once: 20 URL-safe characters (~120 bits)."""
    return secrets.token_urlsafe(15)
