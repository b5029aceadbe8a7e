"""identity: the namespace an identifier was sent with; OID systems as urn:oid:

Identifiers are stored under a canonical system (`urn:oid:<OID>` for an OID authority);
the namespace id the sender wrote beside it (CX-4.1) is kept so a search by the name as
sent still finds it. Rows kept before this revision with a bare OID as their system are
rewritten to the `urn:oid:` form (unless that identity already exists).

Revision ID: 0006_identity
Revises: 0006_liberal
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0006_identity"
down_revision = "0006_liberal"
branch_labels = None
depends_on = None

_OID = re.compile(r"[0-2](\.[0-9]+)+\Z")


def _oid_systems(table: sa.Table, system: sa.Column, value: sa.Column) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(table.c.id, system, value)).all()
    taken = {(s, v) for _, s, v in rows}
    for row_id, old, val in rows:
        if old and _OID.match(old) and ("urn:oid:" + old, val) not in taken:
            bind.execute(sa.update(table).where(table.c.id == row_id)
                         .values({system.name: "urn:oid:" + old}))
            taken.add(("urn:oid:" + old, val))


def upgrade() -> None:
    with op.batch_alter_table("patient_identifier") as batch:
        batch.add_column(sa.Column("namespace", sa.String(length=250), nullable=True))
    meta = sa.MetaData()
    ident = sa.Table("patient_identifier", meta, autoload_with=op.get_bind())
    _oid_systems(ident, ident.c.system, ident.c.value)
    enc = sa.Table("encounter", meta, autoload_with=op.get_bind())
    _oid_systems(enc, enc.c.visit_system, enc.c.visit_number)


def downgrade() -> None:
    with op.batch_alter_table("patient_identifier") as batch:
        batch.drop_column("namespace")
