"""search: indexes for _lastUpdated (an EHR polling for changes)

Revision ID: 0006_search
Revises: 0005
Create Date: 2026-12-03 15:30:00
"""

from alembic import op

revision = "0006_search"
down_revision = "0006_events"
branch_labels = None
depends_on = None

TABLES = ("patient", "encounter", "rule_output")


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_updated_at", table, ["updated_at"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_updated_at", table_name=table)
