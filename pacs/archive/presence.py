"""Whether the settings name an archive that exists, asked before anything creates one.

``pacs serve`` creates the archive on its first start (and ``pacs db
upgrade`` when asked to). Every other command acts on an existing archive:
run from another folder with the default, relative data folder, ``pacs
import`` used to "import" into a new hidden ``./data`` that the server never
sees. Asking first, without creating a file or a table, lets the command
refuse and say which folder and database it looked at.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from pacs.archive.errors import ArchiveError, IndexUnavailable
from pacs.index.database import make_engine
from pacs.settings import Settings


class ArchiveNotFound(ArchiveError):
    """The settings name a data folder or database that holds no archive yet."""

    def __init__(self, reason: str, data_dir: Path, database: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.data_dir = data_dir
        self.database = database  # the URL, password masked


def require_archive(settings: Settings) -> None:
    """Return when the index named by ``settings`` holds an archive; raise
    :class:`ArchiveNotFound` (creating nothing) when it does not."""
    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not url.database or url.database == ":memory:" or path.is_file():
            return
        raise ArchiveNotFound(f"{path} does not exist", settings.data_dir, shown)
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        if inspect(engine).has_table("alembic_version"):
            return
    except SQLAlchemyError as exc:
        raise IndexUnavailable(f"cannot read the index {shown}: {exc.__class__.__name__}") from exc
    finally:
        engine.dispose()
    raise ArchiveNotFound(f"database {shown} has no archive tables", settings.data_dir, shown)
