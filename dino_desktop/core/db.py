"""SQLite storage: engine, typed ORM tables and schema migrations.

The schema is built only by the numbered migrations below (``PRAGMA user_version``
holds the number applied), so a fresh library and an upgraded one run the very
same DDL. A new release appends a migration; it never edits an old one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

from dino_desktop.core.records import SchemaTooNew


class FsPath(TypeDecorator[str]):
    """A file-system path that survives names which are not valid UTF-8.

    Python decodes such bytes to lone surrogates (PEP 383) that SQLite cannot
    store as text; those paths are stored as their raw bytes (a BLOB) instead
    and decoded back the same way, so every path round-trips exactly.
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if isinstance(value, bytes):
            return os.fsdecode(value)
        return value  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    pass


class Folder(Base):
    __tablename__ = "folders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    is_reference: Mapped[bool] = mapped_column(Boolean, default=False)
    added_at: Mapped[datetime] = mapped_column(DateTime)
    # Schema 8: the drive the folder was last seen on (core/volumes.py), so an
    # unmounted drive is told apart from deleted photos and found at a new mount point.
    volume: Mapped[str | None] = mapped_column(Text)
    volume_path: Mapped[str | None] = mapped_column(FsPath)
    mount: Mapped[str | None] = mapped_column(FsPath)

    images: Mapped[list[ImageRow]] = relationship(
        back_populates="folder", cascade="all, delete-orphan", passive_deletes=True
    )


class ImageRow(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    relpath: Mapped[str] = mapped_column(FsPath)
    size: Mapped[int] = mapped_column(Integer)
    mtime_ns: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    phash: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    orientation: Mapped[int | None] = mapped_column(Integer)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime)
    camera: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8))  # "ok" | "failed"
    error: Mapped[str | None] = mapped_column(Text)
    scanned_at: Mapped[datetime] = mapped_column(DateTime)
    # Schema 2: the file's identity on disk, so hard links are known to be one file.
    format: Mapped[str | None] = mapped_column(String(16))
    dev: Mapped[int | None] = mapped_column(Integer)
    inode: Mapped[int | None] = mapped_column(Integer)

    folder: Mapped[Folder] = relationship(back_populates="images")


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    image_size: Mapped[int] = mapped_column(Integer)


class Embedding(Base):
    __tablename__ = "embeddings"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class JournalRow(Base):
    __tablename__ = "journal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    action: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)  # JSON
    undone_at: Mapped[datetime | None] = mapped_column(DateTime)


class ClusterRunRow(Base):
    """One k-means run (auto-folders) over one model's vectors."""

    __tablename__ = "cluster_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    k: Mapped[int] = mapped_column(Integer)


class ClusterRow(Base):
    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("cluster_runs.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    centroid: Mapped[bytes] = mapped_column(LargeBinary)  # float32, L2-normalised


class ClusterMember(Base):
    __tablename__ = "cluster_members"

    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    score: Mapped[float] = mapped_column(Float)  # cosine to the cluster's centroid
    is_outlier: Mapped[bool] = mapped_column(Boolean, default=False)


class ClusterExclusion(Base):
    """A photo the user took out of a run's folders: not exported, not offered as new."""

    __tablename__ = "cluster_exclusions"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("cluster_runs.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )


class SortLabel(Base):
    """A sort-by-example category; `folder`: its example folder, when it came from one."""

    __tablename__ = "sort_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    folder: Mapped[str | None] = mapped_column(FsPath, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class SortExample(Base):
    """A photo the user said is (`positive`) or is not an example of a label."""

    __tablename__ = "sort_examples"

    label_id: Mapped[int] = mapped_column(
        ForeignKey("sort_labels.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    positive: Mapped[bool] = mapped_column(Boolean)


class CompanionRow(Base):
    """A file that goes with a photo item (schema 7; core/companions.py), or a loose one.

    `image_id` is the photo item (its RAW original, Live Photo video or a
    sidecar); NULL for a video of no photo ("video") and a sidecar of none
    ("orphan"), which are counted and listed but not indexed.
    """

    __tablename__ = "companions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), nullable=True
    )
    relpath: Mapped[str] = mapped_column(FsPath)
    kind: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(Integer)
    mtime_ns: Mapped[int] = mapped_column(Integer)


class EmbeddingGeneration(Base):
    """Bumped by triggers on every change to a model's embeddings (see `_v6`)."""

    __tablename__ = "embedding_generations"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)


class DupeDismissal(Base):
    """A duplicate proposal the user answered "not duplicates" or "keep all" (schema 9).

    ``subject_id`` NULL: no two of the members are duplicates of each other (a
    whole group). Set: that one photo is not a duplicate of the other members
    (one member taken out of a group). core/dismissals.py reads and writes them.
    """

    __tablename__ = "dupe_dismissals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(16))  # "not-duplicates" | "keep-all"
    subject_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), nullable=True
    )
    undone_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class DupeDismissalMember(Base):
    """A photo of a dismissal, with the file's state when it was answered: the answer
    holds only while (size, mtime, sha256) are unchanged."""

    __tablename__ = "dupe_dismissal_members"

    dismissal_id: Mapped[int] = mapped_column(
        ForeignKey("dupe_dismissals.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    size: Mapped[int] = mapped_column(Integer)
    mtime_ns: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


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
SCHEMA_VERSION = len(MIGRATIONS)


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, open transactions (see _on_begin):
    # the module's legacy mode runs DDL outside any transaction.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    # WAL: readers (the GUI) never wait on the scanner's writes, and a killed
    # process leaves a database that recovers on the next open.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def schema_version(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())


def migrate(engine: Engine, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing migrations, each in its own transaction; return the new version."""
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
            conn.exec_driver_sql(f"PRAGMA user_version = {version}")
    return max(current, target)


def open_engine(path: Path, *, upgrade: bool = True) -> Engine:
    """Open (creating if needed) the library database and bring its schema up to date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    if upgrade:
        from dino_desktop.core.lock import waiting_lock

        # Two processes opening a new (or older) library at once would both run
        # the same migrations ("table folders already exists"): one at a time,
        # and the second then finds the schema current.
        with waiting_lock(path.with_name(path.name + ".migrate-lock")):
            migrate(engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)
