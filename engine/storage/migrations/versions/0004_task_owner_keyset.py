"""task owner keyset index

A person's tasks in id order (the FHIR Task search by owner, paged by id) read straight from
this index instead of walking the primary key past everyone else's tasks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 13:55:00
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rule_output", schema=None) as batch_op:
        batch_op.create_index("ix_rule_output_owner_id", ["owner", "kind", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rule_output", schema=None) as batch_op:
        batch_op.drop_index("ix_rule_output_owner_id")
