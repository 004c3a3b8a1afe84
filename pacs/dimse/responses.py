"""A DIMSE response belongs to the thread that sent the request, never to the reactor's poll.

pynetdicom runs a reactor thread per association that polls the DIMSE message
queue (``get_msg(block=False)``) and serves what it finds. A thread that sends
a request on the association (``send_c_store`` and the like) first pauses that
reactor, so that the response is left for its own ``get_msg(block=True)``:
it clears ``_reactor_checkpoint`` and spins until ``_is_paused`` is true.

That handshake has a hole, and C-MOVE falls into it: the C-MOVE handler runs
on the calling association's thread and sends every C-STORE of the move on
the sub-association, whose reactor is another thread.

1. C-STORE n is answered; its sender sets the checkpoint. The reactor, blocked
   in ``_reactor_checkpoint.wait()`` with ``_is_paused`` true, is notified but
   does not run yet.
2. The sender goes on to C-STORE n + 1 at once: it clears the checkpoint, reads
   ``_is_paused`` (still true: the reactor has not run) and sends the request.
3. The reactor finally runs. ``threading.Event.wait`` returns true for the
   notification of step 1 although the flag is clear again, so the reactor sets
   ``_is_paused`` false and polls the queue: when the destination was quick,
   the C-STORE-RSP of step 2 is there. The reactor takes it, pynetdicom logs
   "Received unexpected C-STORE service message" and drops it.
4. The sender waits for a response that never comes: after the DIMSE timeout
   (60 s) it aborts the sub-association. The instance the destination stored
   counts as failed, the remaining ones are not sent, and the C-MOVE ends
   0xB000 with part of the study.

This queue closes the hole where it does harm: a non-blocking get (only the
reactor's poll makes one) does not take a response while the checkpoint is
clear, that is while a sender is between pausing the reactor and reading its
response. The sender clears the checkpoint before it sends the request and
sets it only once it has the response, so no response it waits for can ever
be taken by the poll. A response nobody waits for (the checkpoint set) still
goes to the reactor, which logs and drops it as pynetdicom always did.
"""

from __future__ import annotations

import queue
from typing import Any

from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider


class SenderOwnedResponses(queue.Queue[Any]):
    """An association's DIMSE message queue whose poll leaves responses to their sender."""

    def __init__(self, assoc: Association | None = None) -> None:
        super().__init__()
        self.assoc = assoc  # its checkpoint is read at each poll: it may be replaced

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if block or self.assoc is None:
            return super().get(block, timeout)
        with self.not_empty:  # what Queue.get(block=False) does, plus the check
            if not self._qsize() or self._awaited(self.queue[0]):
                raise queue.Empty
            item = self._get()
            self.not_full.notify()
            return item

    def _awaited(self, item: Any) -> bool:
        """Whether ``item`` is a response a paused sender is about to read."""
        _, message = item
        checkpoint = getattr(self.assoc, "_reactor_checkpoint", None)
        return (
            checkpoint is not None
            and not getattr(message, "is_valid_request", True)
            and not checkpoint.is_set()
        )


def install() -> None:
    """Give every association pynetdicom makes in this process a :class:`SenderOwnedResponses`.

    Accepted associations, the C-MOVE sub-associations, and any we request
    (C-ECHO checks): every pynetdicom requestor has the race, not only ours.
    """
    original = DIMSEServiceProvider.__init__
    if getattr(original, "_pacs_sender_owned", False):
        return

    def __init__(self: DIMSEServiceProvider, assoc: Association) -> None:
        original(self, assoc)
        self.msg_queue = SenderOwnedResponses(assoc)

    __init__._pacs_sender_owned = True  # type: ignore[attr-defined]
    DIMSEServiceProvider.__init__ = __init__  # type: ignore[method-assign]
