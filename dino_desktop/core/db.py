"""Storage: the engine of a library and its typed ORM tables, on two backends.

A library's database is a SQLite file in its folder (the embedded default) or
a PostgreSQL server with pgvector (a shared library: `open_engine` takes a
``postgresql://`` URL). The same tables serve both; the few columns whose
storage differs say so in their type (`Int64`, `VectorBytes`). The schema is
built and upgraded only by Alembic's revisions (core/migrations), so a fresh
library and an upgraded one run the very same DDL.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    false,
    update,
)
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from dino_desktop.config import is_shared
from dino_desktop.core.records import SharedLibraryError
from dino_desktop.core.roots import RootMap

NOT_UTF8: Final = "\uffff"
"""Marks, on PostgreSQL, a path stored as the hex of its bytes (see `FsPath`): a
Unicode noncharacter, which no file name a person made holds."""


def path_param(value: str, dialect_name: str) -> str | bytes:
    """A path as the database stores it: itself, or when it is not valid UTF-8, its
    bytes (SQLite: a BLOB; PostgreSQL, whose text refuses them: NOT_UTF8 + hex)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(value)
        return NOT_UTF8 + raw.hex() if dialect_name == "postgresql" else raw
    return value


def path_value(value: str | bytes) -> str:
    """A stored path back as Python's str (surrogates where the bytes are not UTF-8)."""
    if isinstance(value, bytes):
        return os.fsdecode(value)
    if value.startswith(NOT_UTF8):
        return os.fsdecode(bytes.fromhex(value[1:]))
    return value


class FsPath(TypeDecorator[str]):
    """A file-system path that survives names which are not valid UTF-8.

    Python decodes such bytes to lone surrogates (PEP 383) that neither SQLite
    nor PostgreSQL stores as text; those paths are stored as their raw bytes (a
    BLOB) on SQLite, and as a marked hex string on PostgreSQL (`path_param`),
    and decoded back the same way, so every path round-trips exactly.
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else path_param(value, dialect.name)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else path_value(value)


class FolderPath(FsPath):
    """A library folder's path: stored in the shared form, read as this machine
    reaches it (core/roots.py). The mapping is the engine's: `use_roots` sets it on
    the engine's dialect, the one object a column type is handed per engine."""

    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        roots: RootMap | None = getattr(dialect, "dino_roots", None)
        if value is not None and roots is not None:
            value = roots.to_stored(value)
        return super().process_bind_param(value, dialect)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        path = super().process_result_value(value, dialect)
        roots: RootMap | None = getattr(dialect, "dino_roots", None)
        if path is not None and roots is not None:
            path = roots.to_local(path)
        return path


def use_roots(engine: Engine, roots: RootMap) -> None:
    """Map library folder roots for everything that runs on `engine` from now on."""
    engine.dialect.dino_roots = roots  # type: ignore[attr-defined]


Int64 = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit integer (a size, an mtime in ns, an inode): SQLite's INTEGER is 64-bit
already (and its DDL keeps saying INTEGER); PostgreSQL's is 32-bit: BIGINT there."""


class VectorBytes(TypeDecorator[bytes]):
    """An embedding as the code sees it: float32 bytes, L2-normalised.

    SQLite stores those bytes (a BLOB). PostgreSQL stores a pgvector ``halfvec``
    (half the space; search runs in the database): bytes are converted on the way
    in and back to float32 bytes on the way out, so a vector read from a shared
    library equals the written one to float16 precision (~1e-3).
    """

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            from pgvector.sqlalchemy import HALFVEC

            return dialect.type_descriptor(HALFVEC())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        import numpy as np

        return np.frombuffer(value, dtype=np.float32)

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None or dialect.name != "postgresql":
            return value  # type: ignore[no-any-return]
        import numpy as np

        values = value.to_numpy() if hasattr(value, "to_numpy") else value  # pgvector's versions
        return np.asarray(values, dtype=np.float32).tobytes()


class Base(DeclarativeBase):
    pass


