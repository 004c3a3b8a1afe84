"""the statistics' summary of the instance table, kept by triggers (issue 20 item 1)

Revision ID: 0020_stats_summary
Revises: 0019_token_scopes

See :mod:`pacs.index.stats_models`. The triggers are the only writers of
``stats_delta``: on PostgreSQL statement-level triggers with transition tables
(one delta row per series, slot and AE per statement, so a bulk delete of a
study writes a handful of rows), on SQLite row triggers. The summary is filled
from the existing rows in the same transaction that creates the triggers
(creating a trigger locks the table against writers until the commit), so no
instance is counted twice or missed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_stats_summary"
down_revision = "0019_token_scopes"
branch_labels = None
depends_on = None

PG_FUNCTION = """
CREATE FUNCTION stats_instance_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO stats_delta (series_pk, slot, source_ae, instances, bytes)
    SELECT series_pk, floor(extract(epoch FROM received_at) / 900)::bigint,
           coalesce(source_ae, ''), count(*), coalesce(sum(size), 0)
    FROM new_rows GROUP BY 1, 2, 3;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO stats_delta (series_pk, slot, source_ae, instances, bytes)
    SELECT series_pk, floor(extract(epoch FROM received_at) / 900)::bigint,
           coalesce(source_ae, ''), -count(*), -coalesce(sum(size), 0)
    FROM old_rows GROUP BY 1, 2, 3;
  ELSE
    INSERT INTO stats_delta (series_pk, slot, source_ae, instances, bytes)
    SELECT series_pk, slot, source_ae, sum(n), sum(b) FROM (
      SELECT o.series_pk, floor(extract(epoch FROM o.received_at) / 900)::bigint AS slot,
             coalesce(o.source_ae, '') AS source_ae, -1 AS n, -coalesce(o.size, 0) AS b
      FROM old_rows o JOIN new_rows w ON w.pk = o.pk
      WHERE (o.series_pk, o.received_at, o.source_ae, o.size)
            IS DISTINCT FROM (w.series_pk, w.received_at, w.source_ae, w.size)
      UNION ALL
      SELECT w.series_pk, floor(extract(epoch FROM w.received_at) / 900)::bigint,
             coalesce(w.source_ae, ''), 1, coalesce(w.size, 0)
      FROM old_rows o JOIN new_rows w ON w.pk = o.pk
      WHERE (o.series_pk, o.received_at, o.source_ae, o.size)
            IS DISTINCT FROM (w.series_pk, w.received_at, w.source_ae, w.size)
    ) d GROUP BY 1, 2, 3 HAVING sum(n) <> 0 OR sum(b) <> 0;
  END IF;
  RETURN NULL;
END $$
"""

PG_TRIGGERS = [
    """CREATE TRIGGER stats_instance_insert AFTER INSERT ON instance
       REFERENCING NEW TABLE AS new_rows
       FOR EACH STATEMENT EXECUTE FUNCTION stats_instance_delta()""",
    """CREATE TRIGGER stats_instance_delete AFTER DELETE ON instance
       REFERENCING OLD TABLE AS old_rows
       FOR EACH STATEMENT EXECUTE FUNCTION stats_instance_delta()""",
    """CREATE TRIGGER stats_instance_update AFTER UPDATE ON instance
       REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
       FOR EACH STATEMENT EXECUTE FUNCTION stats_instance_delta()""",
]

_SQLITE_SLOT = "CAST(strftime('%s', {row}.received_at) AS INTEGER) / 900"
_SQLITE_ROW = (
    "INSERT INTO stats_delta (series_pk, slot, source_ae, instances, bytes) VALUES "
    "({row}.series_pk, " + _SQLITE_SLOT + ", coalesce({row}.source_ae, ''), {sign}1, "
    "{sign}coalesce({row}.size, 0));"
)
SQLITE_TRIGGERS = [
    "CREATE TRIGGER stats_instance_insert AFTER INSERT ON instance BEGIN "
    + _SQLITE_ROW.format(row="NEW", sign="")
    + " END",
    "CREATE TRIGGER stats_instance_delete AFTER DELETE ON instance BEGIN "
    + _SQLITE_ROW.format(row="OLD", sign="-")
    + " END",
    "CREATE TRIGGER stats_instance_update AFTER UPDATE OF series_pk, received_at, source_ae, size "
    "ON instance WHEN OLD.series_pk IS NOT NEW.series_pk OR OLD.received_at IS NOT "
    "NEW.received_at OR OLD.source_ae IS NOT NEW.source_ae OR OLD.size IS NOT NEW.size BEGIN "
    + _SQLITE_ROW.format(row="OLD", sign="-")
    + " "
    + _SQLITE_ROW.format(row="NEW", sign="")
    + " END",
]

BACKFILL = {
    "postgresql": """
        INSERT INTO stats_series_slot (series_pk, slot, source_ae, instances, bytes)
        SELECT series_pk, floor(extract(epoch FROM received_at) / 900)::bigint,
               coalesce(source_ae, ''), count(*), coalesce(sum(size), 0)
        FROM instance GROUP BY 1, 2, 3""",
    "sqlite": """
        INSERT INTO stats_series_slot (series_pk, slot, source_ae, instances, bytes)
        SELECT series_pk, CAST(strftime('%s', received_at) AS INTEGER) / 900,
               coalesce(source_ae, ''), count(*), coalesce(sum(size), 0)
        FROM instance GROUP BY 1, 2, 3""",
}


def upgrade() -> None:
    op.create_table(
        "stats_series_slot",
        sa.Column("series_pk", sa.Integer(), primary_key=True),
        sa.Column("slot", sa.BigInteger(), primary_key=True),
        sa.Column("source_ae", sa.String(16), primary_key=True),
        sa.Column("instances", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_stats_series_slot_slot", "stats_series_slot", ["slot"])
    op.create_table(
        "stats_delta",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("series_pk", sa.Integer(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("source_ae", sa.String(16), nullable=False),
        sa.Column("instances", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("LOCK TABLE instance IN SHARE ROW EXCLUSIVE MODE")
        op.execute(PG_FUNCTION)
        for statement in PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    op.execute(BACKFILL[dialect])


def downgrade() -> None:
    for name in ("stats_instance_insert", "stats_instance_delete", "stats_instance_update"):
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON instance")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS stats_instance_delta()")
    op.drop_table("stats_delta")
    op.drop_table("stats_series_slot")
