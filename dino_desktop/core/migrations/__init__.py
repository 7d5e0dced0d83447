"""The schema of a library, upgraded by Alembic on SQLite and PostgreSQL alike.

`upgrade(engine)` runs when a library opens. Three cases:

* a database Alembic has seen (an ``alembic_version`` row): upgraded to this
  release's head, or refused untouched (`SchemaTooNew`, naming both revisions)
  when its revision is one this release does not know: a newer release wrote it;
* a SQLite library made before Alembic (``PRAGMA user_version`` 1 to 9): the
  missing legacy migrations run (legacy.py), then it is stamped with revision
  0001, which is exactly legacy version 9, and upgraded from there;
* an empty database: every revision runs.

On SQLite, ``user_version`` keeps counting (9 at revision 0001, one more per
later revision that changes SQLite's tables: `sqlite_version`), so a release
from before Alembic refuses a library that a later one has upgraded instead of
opening a schema it does not know. Two processes
opening one library at once upgrade it one at a time (a lock file beside a
SQLite database, an advisory lock on PostgreSQL).
"""

from __future__ import annotations

import logging
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from dino_desktop.core.migrations import legacy
from dino_desktop.core.records import SchemaTooNew

log = logging.getLogger(__name__)

BASELINE: Final = "0001"
"""The revision that is legacy SQLite version 9."""
_PG_LOCK: Final = 0x44494E4F  # "DINO": the advisory lock of schema upgrades


def config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "dino_desktop.core:migrations")
    return cfg


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    rev = script().get_current_head()
    assert rev is not None
    return rev


def sqlite_version() -> int:
    """The ``user_version`` of a SQLite library at the head: legacy 9 at the baseline,
    one more per later revision that changes SQLite's schema (a revision for
    PostgreSQL alone says ``changes_sqlite = False``)."""
    later = [
        rev
        for rev in script().walk_revisions("base", "heads")
        if rev.revision != BASELINE and getattr(rev.module, "changes_sqlite", True)
    ]
    return legacy.SCHEMA_VERSION + len(later)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def refuse_unknown(revision: str | None) -> None:
    if revision is None:
        return
    try:
        known = script().get_revision(revision)
    except Exception:  # alembic raises CommandError / ResolutionError subclasses
        known = None
    if known is None:
        raise SchemaTooNew(
            f"this library's schema is at revision {revision}, newer than this "
            f"release's {head()}; please update DINO Desktop"
        )


def upgrade(engine: Engine) -> str:
    """Bring the library's schema to this release's head; return that revision."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as lock:
            lock.exec_driver_sql("SELECT pg_advisory_lock(%s)", (_PG_LOCK,))
            try:
                return _upgrade(engine)
            finally:
                lock.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (_PG_LOCK,))
                lock.commit()
    return _upgrade(engine)


def _upgrade(engine: Engine) -> str:
    revision = current_revision(engine)
    refuse_unknown(revision)
    target = head()
    sqlite = engine.dialect.name == "sqlite"
    if revision is None and sqlite:
        with engine.connect() as conn:
            version = legacy.schema_version(conn)
            has_tables = bool(inspect(conn).get_table_names())
        if version > 0 or has_tables:
            # Made before Alembic: finish the legacy steps (refused when newer), stamp.
            legacy.migrate(engine)
            with engine.begin() as conn:
                cfg = config()
                cfg.attributes["connection"] = conn
                command.stamp(cfg, BASELINE)
            log.info("library from before Alembic (schema %d) stamped %s", version, BASELINE)
            revision = BASELINE
    if revision != target:
        with engine.begin() as conn:
            cfg = config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            if sqlite:
                legacy.set_schema_version(conn, sqlite_version())
        log.info("library schema upgraded from %s to %s", revision, target)
    return target
