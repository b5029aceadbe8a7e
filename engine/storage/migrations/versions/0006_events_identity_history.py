"""identity events: person active flag, identity change history, resends told by content

Revision ID: 0006_events
Revises: 0005
Create Date: 2026-12-03 15:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_events"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.add_column(sa.Column("active", sa.Boolean(), server_default="1",
                                      nullable=False))
    op.create_table(
        "identity_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("from_patient_id", sa.Integer(), nullable=True),
        sa.Column("encounter_id", sa.Integer(), nullable=True),
        sa.Column("system", sa.String(length=100), nullable=True),
        sa.Column("old_value", sa.String(length=100), nullable=True),
        sa.Column("new_value", sa.String(length=100), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["encounter_id"], ["encounter.id"]),
        sa.ForeignKeyConstraint(["from_patient_id"], ["patient.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["inbound_message.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("identity_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_change_patient_id"), ["patient_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_identity_change_encounter_id"), ["encounter_id"],
                              unique=False)
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_digest", sa.String(length=64), nullable=True))
        batch_op.drop_constraint("uq_inbound_sender_control", type_="unique")
        batch_op.create_unique_constraint("uq_inbound_sender_control_content",
                                          ["sender", "control_id", "content_digest"])


def downgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_constraint("uq_inbound_sender_control_content", type_="unique")
        batch_op.create_unique_constraint("uq_inbound_sender_control", ["sender", "control_id"])
        batch_op.drop_column("content_digest")
    with op.batch_alter_table("identity_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_change_encounter_id"))
        batch_op.drop_index(batch_op.f("ix_identity_change_patient_id"))
    op.drop_table("identity_change")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_column("active")
