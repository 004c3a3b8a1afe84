"""One switch for what reaches into pynetdicom's internals: the DIMSE fast path.

The receive path of our server is faster than stock pynetdicom because it
replaces pieces of it: reactors that wake on work instead of 1 ms polls
(:mod:`~pacs.dimse.reactor`), P-DATA read and C-STOREs assembled without
pynetdicom's copies (:mod:`~pacs.dimse.pdata`, :mod:`~pacs.dimse.store_request`),
C-STORE responses encoded directly (:mod:`~pacs.dimse.store_response`) and
spool files opened without pydicom datasets (:mod:`~pacs.dimse.spool`). Each
relies on private names and on the exact behaviour of one pynetdicom release,
so they are all on or all off together, here:

- on when the ``dimse_fastpath`` setting (``PACS_DIMSE_FASTPATH``, default on)
  asks for it AND the installed pynetdicom is the release the shims were
  written and tested against (:data:`SHIMMED_PYNETDICOM`);
- otherwise stock pynetdicom serves every association, slower but exactly as
  its authors intend. A new pynetdicom release thus degrades speed, never
  correctness; adopting it means re-checking the shims and this constant.

What stays either way is configuration pynetdicom offers publicly (spooling
received datasets to files, sending from files), TCP_NODELAY on our sockets,
and the sending side of C-MOVE/C-GET (:mod:`~pacs.dimse.retrieve_plan`), which
bounds memory rather than saving time.

The patches are process-wide (pynetdicom's module globals): the last
:func:`apply` wins, which is what one server per process needs.
"""

from __future__ import annotations

import logging

import pynetdicom

from pacs.dimse import reactor, spool
from pacs.settings import Settings

log = logging.getLogger(__name__)

SHIMMED_PYNETDICOM = "3.0.4"  # the release the fast path's shims were written for
_active = False


def wanted(settings: Settings) -> bool:
    """Whether the fast path will be on for ``settings`` with the installed pynetdicom."""
    return settings.dimse_fastpath and pynetdicom.__version__ == SHIMMED_PYNETDICOM


def apply(settings: Settings) -> bool:
    """Turn the fast path on or off for this process as ``settings`` say; whether it is on."""
    global _active
    on = wanted(settings)
    if settings.dimse_fastpath and not on:
        log.warning(
            "DIMSE fast path off: pynetdicom %s is installed, its shims were written for %s",
            pynetdicom.__version__,
            SHIMMED_PYNETDICOM,
        )
    if on:
        reactor.install()
        spool.install()
    else:
        reactor.uninstall()
        spool.uninstall()
    _active = on
    return on


def active() -> bool:
    """Whether the fast path is on in this process (see :func:`apply`)."""
    return _active
