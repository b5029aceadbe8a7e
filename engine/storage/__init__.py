"""Persistent state: SQLAlchemy ORM models, sessions and migrations."""
