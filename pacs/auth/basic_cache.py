"""Remember recently verified HTTP Basic credentials for a minute.

DICOMweb clients using Basic send the password with every request, and an
Argon2 check costs ~100 ms by design; a viewer fetching hundreds of frames
would spend most of its time hashing. A verified pair is kept for a short
TTL under a keyed hash (never the password itself), so a password change,
disable or lockout takes effect within that minute.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

from pacs.auth.principal import Principal

TTL_SECONDS = 60.0
MAX_ENTRIES = 1024


class BasicCache:
    def __init__(self, key: str, ttl: float = TTL_SECONDS) -> None:
        self._key = key.encode()
        self._ttl = ttl
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def _digest(self, username: str, password: str) -> str:
        return hmac.new(self._key, f"{username}\0{password}".encode(), hashlib.sha256).hexdigest()

    def get(self, username: str, password: str) -> Principal | None:
        digest = self._digest(username, password)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or entry[0] < time.monotonic():
                self._entries.pop(digest, None)
                return None
            return entry[1]

    def put(self, username: str, password: str, principal: Principal) -> None:
        digest = self._digest(username, password)
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
            self._entries[digest] = (time.monotonic() + self._ttl, principal)
