"""UID checks: the only text from a peer that ever becomes part of a storage key."""

from __future__ import annotations

import re

# Digits and dots, no empty component. Leading zeros in a component are not
# allowed by PS3.5 9.1 but real modalities send them, so they are tolerated:
# they cannot do harm in a key.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class InvalidUID(ValueError):
    pass


def check_uid(value: object, name: str) -> str:
    """Return ``value`` as a UID string, or raise :class:`InvalidUID` saying what is wrong."""
    if value is None or value == "":
        raise InvalidUID(f"{name} is missing")
    text = str(value)
    if len(text) > 64:
        raise InvalidUID(f"{name} is longer than 64 characters")
    if not _UID.match(text):
        raise InvalidUID(f"{name} {text[:80]!r} is not digits and dots")
    return text
