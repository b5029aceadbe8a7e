"""metrics: an index for the notices and reviews on time (tasks by type and due time)

The metrics page counts the IM, MOON and UR review tasks by type and due time; on
PostgreSQL the index carries the status and completion time so the count reads the index
alone (an index-only scan) instead of every task.

Revision ID: 0013_metrics
Revises: 0012_ur_record
"""

from alembic import op

revision = "0013_metrics"
down_revision = "0012_ur_record"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_rule_output_code_due", "rule_output", ["code", "due_at"],
                    postgresql_include=["kind", "task_status", "ended_at", "encounter_id"])


def downgrade() -> None:
    op.drop_index("ix_rule_output_code_due", table_name="rule_output")
