"""Storage: pragmas, schema built by migrations, upgrades keep a user's data."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from dino_desktop.core import db
from dino_desktop.core.migrations import legacy
from dino_desktop.core.records import SchemaTooNew


def test_fresh_library_uses_wal_foreign_keys_and_current_schema(tmp_path: Path) -> None:
    engine = db.open_engine(tmp_path / "lib.sqlite3")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert legacy.schema_version(conn) == legacy.SCHEMA_VERSION


def test_orm_matches_the_schema_the_migrations_build(tmp_path: Path) -> None:
    engine = db.open_engine(tmp_path / "lib.sqlite3")
    inspector = inspect(engine)
    for table in db.Base.metadata.sorted_tables:
        built = {c["name"] for c in inspector.get_columns(table.name)}
        assert built == {c.name for c in table.columns}, table.name


def test_upgrade_from_schema_1_keeps_photos_and_vectors(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = db.open_engine(path, upgrade=False)
    legacy.migrate(old, target=1)
    with old.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO folders (id, path, is_reference, added_at) "
            "VALUES (1, '/photos', 1, '2024-01-01 00:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO images (id, folder_id, relpath, size, mtime_ns, sha256, status, "
            "scanned_at) VALUES (7, 1, 'a.jpg', 10, 5, 'abc', 'ok', '2024-01-01 00:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO models (id, name, weights_sha256, dim, image_size) "
            "VALUES (1, 'm', 'w', 2, 224)"
        )
        conn.exec_driver_sql(
            "INSERT INTO embeddings (image_id, model_id, vector) VALUES (7, 1, x'0000803f00000000')"
        )
    old.dispose()

    engine = db.open_engine(path)
    with engine.connect() as conn:
        assert legacy.schema_version(conn) == legacy.SCHEMA_VERSION
    sessions = db.session_factory(engine)
    with sessions() as session:
        image = session.scalars(select(db.ImageRow)).one()
        assert (image.relpath, image.sha256, image.inode) == ("a.jpg", "abc", None)
        assert image.folder.is_reference
        assert (
            session.scalars(select(db.Embedding)).one().vector == b"\x00\x00\x80?\x00\x00\x00\x00"
        )
    # A second open is a no-op, not a re-run of the migrations.
    db.open_engine(path).dispose()


def test_a_newer_schema_is_refused_not_damaged(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {legacy.SCHEMA_VERSION + 5}")
    con.close()
    with pytest.raises(SchemaTooNew, match="update DINO Desktop"):
        db.open_engine(path)


def test_paths_that_are_not_utf8_round_trip(tmp_path: Path) -> None:
    engine = db.open_engine(tmp_path / "lib.sqlite3")
    sessions = db.session_factory(engine)
    weird = "/photos/caf\udce9/x\udcff.jpg"  # bytes 0xE9, 0xFF decoded with surrogateescape
    with sessions() as session, session.begin():
        session.add(db.Folder(path=weird, is_reference=False, added_at=datetime.now()))
        session.add(db.Folder(path="/photos/été ☀", is_reference=False, added_at=datetime.now()))
    with sessions() as session:
        paths = set(session.scalars(select(db.Folder.path)))
        assert paths == {weird, "/photos/été ☀"}
        assert session.scalar(select(db.Folder).where(db.Folder.path == weird)) is not None


def test_deleting_a_folder_cascades_to_images_and_vectors(tmp_path: Path) -> None:
    engine = db.open_engine(tmp_path / "lib.sqlite3")
    sessions = db.session_factory(engine)
    now = datetime.now()
    with sessions() as session, session.begin():
        folder = db.Folder(path="/p", is_reference=False, added_at=now)
        session.add(folder)
        session.flush()
        image = db.ImageRow(
            folder_id=folder.id, relpath="a.jpg", size=1, mtime_ns=1, status="ok", scanned_at=now
        )
        model = db.ModelRow(name="m", weights_sha256="w", dim=1, image_size=224)
        session.add_all([image, model])
        session.flush()
        session.add(db.Embedding(image_id=image.id, model_id=model.id, vector=b"\0\0\0\0"))
    with sessions() as session, session.begin():
        session.delete(session.scalars(select(db.Folder)).one())
    with sessions() as session:
        assert session.scalars(select(db.ImageRow)).all() == []
        assert session.scalars(select(db.Embedding)).all() == []
