"""ur record: utilization reviews, payer authorizations and communications, barriers,
avoidable days and the revisions that keep every correction

Revision ID: 0012_ur_record
Revises: 0010_decisions
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_ur_record"
down_revision = "0010_decisions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "barrier",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("encounter_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("reason_code", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=100), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=100), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=100), nullable=True),
        sa.Column("resolution", sa.String(length=500), nullable=True),
        sa.Column("entered_by", sa.String(length=100), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("void_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["encounter_id"],
            ["encounter.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("barrier", schema=None) as batch_op:
        batch_op.create_index(
            "ix_barrier_encounter_open", ["encounter_id", "resolved_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_barrier_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "payer_authorization",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("encounter_id", sa.Integer(), nullable=False),
        sa.Column("payer", sa.String(length=250), nullable=True),
        sa.Column("plan", sa.String(length=250), nullable=True),
        sa.Column("reference_number", sa.String(length=250), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("level_of_care", sa.String(length=20), nullable=True),
        sa.Column("approved_days", sa.Integer(), nullable=True),
        sa.Column("approved_from", sa.Date(), nullable=True),
        sa.Column("approved_through", sa.Date(), nullable=True),
        sa.Column("payer_reviewer", sa.String(length=200), nullable=True),
        sa.Column("payer_contact", sa.String(length=200), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("denial_reason", sa.String(length=500), nullable=True),
        sa.Column("peer_to_peer", sa.String(length=20), nullable=True),
        sa.Column("peer_to_peer_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("peer_to_peer_outcome", sa.String(length=30), nullable=True),
        sa.Column("appeal_level", sa.Integer(), nullable=True),
        sa.Column("appeal_deadline", sa.Date(), nullable=True),
        sa.Column("appeal_outcome", sa.String(length=30), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("entered_by", sa.String(length=100), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("void_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["encounter_id"],
            ["encounter.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("payer_authorization", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payer_authorization_encounter", ["encounter_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_payer_authorization_updated_at"), ["updated_at"], unique=False
        )

    op.create_table(
        "record_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("encounter_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"],
            ["encounter.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("record_revision", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_revision_encounter_id"), ["encounter_id"], unique=False
        )
        batch_op.create_index(
            "ix_record_revision_record", ["kind", "record_id", "version"], unique=False
        )

    op.create_table(
        "avoidable_day",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("encounter_id", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("reason_code", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("responsible_party", sa.String(length=40), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("barrier_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entered_by", sa.String(length=100), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("void_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["barrier_id"],
            ["barrier.id"],
        ),
        sa.ForeignKeyConstraint(
            ["encounter_id"],
            ["encounter.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("avoidable_day", schema=None) as batch_op:
        batch_op.create_index(
            "ix_avoidable_day_encounter", ["encounter_id", "first_day"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_avoidable_day_updated_at"), ["updated_at"], unique=False
        )

    op.create_table(
        "payer_communication",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("encounter_id", sa.Integer(), nullable=False),
        sa.Column("authorization_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("entered_by", sa.String(length=100), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("void_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["authorization_id"],
            ["payer_authorization.id"],
        ),
        sa.ForeignKeyConstraint(
            ["encounter_id"],
            ["encounter.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("payer_communication", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payer_communication_authorization_id"),
            ["authorization_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_payer_communication_encounter", ["encounter_id", "at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_payer_communication_updated_at"), ["updated_at"], unique=False
        )

    op.create_table(
        "utilization_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("encounter_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("review_type", sa.String(length=20), nullable=False),
        sa.Column("reviewed_on", sa.Date(), nullable=False),
        sa.Column("reviewer", sa.String(length=100), nullable=False),
        sa.Column("reviewer_display", sa.String(length=200), nullable=True),
        sa.Column("level_of_care", sa.String(length=20), nullable=False),
        sa.Column("criteria_set", sa.String(length=100), nullable=True),
        sa.Column("criteria_result", sa.String(length=20), nullable=False),
        sa.Column("clinical_summary", sa.Text(), nullable=True),
        sa.Column("next_review_on", sa.Date(), nullable=True),
        sa.Column("next_review_overridden", sa.Boolean(), nullable=False),
        sa.Column("advisor_referred", sa.Boolean(), nullable=False),
        sa.Column("advisor_name", sa.String(length=200), nullable=True),
        sa.Column("advisor_outcome", sa.String(length=30), nullable=True),
        sa.Column("condition_code_44", sa.Boolean(), nullable=False),
        sa.Column("entered_by", sa.String(length=100), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("void_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["encounter_id"],
            ["encounter.id"],
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["rule_output.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("utilization_review", schema=None) as batch_op:
        batch_op.create_index(
            "ix_utilization_review_encounter", ["encounter_id", "reviewed_on"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_utilization_review_updated_at"), ["updated_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("utilization_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_utilization_review_updated_at"))
        batch_op.drop_index("ix_utilization_review_encounter")

    op.drop_table("utilization_review")
    with op.batch_alter_table("payer_communication", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payer_communication_updated_at"))
        batch_op.drop_index("ix_payer_communication_encounter")
        batch_op.drop_index(batch_op.f("ix_payer_communication_authorization_id"))

    op.drop_table("payer_communication")
    with op.batch_alter_table("avoidable_day", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_avoidable_day_updated_at"))
        batch_op.drop_index("ix_avoidable_day_encounter")

    op.drop_table("avoidable_day")
    with op.batch_alter_table("record_revision", schema=None) as batch_op:
        batch_op.drop_index("ix_record_revision_record")
        batch_op.drop_index(batch_op.f("ix_record_revision_encounter_id"))

    op.drop_table("record_revision")
    with op.batch_alter_table("payer_authorization", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payer_authorization_updated_at"))
        batch_op.drop_index("ix_payer_authorization_encounter")

    op.drop_table("payer_authorization")
    with op.batch_alter_table("barrier", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_barrier_updated_at"))
        batch_op.drop_index("ix_barrier_encounter_open")

    op.drop_table("barrier")
