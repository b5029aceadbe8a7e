"""decisions: a person's decline of work a rule raised, kept with the facts it rests on

Revision ID: 0010_decisions
Revises: 0006_identity
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_decisions"
down_revision = "0010_escalation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("encounter_id", sa.Integer(), nullable=False),
        sa.Column("output_id", sa.Integer(), nullable=True),
        sa.Column("rule_id", sa.String(length=100), nullable=False),
        sa.Column("output_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("by", sa.String(length=100), nullable=False),
        sa.Column("by_display", sa.String(length=200), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=False),
        sa.Column("reason_text", sa.String(length=500), nullable=True),
        sa.Column("holds_on", sa.JSON(), nullable=True),
        sa.Column("lapsed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lapsed_because", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["encounter_id"], ["encounter.id"]),
        sa.ForeignKeyConstraint(["output_id"], ["rule_output.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.create_index("ix_decision_encounter_open", ["encounter_id", "lapsed_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_index("ix_decision_encounter_open")
    op.drop_table("decision")
