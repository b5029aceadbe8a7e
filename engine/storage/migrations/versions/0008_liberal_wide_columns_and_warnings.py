"""liberal intake: wide columns, inbound warnings, birth date precision

Real feeds send 54-character locations, 60-character plan codes and 120-character
identifiers; the columns now keep them whole (engine.core.limits). What is still cut, or
accepted but not kept exactly, is recorded on the inbound row (`inbound_message.warnings`).
A partial birth date (PID-7 `1950`) keeps how much was sent (`patient.birth_precision`).

SQLite does not enforce VARCHAR lengths, so only PostgreSQL's columns are altered.

Revision ID: 0006_liberal
Revises: 0006_search
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_liberal"
down_revision = "0006_search"
branch_labels = None
depends_on = None

# (table, column, width before, width after, nullable)
WIDENED = [
    ("patient", "family", 200, 250, True),
    ("patient", "given", 200, 250, True),
    ("patient", "middle", 200, 250, True),
    ("patient", "sex", 10, 20, True),
    ("patient_identifier", "system", 100, 250, False),
    ("patient_identifier", "value", 100, 250, False),
    ("patient_identifier", "type_code", 20, 50, True),
    ("encounter", "visit_system", 100, 250, False),
    ("encounter", "visit_number", 100, 250, False),
    ("encounter", "patient_class", 10, 250, True),
    ("encounter", "patient_type", 20, 250, True),
    ("encounter", "facility", 50, 250, True),
    ("encounter", "unit", 50, 250, True),
    ("encounter", "room", 50, 250, True),
    ("encounter", "bed", 50, 250, True),
    ("encounter", "attending_id", 50, 250, True),
    ("encounter", "attending_name", 200, 250, True),
    ("encounter", "hospital_service", 50, 250, True),
    ("encounter", "admission_type", 10, 250, True),
    ("encounter", "admit_source", 10, 250, True),
    ("encounter", "discharge_disposition", 10, 250, True),
    ("encounter", "payer_plan", 50, 250, True),
    ("encounter", "payer_name", 200, 250, True),
    ("encounter", "authorization", 100, 250, True),
    ("encounter", "working_drg", 20, 50, True),
    ("encounter", "working_drg_text", 200, 250, True),
    ("location_stay", "facility", 50, 250, True),
    ("location_stay", "unit", 50, 250, True),
    ("location_stay", "room", 50, 250, True),
    ("location_stay", "bed", 50, 250, True),
    ("diagnosis", "code", 20, 100, False),
    ("diagnosis", "system", 20, 100, True),
    ("diagnosis", "display", 300, 1000, True),
    ("diagnosis", "diagnosis_type", 5, 20, True),
    ("lab_result", "visit_system", 100, 250, True),
    ("lab_result", "visit_number", 100, 250, True),
]


def _resize(widen: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column, old, new, nullable in WIDENED:
        before, after = (old, new) if widen else (new, old)
        op.alter_column(table, column, existing_type=sa.String(before),
                        type_=sa.String(after), existing_nullable=nullable)


def upgrade() -> None:
    op.add_column("inbound_message", sa.Column("warnings", sa.Text(), nullable=True))
    op.add_column("patient", sa.Column("birth_precision", sa.String(5), nullable=True))
    _resize(widen=True)


def downgrade() -> None:
    _resize(widen=False)
    op.drop_column("patient", "birth_precision")
    op.drop_column("inbound_message", "warnings")
