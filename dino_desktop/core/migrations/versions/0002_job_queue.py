"""The indexing job queue of a shared library: procrastinate's tables (PostgreSQL only).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07

procrastinate (core/queue.py) keeps its jobs, workers and events in tables of
its own, created here from the schema it ships. pyproject.toml holds it to one
minor version: a release that changes its schema comes with an SQL migration
of its own, which a later revision here must apply. SQLite libraries have no
queue (one machine indexes them) and no tables are made there.
"""

from __future__ import annotations

from typing import Any

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
changes_sqlite = False  # SQLite's user_version stays: older releases still open it


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    from procrastinate.schema import SchemaManager

    # Sent as it is (no parameters): "%" in its functions stays "%".
    driver: Any = conn.connection.driver_connection
    driver.execute(SchemaManager.get_schema())


def downgrade() -> None:
    raise NotImplementedError("the job queue stays")
