"""A pynetdicom storage SCP in a process of its own: ``python -m ... PORT LOG``.

It accepts every storage SOP class in the uncompressed syntaxes, answers
0x0000, and appends the SOP Instance UID of each C-STORE it receives to LOG
(one line, flushed before the response goes out), so a test counts exactly
what arrived, duplicates included.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from pynetdicom import AE, AllStoragePresentationContexts, evt


def main(port: int, log: TextIO) -> None:
    def on_store(event: Any) -> int:
        log.write(f"{event.request.AffectedSOPInstanceUID}\n")
        log.flush()
        return 0x0000

    ae = AE(ae_title="PYSCP")
    ae.supported_contexts = AllStoragePresentationContexts
    ae.start_server(("127.0.0.1", port), evt_handlers=[(evt.EVT_C_STORE, on_store)])


if __name__ == "__main__":
    with open(sys.argv[2], "a", encoding="ascii") as out:
        main(int(sys.argv[1]), out)
