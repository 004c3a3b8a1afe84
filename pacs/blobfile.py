"""A stored blob as a seekable local file, whatever the store.

Parsing and decoding seek back and forth; a filesystem blob already is a
file, an S3 object is a stream and gets spooled (in memory while small).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO, cast

from storage import BlobStore

SPOOL_IN_MEMORY = 32 << 20


@contextlib.contextmanager
def seekable_blob(store: BlobStore, key: str) -> Iterator[BinaryIO]:
    blob = store.open(key)
    try:
        if blob.seekable():
            yield blob
            return
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            shutil.copyfileobj(blob, spool, 1 << 20)
            spool.seek(0)
            yield cast(BinaryIO, spool)
    finally:
        blob.close()
