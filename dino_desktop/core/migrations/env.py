"""Alembic's environment: run the revisions on the connection `upgrade` hands over.

Never run from a command line with an ini file: `core.migrations.upgrade` builds
the configuration and passes the open connection in ``config.attributes``.
"""

from __future__ import annotations

from alembic import context

from dino_desktop.core.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
