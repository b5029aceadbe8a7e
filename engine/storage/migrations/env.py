"""Alembic environment: the engine comes from the caller, never from a config file."""

from alembic import context

from engine.storage.locks import lock
from engine.storage.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    # Several processes starting at once against one PostgreSQL upgrade one at a time.
    lock(connection, "schema-migration")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
