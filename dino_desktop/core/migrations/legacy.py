"""The SQLite schema versions before Alembic: ``PRAGMA user_version`` 1 to 9.

Libraries made before this release hold the number of these migrations
applied in ``PRAGMA user_version``. They are kept, never edited, because
Alembic's first revision (``versions/0001_baseline.py``) is on SQLite exactly
these nine run in order: a fresh library and an old one brought up to 9 hold
the same DDL down to its text, and from 9 on both are upgraded by Alembic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from dino_desktop.core.records import SchemaTooNew


def _v1(conn: Connection) -> None:
    """The schema of DESIGN.md §3."""
    for ddl in (
        """CREATE TABLE folders (
            id INTEGER PRIMARY KEY,
            path VARCHAR NOT NULL UNIQUE,
            is_reference BOOLEAN NOT NULL DEFAULT 0,
            added_at DATETIME NOT NULL)""",
        """CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
            relpath VARCHAR NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 VARCHAR(64),
            phash VARCHAR(16),
            width INTEGER,
            height INTEGER,
            orientation INTEGER,
            taken_at DATETIME,
            camera TEXT,
            status VARCHAR(8) NOT NULL,
            error TEXT,
            scanned_at DATETIME NOT NULL,
            UNIQUE (folder_id, relpath))""",
        """CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            weights_sha256 VARCHAR(64) NOT NULL,
            dim INTEGER NOT NULL,
            image_size INTEGER NOT NULL,
            UNIQUE (name, weights_sha256))""",
        """CREATE TABLE embeddings (
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
            vector BLOB NOT NULL,
            PRIMARY KEY (image_id, model_id))""",
        """CREATE TABLE journal (
            id INTEGER PRIMARY KEY,
            created_at DATETIME NOT NULL,
            action TEXT NOT NULL,
            payload TEXT NOT NULL,
            undone_at DATETIME)""",
        "CREATE INDEX ix_embeddings_model ON embeddings (model_id)",
    ):
        conn.exec_driver_sql(ddl)


def _v2(conn: Connection) -> None:
    """File identity (device, inode) and format; indexes for duplicate lookups."""
    for ddl in (
        "ALTER TABLE images ADD COLUMN format VARCHAR(16)",
        "ALTER TABLE images ADD COLUMN dev INTEGER",
        "ALTER TABLE images ADD COLUMN inode INTEGER",
        "CREATE INDEX ix_images_sha256 ON images (sha256)",
        "CREATE INDEX ix_images_status ON images (status)",
    ):
        conn.exec_driver_sql(ddl)


def _v3(conn: Connection) -> None:
    """Auto-folders: saved k-means runs, their clusters (with centroids) and members."""
    for ddl in (
        """CREATE TABLE cluster_runs (
            id INTEGER PRIMARY KEY,
            created_at DATETIME NOT NULL,
            model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
            k INTEGER NOT NULL)""",
        """CREATE TABLE clusters (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES cluster_runs(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            name TEXT NOT NULL,
            centroid BLOB NOT NULL,
            UNIQUE (run_id, idx))""",
        """CREATE TABLE cluster_members (
            cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            score FLOAT NOT NULL,
            is_outlier BOOLEAN NOT NULL DEFAULT 0,
            PRIMARY KEY (cluster_id, image_id))""",
        "CREATE INDEX ix_cluster_runs_model ON cluster_runs (model_id)",
        # Deleting an image cascades here: without this index each delete scans the table.
        "CREATE INDEX ix_cluster_members_image ON cluster_members (image_id)",
    ):
        conn.exec_driver_sql(ddl)


def _v4(conn: Connection) -> None:
    """Photos excluded from a clustering run, so they stay out of "New photos" too."""
    conn.exec_driver_sql(
        """CREATE TABLE cluster_exclusions (
            run_id INTEGER NOT NULL REFERENCES cluster_runs(id) ON DELETE CASCADE,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            PRIMARY KEY (run_id, image_id))"""
    )


def _v5(conn: Connection) -> None:
    """Sort by example: labels (from a folder or made in the app) and their examples."""
    for ddl in (
        """CREATE TABLE sort_labels (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            folder VARCHAR,
            created_at DATETIME NOT NULL)""",
        """CREATE TABLE sort_examples (
            label_id INTEGER NOT NULL REFERENCES sort_labels(id) ON DELETE CASCADE,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            positive BOOLEAN NOT NULL,
            PRIMARY KEY (label_id, image_id))""",
        "CREATE INDEX ix_sort_examples_image ON sort_examples (image_id)",
    ):
        conn.exec_driver_sql(ddl)


def _v6(conn: Connection) -> None:
    """A per-model counter of embedding changes, kept by triggers, for the index stamp.

    The index stamp (count, max id, sum of ids) cannot see a photo re-embedded
    under the same id (a changed file): its old vector would be served from a
    saved index. Every insert, update or delete of an embedding bumps this
    counter, whoever writes (any process, any code path).
    """
    conn.exec_driver_sql(
        """CREATE TABLE embedding_generations (
            model_id INTEGER PRIMARY KEY,
            generation INTEGER NOT NULL)"""
    )
    for ddl in (
        """CREATE TRIGGER embeddings_generation_insert AFTER INSERT ON embeddings BEGIN
            INSERT INTO embedding_generations (model_id, generation) VALUES (NEW.model_id, 1)
            ON CONFLICT (model_id) DO UPDATE SET generation = generation + 1;
        END""",
        """CREATE TRIGGER embeddings_generation_update AFTER UPDATE ON embeddings BEGIN
            INSERT INTO embedding_generations (model_id, generation) VALUES (NEW.model_id, 1)
            ON CONFLICT (model_id) DO UPDATE SET generation = generation + 1;
        END""",
        """CREATE TRIGGER embeddings_generation_delete AFTER DELETE ON embeddings BEGIN
            INSERT INTO embedding_generations (model_id, generation) VALUES (OLD.model_id, 1)
            ON CONFLICT (model_id) DO UPDATE SET generation = generation + 1;
        END""",
    ):
        conn.exec_driver_sql(ddl)


def _v7(conn: Connection) -> None:
    """Companion files of photo items (RAW originals, Live Photo videos, sidecars) and
    the loose videos and orphan sidecars beside them (core/companions.py)."""
    for ddl in (
        """CREATE TABLE companions (
            id INTEGER PRIMARY KEY,
            folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
            image_id INTEGER REFERENCES images(id) ON DELETE CASCADE,
            relpath VARCHAR NOT NULL,
            kind VARCHAR(8) NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            UNIQUE (folder_id, relpath))""",
        "CREATE INDEX ix_companions_image ON companions (image_id)",
    ):
        conn.exec_driver_sql(ddl)


def _v8(conn: Connection) -> None:
    """The drive each folder was last seen on: filesystem identity, path under its
    mount point, the mount point (core/volumes.py). Filled in by the next scan."""
    for ddl in (
        "ALTER TABLE folders ADD COLUMN volume TEXT",
        "ALTER TABLE folders ADD COLUMN volume_path VARCHAR",
        "ALTER TABLE folders ADD COLUMN mount VARCHAR",
    ):
        conn.exec_driver_sql(ddl)


def _v9(conn: Connection) -> None:
    """Duplicate proposals the user dismissed (core/dismissals.py)."""
    for ddl in (
        """CREATE TABLE dupe_dismissals (
            id INTEGER PRIMARY KEY,
            created_at DATETIME NOT NULL,
            kind VARCHAR(16) NOT NULL,
            subject_id INTEGER REFERENCES images(id) ON DELETE CASCADE,
            undone_at DATETIME)""",
        """CREATE TABLE dupe_dismissal_members (
            dismissal_id INTEGER NOT NULL REFERENCES dupe_dismissals(id) ON DELETE CASCADE,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 VARCHAR(64),
            PRIMARY KEY (dismissal_id, image_id))""",
        "CREATE INDEX ix_dupe_dismissal_members_image ON dupe_dismissal_members (image_id)",
    ):
        conn.exec_driver_sql(ddl)


MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9]
SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The last legacy version: the schema of Alembic's first revision."""


def schema_version(conn: Connection) -> int:
    """The SQLite file's ``PRAGMA user_version``."""
    return int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())


def set_schema_version(conn: Connection, version: int) -> None:
    if not isinstance(version, int):
        raise TypeError(f"a schema version is an int, not {version!r}")
    conn.exec_driver_sql(f"PRAGMA user_version = {int(version)}")  # an int: no value in SQL text


def migrate(engine: Engine, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing legacy migrations up to `target`, each in its own
    transaction; return the new version. Builds old libraries in the tests;
    `migrations.upgrade` calls it for a library made before Alembic."""
    with engine.connect() as conn:
        current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"this library uses schema {current}, but this release knows only up to "
            f"{SCHEMA_VERSION}; please update DINO Desktop"
        )
    for version in range(current + 1, target + 1):
        with engine.begin() as conn:
            MIGRATIONS[version - 1](conn)
            set_schema_version(conn, version)
    return max(current, target)
