"""Upgrading a populated library from every past schema version.

For each N in 1..SCHEMA_VERSION-1: a library is built at schema N by running
migrations 1..N, filled with everything that schema can hold (folders, photos,
vectors, models, journal rows, then cluster runs/members, exclusions, sort
labels/examples as they appear), opened with the current code, and compared
with a fresh library: the same schema (tables, columns, indexes, foreign keys,
triggers, down to the SQL text), and every row that was there before, as it
was. A migration that rewrote a table (SQLite's copy-and-rename) and dropped a
column, an index or a row would fail here.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from dino_desktop.core import db, migrations
from dino_desktop.core.library import Library
from dino_desktop.core.migrations import legacy
from dino_desktop.core.records import SchemaTooNew

PAST_VERSIONS = range(1, legacy.SCHEMA_VERSION)


def _vector(seed: int) -> bytes:
    v = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return (v / np.linalg.norm(v)).tobytes()


# Rows each schema can hold, added at the version that introduced the table or
# column. Column lists are explicit: a test of upgrades must not depend on the
# current ORM.
def _populate(engine: Engine, version: int) -> None:
    with engine.begin() as conn:
        sql = conn.exec_driver_sql
        sql(
            "INSERT INTO folders (id, path, is_reference, added_at) VALUES "
            "(1, '/photos', 0, '2024-01-01 10:00:00.000000'),"
            "(2, '/archive', 1, '2024-01-02 11:00:00.000000')"
        )
        # A folder whose name is not valid UTF-8 is stored as its raw bytes.
        sql(
            "INSERT INTO folders (id, path, is_reference, added_at) VALUES (?, ?, 0, ?)",
            (3, b"/caf\xe9", "2024-01-03 12:00:00.000000"),
        )
        images = [
            (
                1,
                1,
                "a.jpg",
                1000,
                111,
                "aa" * 32,
                "f0f0f0f0f0f0f0f0",
                640,
                480,
                1,
                "2023-05-01 12:00:00.000000",
                "Canon",
                "ok",
                None,
            ),
            (
                2,
                1,
                "sub/b.png",
                2000,
                222,
                "bb" * 32,
                "0f0f0f0f0f0f0f0f",
                100,
                200,
                6,
                None,
                None,
                "ok",
                None,
            ),
            (
                3,
                2,
                "c.jpg",
                1000,
                333,
                "aa" * 32,
                "f0f0f0f0f0f0f0f0",
                640,
                480,
                1,
                None,
                None,
                "ok",
                None,
            ),
            (
                4,
                2,
                "broken.jpg",
                10,
                444,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                "failed",
                "truncated file",
            ),
            (
                5,
                3,
                "é.heic",
                3000,
                555,
                "cc" * 32,
                "1234567812345678",
                4000,
                3000,
                8,
                "2022-12-24 18:30:00.000000",
                "Apple iPhone",
                "ok",
                None,
            ),
        ]
        sql(
            "INSERT INTO images (id, folder_id, relpath, size, mtime_ns, sha256, phash, width,"
            " height, orientation, taken_at, camera, status, error, scanned_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '2024-02-01 09:00:00.000000')",
            images,
        )
        sql(
            "INSERT INTO models (id, name, weights_sha256, dim, image_size) VALUES "
            "(1, 'vit_small_patch14_dinov2', ?, 8, 224), (2, 'vit_base_patch14_dinov2', ?, 8, 224)",
            ("11" * 32, "22" * 32),
        )
        sql(
            "INSERT INTO embeddings (image_id, model_id, vector) VALUES (?, ?, ?)",
            [(i, m, _vector(10 * i + m)) for i in (1, 2, 3, 5) for m in (1, 2) if (i, m) != (5, 2)],
        )
        sql(
            "INSERT INTO journal (id, created_at, action, payload, undone_at) VALUES "
            "(1, '2024-03-01 08:00:00.000000', 'trash', '{\"items\": [1]}', NULL),"
            "(2, '2024-03-02 08:00:00.000000', 'move', '{\"items\": [2]}',"
            " '2024-03-02 09:00:00.000000')"
        )
        if version >= 2:
            sql("UPDATE images SET format = 'JPEG', dev = 2049, inode = 1000 + id WHERE id != 4")
        if version >= 3:
            sql(
                "INSERT INTO cluster_runs (id, created_at, model_id, k) VALUES "
                "(1, '2024-04-01 08:00:00.000000', 1, 2), (2, '2024-04-02 08:00:00.000000', 2, 2)"
            )
            sql(
                "INSERT INTO clusters (id, run_id, idx, name, centroid) VALUES (?, ?, ?, ?, ?)",
                [
                    (1, 1, 0, "Beach", _vector(1)),
                    (2, 1, 1, "Group 2", _vector(2)),
                    (3, 2, 0, "Cats", _vector(3)),
                    (4, 2, 1, "Dogs", _vector(4)),
                ],
            )
            sql(
                "INSERT INTO cluster_members (cluster_id, image_id, score, is_outlier) VALUES "
                "(1, 1, 0.91, 0), (1, 3, 0.88, 0), (2, 2, 0.42, 1), (2, 5, 0.77, 0),"
                "(3, 1, 0.5, 0), (4, 2, 0.6, 0)"
            )
        if version >= 4:
            sql("INSERT INTO cluster_exclusions (run_id, image_id) VALUES (1, 2), (2, 3)")
        if version >= 5:
            sql(
                "INSERT INTO sort_labels (id, name, folder, created_at) VALUES "
                "(1, 'Holidays', '/photos/examples/holidays', '2024-05-01 08:00:00.000000'),"
                "(2, 'Receipts', NULL, '2024-05-02 08:00:00.000000')"
            )
            sql(
                "INSERT INTO sort_examples (label_id, image_id, positive) VALUES "
                "(1, 1, 1), (1, 2, 0), (2, 5, 1)"
            )


def _schema(engine: Engine) -> dict[str, Any]:
    """Everything about the schema that an upgrade could get wrong."""
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        sql = conn.exec_driver_sql
        for kind, name, table, text in sql(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ):
            # Whitespace aside, the DDL itself (ALTER TABLE ... ADD COLUMN edits it).
            out[f"{kind} {name}"] = (table, re.sub(r"\s+", " ", text or "").strip())
            if kind == "table":
                out[f"columns {name}"] = sql(f"PRAGMA table_xinfo({name})").all()
                out[f"foreign keys {name}"] = sql(f"PRAGMA foreign_key_list({name})").all()
                out[f"indexes {name}"] = sorted(
                    (
                        row[1],
                        row[2],
                        row[3],
                        row[4],
                        tuple(r[2] for r in sql(f"PRAGMA index_info('{row[1]}')")),
                    )
                    for row in sql(f"PRAGMA index_list({name})")
                )
        out["user_version"] = legacy.schema_version(conn)
    return out


def _rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as column → value, in a stable order."""
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        tables = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for table in tables:
            result = conn.exec_driver_sql(f"SELECT * FROM {table}")
            names = list(result.keys())
            out[table] = sorted((dict(zip(names, row, strict=True)) for row in result), key=repr)
    return out


