"""Which database errors mean "the index cannot serve now" rather than "this statement is wrong".

An outage (server gone, connection cut, database locked, disk full, read-only
after a fail-over) must reach a client as "retry later" (HTTP 503, DIMSE
0xA700); a constraint violation or a bug must not. The drivers say which is
which by code, never by message text: PostgreSQL by SQLSTATE class
(PostgreSQL Appendix A), SQLite by its primary result code
(https://sqlite.org/rescode.html), which Python's sqlite3 exposes since 3.11.
"""

from __future__ import annotations

# SQLite primary result codes of a database that cannot serve now.
_SQLITE_OUTAGE = {
    5,  # SQLITE_BUSY: locked by another connection beyond the busy timeout
    6,  # SQLITE_LOCKED
    7,  # SQLITE_NOMEM
    8,  # SQLITE_READONLY: file or folder not writable
    10,  # SQLITE_IOERR
    11,  # SQLITE_CORRUPT
    13,  # SQLITE_FULL: disk full
    14,  # SQLITE_CANTOPEN: the file or its folder is gone
    15,  # SQLITE_PROTOCOL
    26,  # SQLITE_NOTADB
}

# PostgreSQL SQLSTATEs (or their two-character classes) of a server that cannot serve now.
_POSTGRES_OUTAGE_CLASSES = {
    "08",  # connection exception
    "53",  # insufficient resources: disk full, out of memory, too many connections
    "57",  # operator intervention: shutdown, cannot connect now, statement timeout
    "58",  # system error: I/O error
    "40",  # transaction rollback: serialization failure, deadlock (retry)
}
_POSTGRES_OUTAGE_STATES = {
    "55P03",  # lock not available
    "25006",  # read-only SQL transaction: a hot standby after a fail-over
}


def is_outage(error: BaseException, *, disconnect: bool = False) -> bool:
    """Whether the driver error ``error`` means the index is unavailable, not the query wrong.

    ``disconnect`` is SQLAlchemy's own verdict that the connection broke.
    """
    if disconnect:
        return True
    sqlite_code = getattr(error, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return sqlite_code & 0xFF in _SQLITE_OUTAGE
    state = getattr(error, "sqlstate", None)
    if state:
        return state[:2] in _POSTGRES_OUTAGE_CLASSES or state in _POSTGRES_OUTAGE_STATES
    # No code at all: the driver never reached a server (cannot connect, connection lost).
    return _is_a(error, "OperationalError") or _is_a(error, "InterfaceError")


def _is_a(error: BaseException, pep249_name: str) -> bool:
    """An instance of the driver module's PEP 249 exception class of that name."""
    return any(base.__name__ == pep249_name for base in type(error).__mro__)
