"""escalated_to: who an overdue task was escalated to (the owner stays)

Escalation used to move the task to the supervisor, so the owner's list lost it. Now the
owner keeps it and the supervisor is recorded here; the supervisor page reads its
"escalated to you" table through the index.

Revision ID: 0010_escalation
Revises: 0006_identity
Create Date: 2026-12-04 01:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_escalation"
down_revision = "0006_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rule_output", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalated_to", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_rule_output_escalated_to",
                              ["escalated_to", "task_status", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rule_output", schema=None) as batch_op:
        batch_op.drop_index("ix_rule_output_escalated_to")
        batch_op.drop_column("escalated_to")
