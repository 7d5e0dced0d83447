"""Change notices of a shared library: every write to its tables is announced (PostgreSQL only).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08

A statement that changes one of the catalog's tables sends ``NOTIFY
dino_desktop_changes`` with the table's name as payload (core/changes.py listens
on every client). PostgreSQL delivers a notice when its transaction commits,
once per distinct payload and transaction, so a scan that writes 10,000 rows
in one transaction sends a handful of notices, not 10,000. SQLite libraries
have one machine and no notices: nothing is made there.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
changes_sqlite = False  # SQLite's user_version stays: older releases still open it

CHANNEL = "dino_desktop_changes"
TABLES = (
    "folders",
    "images",
    "companions",
    "embeddings",
    "cluster_runs",
    "clusters",
    "cluster_members",
    "cluster_exclusions",
    "sort_labels",
    "sort_examples",
    "dupe_dismissals",
    "journal",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""CREATE FUNCTION dino_desktop_notify() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
            RETURN NULL;
        END $$"""
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
            f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION dino_desktop_notify()"
        )


def downgrade() -> None:
    raise NotImplementedError("the change notices stay")
