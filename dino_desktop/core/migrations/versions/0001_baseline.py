"""The schema of DINO Desktop 0.x when it moved to Alembic (legacy SQLite version 9).

Revision ID: 0001
Revises:
Create Date: 2026-12-07

On SQLite this is the nine legacy migrations run in order (core/migrations/
legacy.py), so a library made before Alembic and brought up to version 9 holds
the very DDL of a fresh one and is stamped with this revision. On PostgreSQL it
is the same tables in that dialect: 64-bit sizes, mtimes and inodes; vectors
as pgvector ``halfvec``; the embedding-generation counter kept by a plpgsql
trigger instead of SQLite's three.
"""

from __future__ import annotations

from alembic import op

from dino_desktop.core.migrations import legacy

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

POSTGRESQL = (
    "CREATE EXTENSION IF NOT EXISTS vector",
    """CREATE TABLE embedding_generations (
            model_id INTEGER NOT NULL,
            generation INTEGER NOT NULL,
            PRIMARY KEY (model_id)
        )""",
    """CREATE TABLE folders (
            id SERIAL NOT NULL,
            path VARCHAR NOT NULL,
            is_reference BOOLEAN DEFAULT false NOT NULL,
            added_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
            volume TEXT,
            volume_path VARCHAR,
            mount VARCHAR,
            PRIMARY KEY (id),
            UNIQUE (path)
        )""",
    """CREATE TABLE journal (
            id SERIAL NOT NULL,
            created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
            action TEXT NOT NULL,
            payload TEXT NOT NULL,
            undone_at TIMESTAMP WITHOUT TIME ZONE,
            PRIMARY KEY (id)
        )""",
    """CREATE TABLE models (
            id SERIAL NOT NULL,
            name TEXT NOT NULL,
            weights_sha256 VARCHAR(64) NOT NULL,
            dim INTEGER NOT NULL,
            image_size INTEGER NOT NULL,
            PRIMARY KEY (id),
            UNIQUE (name, weights_sha256)
        )""",
    """CREATE TABLE sort_labels (
            id SERIAL NOT NULL,
            name TEXT NOT NULL,
            folder VARCHAR,
            created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
            PRIMARY KEY (id),
            UNIQUE (name)
        )""",
    """CREATE TABLE cluster_runs (
            id SERIAL NOT NULL,
            created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
            model_id INTEGER NOT NULL,
            k INTEGER NOT NULL,
            PRIMARY KEY (id),
            FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE
        )""",
    "CREATE INDEX ix_cluster_runs_model ON cluster_runs (model_id)",
    """CREATE TABLE images (
            id SERIAL NOT NULL,
            folder_id INTEGER NOT NULL,
            relpath VARCHAR NOT NULL,
            size BIGINT NOT NULL,
            mtime_ns BIGINT NOT NULL,
            sha256 VARCHAR(64),
            phash VARCHAR(16),
            width INTEGER,
            height INTEGER,
            orientation INTEGER,
            taken_at TIMESTAMP WITHOUT TIME ZONE,
            camera TEXT,
            status VARCHAR(8) NOT NULL,
            error TEXT,
            scanned_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
            format VARCHAR(16),
            dev BIGINT,
            inode BIGINT,
            PRIMARY KEY (id),
            UNIQUE (folder_id, relpath),
            FOREIGN KEY(folder_id) REFERENCES folders (id) ON DELETE CASCADE
        )""",
    "CREATE INDEX ix_images_sha256 ON images (sha256)",
    "CREATE INDEX ix_images_status ON images (status)",
    """CREATE TABLE cluster_exclusions (
            run_id INTEGER NOT NULL,
            image_id INTEGER NOT NULL,
            PRIMARY KEY (run_id, image_id),
            FOREIGN KEY(run_id) REFERENCES cluster_runs (id) ON DELETE CASCADE,
            FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE
        )""",
    """CREATE TABLE clusters (
            id SERIAL NOT NULL,
            run_id INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            name TEXT NOT NULL,
            centroid BYTEA NOT NULL,
            PRIMARY KEY (id),
            UNIQUE (run_id, idx),
            FOREIGN KEY(run_id) REFERENCES cluster_runs (id) ON DELETE CASCADE
        )""",
    """CREATE TABLE companions (
            id SERIAL NOT NULL,
            folder_id INTEGER NOT NULL,
            image_id INTEGER,
            relpath VARCHAR NOT NULL,
            kind VARCHAR(8) NOT NULL,
            size BIGINT NOT NULL,
            mtime_ns BIGINT NOT NULL,
            PRIMARY KEY (id),
            UNIQUE (folder_id, relpath),
            FOREIGN KEY(folder_id) REFERENCES folders (id) ON DELETE CASCADE,
            FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE
        )""",
    "CREATE INDEX ix_companions_image ON companions (image_id)",
    """CREATE TABLE dupe_dismissals (
            id SERIAL NOT NULL,
            created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
            kind VARCHAR(16) NOT NULL,
            subject_id INTEGER,
            undone_at TIMESTAMP WITHOUT TIME ZONE,
            PRIMARY KEY (id),
            FOREIGN KEY(subject_id) REFERENCES images (id) ON DELETE CASCADE
        )""",
    """CREATE TABLE embeddings (
            image_id INTEGER NOT NULL,
            model_id INTEGER NOT NULL,
            vector HALFVEC NOT NULL,
            PRIMARY KEY (image_id, model_id),
            FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE,
            FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE
        )""",
    "CREATE INDEX ix_embeddings_model ON embeddings (model_id)",
    """CREATE TABLE sort_examples (
            label_id INTEGER NOT NULL,
            image_id INTEGER NOT NULL,
            positive BOOLEAN NOT NULL,
            PRIMARY KEY (label_id, image_id),
            FOREIGN KEY(label_id) REFERENCES sort_labels (id) ON DELETE CASCADE,
            FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE
        )""",
    "CREATE INDEX ix_sort_examples_image ON sort_examples (image_id)",
    """CREATE TABLE cluster_members (
            cluster_id INTEGER NOT NULL,
            image_id INTEGER NOT NULL,
            score FLOAT NOT NULL,
            is_outlier BOOLEAN DEFAULT false NOT NULL,
            PRIMARY KEY (cluster_id, image_id),
            FOREIGN KEY(cluster_id) REFERENCES clusters (id) ON DELETE CASCADE,
            FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE
        )""",
    "CREATE INDEX ix_cluster_members_image ON cluster_members (image_id)",
    """CREATE TABLE dupe_dismissal_members (
            dismissal_id INTEGER NOT NULL,
            image_id INTEGER NOT NULL,
            size BIGINT NOT NULL,
            mtime_ns BIGINT NOT NULL,
            sha256 VARCHAR(64),
            PRIMARY KEY (dismissal_id, image_id),
            FOREIGN KEY(dismissal_id) REFERENCES dupe_dismissals (id) ON DELETE CASCADE,
            FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE
        )""",
    "CREATE INDEX ix_dupe_dismissal_members_image ON dupe_dismissal_members (image_id)",
    # One counter per model, bumped by every change to its vectors (legacy _v6).
    """CREATE FUNCTION embeddings_bump_generation() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO embedding_generations (model_id, generation)
            VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.model_id ELSE NEW.model_id END, 1)
            ON CONFLICT (model_id)
            DO UPDATE SET generation = embedding_generations.generation + 1;
            RETURN NULL;
        END $$""",
    """CREATE TRIGGER embeddings_generation AFTER INSERT OR UPDATE OR DELETE ON embeddings
        FOR EACH ROW EXECUTE FUNCTION embeddings_bump_generation()""",
)


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for step in legacy.MIGRATIONS:
            step(conn)
        legacy.set_schema_version(conn, legacy.SCHEMA_VERSION)
        return
    for statement in POSTGRESQL:
        conn.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("the first schema has nothing to go back to")
