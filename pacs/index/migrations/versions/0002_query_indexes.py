"""query indexes and study-level search columns (issue 3)

Revision ID: 0002
Revises: 0001

Indexes for the searches the study list, QIDO-RS and C-FIND run most: names
and referring physicians by their folded key, identifiers and accession
numbers by prefix, and the per-study / per-series listings in reading order.
On PostgreSQL a non-C collation keeps ordinary b-tree indexes from serving
``LIKE 'abc%'``, so the prefix-searched columns also get a ``*_pattern_ops``
index there.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (index name, table, columns)
PLAIN = [
    ("ix_study_referring_folded", "study", ["referring_physician_folded"]),
    ("ix_study_patient_date", "study", ["patient_pk", "study_date"]),
    ("ix_patient_birth_date", "patient", ["birth_date"]),
    ("ix_series_study_number", "series", ["study_pk", "series_number"]),
    ("ix_instance_series_number", "instance", ["series_pk", "instance_number"]),
]
# PostgreSQL only: prefix LIKE under a non-C collation.
PATTERN = [
    ("ix_patient_name_folded_pattern", "patient", "name_folded"),
    ("ix_patient_id_pattern", "patient", "patient_id"),
    ("ix_patient_identifier_value_pattern", "patient_identifier", "value"),
    ("ix_study_accession_pattern", "study", "accession_number"),
    ("ix_study_referring_folded_pattern", "study", "referring_physician_folded"),
]


def upgrade() -> None:
    for name, table, columns in PLAIN:
        op.create_index(name, table, columns)
    if op.get_bind().dialect.name == "postgresql":
        for name, table, column in PATTERN:
            op.create_index(name, table, [column], postgresql_ops={column: "varchar_pattern_ops"})


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table, _column in reversed(PATTERN):
            op.drop_index(name, table_name=table)
    for name, table, _columns in reversed(PLAIN):
        op.drop_index(name, table_name=table)
