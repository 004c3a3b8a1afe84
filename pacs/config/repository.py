"""Reading and writing the configuration tables; every write bumps the config version.

The version row is updated in the same transaction as the change, so a node
that reads a new version number is guaranteed to read the new rows with it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from pacs.config.values import CallingAE, DuplicateAE, RemoteAE, Snapshot, UnknownAE
from pacs.index.config_models import CallingAERow, ConfigVersion, RemoteAERow


def _to_value(row: RemoteAERow) -> RemoteAE:
    return RemoteAE(
        ae_title=row.ae_title,
        host=row.host,
        port=row.port,
        services=tuple(s for s in row.services.split(",") if s),
        charset_fallback=row.charset_fallback,
        charset_profile=row.charset_profile,
        tls_required=row.tls_required,
        tls_identity=row.tls_identity,
        description=row.description,
        enabled=row.enabled,
    )


def _fields(value: RemoteAE) -> dict[str, object]:
    return {
        "ae_title": value.ae_title,
        "host": value.host,
        "port": value.port,
        "services": ",".join(value.services),
        "charset_fallback": value.charset_fallback,
        "charset_profile": value.charset_profile,
        "tls_required": value.tls_required,
        "tls_identity": value.tls_identity,
        "description": value.description,
        "enabled": value.enabled,
        "updated_at": datetime.now(UTC),
    }


def _bump(session: Session) -> None:
    session.execute(update(ConfigVersion).values(version=ConfigVersion.version + 1))


class ConfigRepository:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def version(self) -> int:
        """The configuration's version number: one indexed row, cheap to poll."""
        with self.sessions() as session:
            return int(session.scalar(select(ConfigVersion.version)) or 0)

    def snapshot(self) -> Snapshot:
        """Every row with the version they belong to, read in one transaction."""
        with self.sessions() as session, session.begin():
            version = int(session.scalar(select(ConfigVersion.version)) or 0)
            remotes = session.scalars(select(RemoteAERow).order_by(RemoteAERow.ae_title)).all()
            calling = session.scalars(select(CallingAERow.ae_title)).all()
            return Snapshot(
                version=version,
                remote_aes={row.ae_title: _to_value(row) for row in remotes},
                calling_aes=frozenset(calling),
            )

    def add_remote_ae(self, value: RemoteAE) -> None:
        """Insert; raises :class:`DuplicateAE` when the title exists."""
        with self.sessions.begin() as session:
            if session.scalar(select(RemoteAERow.pk).where(RemoteAERow.ae_title == value.ae_title)):
                raise DuplicateAE(f"remote AE {value.ae_title} already exists")
            session.add(RemoteAERow(**_fields(value)))
            _bump(session)

    def replace_remote_ae(self, title: str, value: RemoteAE) -> None:
        """Overwrite the AE ``title`` (renaming it when ``value`` has another title)."""
        with self.sessions.begin() as session:
            row = session.scalar(select(RemoteAERow).where(RemoteAERow.ae_title == title))
            if row is None:
                raise UnknownAE(f"no remote AE {title}")
            if value.ae_title != title and session.scalar(
                select(RemoteAERow.pk).where(RemoteAERow.ae_title == value.ae_title)
            ):
                raise DuplicateAE(f"remote AE {value.ae_title} already exists")
            for name, field_value in _fields(value).items():
                setattr(row, name, field_value)
            _bump(session)

    def remove_remote_ae(self, title: str) -> None:
        with self.sessions.begin() as session:
            removed = session.execute(delete(RemoteAERow).where(RemoteAERow.ae_title == title))
            if not removed.rowcount:  # type: ignore[attr-defined]
                raise UnknownAE(f"no remote AE {title}")
            _bump(session)

    def add_calling_ae(self, value: CallingAE) -> None:
        with self.sessions.begin() as session:
            if session.scalar(
                select(CallingAERow.pk).where(CallingAERow.ae_title == value.ae_title)
            ):
                raise DuplicateAE(f"calling AE {value.ae_title} already allowed")
            session.add(
                CallingAERow(
                    ae_title=value.ae_title,
                    description=value.description,
                    updated_at=datetime.now(UTC),
                )
            )
            _bump(session)

    def remove_calling_ae(self, title: str) -> None:
        with self.sessions.begin() as session:
            removed = session.execute(delete(CallingAERow).where(CallingAERow.ae_title == title))
            if not removed.rowcount:  # type: ignore[attr-defined]
                raise UnknownAE(f"no allowed calling AE {title}")
            _bump(session)

    def seed(self, remotes: list[RemoteAE], calling: list[CallingAE]) -> list[str]:
        """Insert the titles the table lacks (the settings file's seed); return those added.

        Idempotent and safe when several processes start at once: a title another
        process inserted first is skipped (INSERT ... ON CONFLICT DO NOTHING).
        """
        added: list[str] = []
        with self.sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            for value in remotes:
                inserted = session.execute(
                    insert(RemoteAERow)
                    .values(**_fields(value))
                    .on_conflict_do_nothing()
                    .returning(RemoteAERow.pk)
                ).first()
                if inserted is not None:
                    added.append(value.ae_title)
            for item in calling:
                inserted = session.execute(
                    insert(CallingAERow)
                    .values(
                        ae_title=item.ae_title,
                        description=item.description,
                        updated_at=datetime.now(UTC),
                    )
                    .on_conflict_do_nothing()
                    .returning(CallingAERow.pk)
                ).first()
                if inserted is not None:
                    added.append(item.ae_title)
            if added:
                _bump(session)
        return added