@pytest.fixture(scope="module")
def fresh_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _schema(db.open_engine(tmp_path_factory.mktemp("fresh") / "library.sqlite3"))


@pytest.mark.parametrize("version", PAST_VERSIONS)
def test_upgrade_keeps_every_row_and_matches_a_fresh_schema(
    tmp_path: Path, version: int, fresh_schema: dict[str, Any]
) -> None:
    path = tmp_path / "library.sqlite3"
    old = db.open_engine(path, upgrade=False)
    assert legacy.migrate(old, target=version) == version
    _populate(old, version)
    before = _rows(old)
    old.dispose()

    upgraded = db.open_engine(path)  # what the current code does on open
    assert _schema(upgraded) == fresh_schema
    after = _rows(upgraded)
    for table, rows in before.items():
        # Old columns keep their values; columns added later are NULL.
        kept = [{k: row[k] for k in rows[0]} for row in after[table]] if rows else after[table]
        assert sorted(kept, key=repr) == rows, table
        for row in after[table]:
            assert all(row[k] is None for k in row.keys() - rows[0].keys()) if rows else True
    new_tables = after.keys() - before.keys() - {"embedding_generations", "alembic_version"}
    assert all(after[t] == [] for t in new_tables)
    # Stamped with Alembic's baseline and upgraded from there: the head is recorded.
    assert after["alembic_version"] == [{"version_num": migrations.head()}]
    with upgraded.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
    upgraded.dispose()


@pytest.mark.parametrize("version", PAST_VERSIONS)
def test_an_upgraded_library_works_with_the_current_code(tmp_path: Path, version: int) -> None:
    home = tmp_path / "lib"
    home.mkdir()
    old = db.open_engine(home / "library.sqlite3", upgrade=False)
    legacy.migrate(old, target=version)
    _populate(old, version)
    old.dispose()

    library = Library(home)
    try:
        status = library.status()
        assert status.images == 4 and status.failed == 1  # readable photos, failed ones
        folders = {f.path: f for f in library.folders()}
        assert folders["/archive"].is_reference and not folders["/photos"].is_reference
        assert "/caf\udce9" in folders  # the non-UTF-8 name, as Python sees it
        with library.sessions() as session:
            assert session.scalar(select(func.count()).select_from(db.Embedding)) == 7
            vector = session.get(db.Embedding, (1, 1))
            assert vector is not None and vector.vector == _vector(11)
            # Schema 6's triggers count changes made after the upgrade.
            session.add(db.Embedding(image_id=5, model_id=2, vector=_vector(52)))
            session.commit()
            generation = session.get(db.EmbeddingGeneration, 2)
            assert generation is not None and generation.generation >= 1
    finally:
        library.close()


def test_a_library_from_a_newer_release_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {legacy.SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(SchemaTooNew):
        db.open_engine(path)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == legacy.SCHEMA_VERSION + 1
    assert con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    con.close()


def test_a_library_at_an_unknown_alembic_revision_is_refused_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    db.open_engine(path).dispose()
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = 'f00dcafe'")
    con.commit()
    before = con.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    con.close()
    with pytest.raises(SchemaTooNew, match=rf"f00dcafe.*{migrations.head()}"):
        db.open_engine(path)
    con = sqlite3.connect(path)
    assert con.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == before
    assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [("f00dcafe",)]
    con.close()


def test_a_fresh_library_is_at_the_head_and_reads_as_legacy_nine_to_old_releases(
    tmp_path: Path,
) -> None:
    engine = db.open_engine(tmp_path / "library.sqlite3")
    assert migrations.current_revision(engine) == migrations.head()
    with engine.connect() as conn:
        # A release from before Alembic sees the schema it knows, not an empty file.
        # (revision 0002 is PostgreSQL's alone: SQLite stays at 9 for now)
        assert legacy.schema_version(conn) == migrations.sqlite_version() >= legacy.SCHEMA_VERSION
    engine.dispose()