class Folder(Base):
    __tablename__ = "folders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FolderPath, unique=True)
    is_reference: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
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
    __table_args__ = (
        UniqueConstraint("folder_id", "relpath"),
        Index("ix_images_sha256", "sha256"),
        Index("ix_images_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    relpath: Mapped[str] = mapped_column(FsPath)
    size: Mapped[int] = mapped_column(Int64)
    mtime_ns: Mapped[int] = mapped_column(Int64)
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
    dev: Mapped[int | None] = mapped_column(Int64)
    inode: Mapped[int | None] = mapped_column(Int64)

    folder: Mapped[Folder] = relationship(back_populates="images")


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "weights_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    image_size: Mapped[int] = mapped_column(Integer)


class Embedding(Base):
    __tablename__ = "embeddings"
    __table_args__ = (Index("ix_embeddings_model", "model_id"),)

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    vector: Mapped[bytes] = mapped_column(VectorBytes)


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
    __table_args__ = (Index("ix_cluster_runs_model", "model_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    k: Mapped[int] = mapped_column(Integer)


class ClusterRow(Base):
    __tablename__ = "clusters"
    __table_args__ = (UniqueConstraint("run_id", "idx"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("cluster_runs.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    centroid: Mapped[bytes] = mapped_column(LargeBinary)  # float32, L2-normalised


class ClusterMember(Base):
    __tablename__ = "cluster_members"
    __table_args__ = (Index("ix_cluster_members_image", "image_id"),)

    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    score: Mapped[float] = mapped_column(Float)  # cosine to the cluster's centroid
    is_outlier: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


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
    __table_args__ = (Index("ix_sort_examples_image", "image_id"),)

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
    __table_args__ = (
        UniqueConstraint("folder_id", "relpath"),
        Index("ix_companions_image", "image_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), nullable=True
    )
    relpath: Mapped[str] = mapped_column(FsPath)
    kind: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(Int64)
    mtime_ns: Mapped[int] = mapped_column(Int64)


class EmbeddingGeneration(Base):
    """Bumped by triggers on every change to a model's embeddings (see `_v6`)."""

    __tablename__ = "embedding_generations"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
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
    __table_args__ = (Index("ix_dupe_dismissal_members_image", "image_id"),)

    dismissal_id: Mapped[int] = mapped_column(
        ForeignKey("dupe_dismissals.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    size: Mapped[int] = mapped_column(Int64)
    mtime_ns: Mapped[int] = mapped_column(Int64)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


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


POSTGRESQL_MIN: Final = 160000  # server_version_num of PostgreSQL 16
PGVECTOR_MIN: Final = (0, 7)


def open_engine(target: Path | str, *, upgrade: bool = True) -> Engine:
    """Open (creating if needed) a library database and bring its schema up to date:
    a SQLite file by path, a shared library by ``postgresql://`` URL.
    Raises `SchemaTooNew`, and for a server `SharedLibraryError`."""
    if is_shared(target):
        return _open_postgresql(str(target), upgrade=upgrade)
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    if upgrade:
        from dino_desktop.core import migrations
        from dino_desktop.core.lock import waiting_lock

        # Two processes opening a new (or older) library at once would both run
        # the same migrations ("table folders already exists"): one at a time,
        # and the second then finds the schema current.
        with waiting_lock(path.with_name(path.name + ".migrate-lock")):
            migrations.upgrade(engine)
    return engine


def _open_postgresql(target: str, *, upgrade: bool) -> Engine:
    url = make_url(target).set(drivername="postgresql+psycopg")
    # As the user wrote it (postgresql://...), without the password.
    shown = url.set(drivername="postgresql").render_as_string(hide_password=True)
    engine = create_engine(
        url,
        pool_pre_ping=True,  # a server restarted under a long-lived GUI
        connect_args={"connect_timeout": 10, "application_name": "dino-desktop"},
    )
    try:
        with engine.connect() as conn:
            _check_server(conn, shown)
        if upgrade:
            from dino_desktop.core import migrations

            migrations.upgrade(engine)
    except OperationalError as exc:
        engine.dispose()
        raise SharedLibraryError(connect_message(shown, url.host, url.port, exc)) from exc
    except BaseException:
        engine.dispose()
        raise
    return engine


def test_connection(target: str) -> str:
    """Check a shared library's URL without changing anything; one line of what was
    found (server, pgvector, library). Raises SharedLibraryError (or SchemaTooNew:
    a newer release's library) with the same messages as opening it."""
    from dino_desktop.core import migrations

    engine = _open_postgresql(target, upgrade=False)
    try:
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar_one()
            vector = conn.exec_driver_sql(
                "SELECT coalesce(installed_version, default_version) FROM pg_available_extensions"
                " WHERE name = 'vector'"
            ).scalar_one()
        revision = migrations.current_revision(engine)
        migrations.refuse_unknown(revision)
        if revision is None:
            library = "an empty database: a new shared library will be made in it"
        elif revision == migrations.head():
            library = "a shared library of this release"
        else:
            library = (
                f"a shared library of an older release (revision {revision}): upgraded on connect"
            )
        return f"PostgreSQL {version.split()[0]}, pgvector {vector}; {library}"
    except OperationalError as exc:
        url = make_url(target)
        shown = url.render_as_string(hide_password=True)
        raise SharedLibraryError(connect_message(shown, url.host, url.port, exc)) from exc
    finally:
        engine.dispose()


def _check_server(conn: Connection, shown: str) -> None:
    number = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one())
    if number < POSTGRESQL_MIN:
        raise SharedLibraryError(
            f"{shown}: PostgreSQL {number // 10000} is too old; a shared library needs 16 or newer"
        )
    row = conn.exec_driver_sql(
        "SELECT default_version, installed_version FROM pg_available_extensions "
        "WHERE name = 'vector'"
    ).first()
    if row is None:
        raise SharedLibraryError(
            f"{shown}: the server has no pgvector extension; install pgvector "
            "(0.7 or newer) on it, then connect again"
        )
    version = row[1] or row[0]
    if tuple(int(p) for p in version.split(".")[:2]) < PGVECTOR_MIN:
        raise SharedLibraryError(
            f"{shown}: pgvector {version} is too old; a shared library needs 0.7 or newer"
        )


def connect_message(shown: str, host: str | None, port: int | None, exc: Exception) -> str:
    """One line for a failed connection: which failure, in the user's words."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    where = f"{host or 'localhost'}:{port or 5432}"
    low = text.lower()
    if "password authentication failed" in low:
        return f"{shown}: wrong user name or password"
    if "no password supplied" in low:
        return f"{shown}: the server asks for a password; put it in the URL or ~/.pgpass"
    if "does not exist" in low and "database" in low:
        return f"{shown}: no such database on the server ({text.splitlines()[0]})"
    unreachable = ("connection refused", "could not connect", "timeout", "no such file", "no route")
    if any(words in low for words in unreachable):
        return f"cannot reach the PostgreSQL server at {where}: is it running? ({shown})"
    return f"{shown}: {text.splitlines()[0] if text else type(exc).__name__}"


def insert(session: Session, table: Any) -> Any:
    """An INSERT with ``on_conflict_do_nothing / _do_update`` in the session's dialect
    (SQLite's and PostgreSQL's take the same arguments)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


class Raw:
    """The DB-API connection under a session's transaction, for the few hot paths that
    skip SQLAlchemy's per-row cost. It takes SQLite's ``?`` placeholders on both
    backends (turned into psycopg's ``%s``), so those statements are written once."""

    def __init__(self, session: Session) -> None:
        self.conn: Any = session.connection().connection.driver_connection
        self.postgresql = session.get_bind().dialect.name == "postgresql"

    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s") if self.postgresql else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the driver's cursor (iterate, fetchone, fetchmany)."""
        if self.postgresql:
            return self.conn.execute(self._sql(sql), params or None)
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.postgresql:
            with self.conn.cursor() as cursor:
                cursor.executemany(self._sql(sql), rows)
        else:
            self.conn.executemany(sql, rows)


def session_factory(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)


def rename_row(session: Session, row: ClusterRow | SortLabel, name: str, was: str | None) -> None:
    """Set `row`'s name, or, with `was` (the name the caller saw), only while it is
    still `was`: compare and set in one UPDATE, so two clients of a shared library
    renaming one thing cannot overwrite each other unseen. Raises ConflictError
    naming what the other client chose (unless it chose the same name)."""
    from dino_desktop.core.records import ConflictError

    kind = type(row)
    query = update(kind).where(kind.id == row.id)
    if was is not None:
        query = query.where(kind.name == was)
    if session.scalar(query.values(name=name).returning(kind.id)) is None:
        session.refresh(row)
        if row.name != name:
            what = "auto-folder" if isinstance(row, ClusterRow) else "label"
            raise ConflictError(
                f"another client renamed the {what} “{was}” to “{row.name}” meanwhile; "
                f"“{name}” was not saved (rename it again to replace “{row.name}”)"
            )
