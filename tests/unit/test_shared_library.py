"""A shared library on PostgreSQL + pgvector: the same answers as a SQLite library,
clear messages when the server cannot be used, safe scans from two machines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import imagegen
import pytest
import weightsgen
from sqlalchemy import create_engine, text

from dino_desktop.cli import main
from dino_desktop.core import migrations
from dino_desktop.core.db import open_engine
from dino_desktop.core.library import Library
from dino_desktop.core.records import LibraryError, SchemaTooNew, SharedLibraryError


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(6):
        imagegen.save_jpeg(root / f"p{i}.jpg", seed=i, size=(240, 180))
    imagegen.save_jpeg(root / "sub" / "copy of p1.jpg", seed=1, size=(240, 180))  # same pixels
    (root / "sub" / "p2 again.jpg").write_bytes((root / "p2.jpg").read_bytes())  # same bytes
    (root / "broken.jpg").write_bytes(b"not a photo")
    return root


def _answers(capsys: pytest.CaptureFixture[str], base: list[str], photos: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"scan": run(capsys, *base, "scan", str(photos), "--json")}
    out["status"] = run(capsys, *base, "status", "--json")
    out["search"] = run(capsys, *base, "search", str(photos / "p3.jpg"), "--top", "4", "--json")
    for method in ("exact", "phash", "dino"):
        out[method] = run(capsys, *base, "duplicates", "--method", method, "--json")
    out["cluster"] = run(capsys, *base, "cluster", "--k", "2", "--json")
    dest = str(photos.parent / "out")
    out["export"] = run(capsys, *base, "export-clusters", dest, "--dry-run", "--json")
    return out


def _without_scores(value: Any) -> Any:
    """The answer with scores left out (compared apart: halfvec keeps ~3 digits)."""
    if isinstance(value, dict):
        return {k: _without_scores(v) for k, v in value.items() if k not in ("score", "why")}
    if isinstance(value, list):
        return [_without_scores(v) for v in value]
    return value


def _scores(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in ([v] if k == "score" else _scores(v))]
    if isinstance(value, list):
        return [s for v in value for s in _scores(v)]
    return []


def test_search_duplicates_clusters_and_export_answer_as_on_sqlite(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, photos: Path, pg_url: str
) -> None:
    weightsgen.register_tiny_model()
    weights = weightsgen.write_meta_checkpoint(tmp_path / "tiny.pth", weightsgen.TINY)
    common = ["--model", weightsgen.TINY, "--weights", str(weights), "--device", "cpu"]
    local = _answers(capsys, ["--library", str(tmp_path / "lib"), *common], photos)
    shared = _answers(capsys, ["--library", pg_url, *common], photos)

    assert local["scan"]["added"] == 9 and local["scan"]["embedded"] == 8
    assert local["exact"] and local["phash"] and local["search"][0]["path"].endswith("p3.jpg")
    # Only a shared library has indexing workers: nothing left for them here.
    assert shared["status"].pop("queue") == {"photos_left": 0, "jobs": 0, "workers": 0}
    assert "queue" not in local["status"]
    for key in local:
        assert _without_scores(shared[key]) == _without_scores(local[key]), key
        assert shared[key] if local[key] else True
        assert _scores(shared[key]) == pytest.approx(_scores(local[key]), abs=5e-3), key


def test_the_vectors_read_back_in_bulk_are_the_stored_ones(pg_url: str) -> None:
    """The binary COPY read (duplicates, k-means) returns every vector of the model,
    by image id, equal to what was written to halfvec precision."""
    import numpy as np

    from dino_desktop.core import vectors

    lib = Library(pg_url)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 24)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with lib.sessions() as session, session.begin():
        session.execute(text("INSERT INTO folders (path, added_at) VALUES ('/p', now())"))
        session.execute(
            text(
                "INSERT INTO images (folder_id, relpath, size, mtime_ns, status, scanned_at)"
                " SELECT 1, 'p' || g, 1, 1, 'ok', now() FROM generate_series(1, 300) g"
            )
        )
        session.execute(
            text(
                "INSERT INTO models (name, weights_sha256, dim, image_size)"
                " VALUES ('m', 'w', 24, 224)"
            )
        )
        order = rng.permutation(300)  # written out of order: read back by id
        vectors.write_vectors(session, 1, [(int(i) + 1, x[i]) for i in order])
    ids, got = vectors.all_vectors(lib.sessions, 1, 24)
    lib.close()
    assert ids.tolist() == list(range(1, 301))
    assert np.abs(got - x).max() < 2e-3 and got.dtype == np.float32


def test_a_server_that_cannot_be_reached_is_one_clear_line(tmp_path: Path) -> None:
    url = f"postgresql://me@/photos?host={tmp_path}"  # no server listens there
    with pytest.raises(SharedLibraryError, match="cannot reach the PostgreSQL server"):
        Library(url)


def test_a_missing_database_is_named(pg_server: Any) -> None:
    url = pg_server.url("no_such_db")
    with pytest.raises(SharedLibraryError, match="no such database"):
        Library(url)


def test_the_cli_says_what_is_wrong_with_the_server(
    capsys: pytest.CaptureFixture[str], pg_server: Any
) -> None:
    code = main(["--library", pg_server.url("no_such_db"), "status"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "no such database" in err
    assert "Traceback" not in err


def test_a_shared_library_of_a_newer_release_is_refused_naming_both(pg_url: str) -> None:
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'beefcafe'"))
    with pytest.raises(SchemaTooNew, match=rf"beefcafe.*{migrations.head()}"):
        open_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "beefcafe"
    engine.dispose()


def test_two_machines_scanning_one_folder_at_once_store_each_photo_once(
    tmp_path: Path, pg_url: str
) -> None:
    root = tmp_path / "nas"
    root.mkdir()
    for i in range(60):
        imagegen.save_jpeg(root / f"IMG_{i:03}.jpg", seed=i, size=(64, 48))
    procs = []
    for machine in ("a", "b"):
        # Each "machine" has its own user data dir, hence its own local lock.
        env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / machine)}
        cmd = [sys.executable, "-m", "dino_desktop", "--library", pg_url]
        cmd += ["scan", str(root), "--json"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(o["added"] for o in outs) >= 60
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT relpath FROM images")).scalars().all()
        folders = conn.execute(text("SELECT count(*) FROM folders")).scalar()
    engine.dispose()
    assert sorted(rows) == sorted(p.name for p in root.iterdir()) and folders == 1


def test_a_second_client_sees_the_first_ones_trash_within_seconds(
    tmp_path: Path, pg_url: str
) -> None:
    import queue
    import time

    root = tmp_path / "nas"
    root.mkdir()
    for i in range(4):
        imagegen.save_jpeg(root / f"IMG_{i}.jpg", seed=i, size=(64, 48))
    victim = root / "IMG_2.jpg"
    heard: queue.Queue[frozenset[str]] = queue.Queue()
    with Library(pg_url) as desk:
        from dino_desktop.core.progress import drive

        drive(desk.scan([root]))
        changes = desk.listen(heard.put)
        assert changes is not None and changes.listening.wait(10)
        try:
            before = {p.path for p in desk.photos()}
            assert str(victim) in before
            # The other desktop: another process, its own user data dir.
            env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "other-desk")}
            cmd = [sys.executable, "-m", "dino_desktop", "--library", pg_url]
            subprocess.run([*cmd, "trash", str(victim)], env=env, check=True, timeout=60)
            done = time.monotonic()
            tables: set[str] = set()
            while "images" not in tables:
                tables |= heard.get(timeout=5)
            assert time.monotonic() - done < 5
            assert before - {p.path for p in desk.photos()} == {str(victim)}
            assert not victim.exists()
        finally:
            changes.stop()
    with Library(tmp_path / "lib") as local:
        assert local.listen(heard.put) is None  # one machine: nobody else to hear


@pytest.mark.parametrize("fstype", ["nfs4", "cifs", "smb3", "fuse.sshfs"])
def test_a_sqlite_library_on_a_network_share_is_refused_pointing_to_shared_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fstype: str
) -> None:
    from dino_desktop.core import volumes

    share = tmp_path / "nas"
    share.mkdir()
    monkeypatch.setattr(volumes.sys, "platform", "linux")
    monkeypatch.setattr(volumes, "mount_point", lambda path: str(share))
    mounted = volumes.Mount(str(share), fstype, "//nas/photos", (0, 50))
    monkeypatch.setattr(volumes, "mounts", lambda: [mounted])
    with pytest.raises(LibraryError, match=rf"network filesystem \({fstype}\).*postgresql://"):
        Library(share / "library")
    assert not (share / "library").exists()  # nothing written there
    code = main(["--library", str(share / "library"), "status"])
    assert code == 1


def test_a_sqlite_library_on_a_local_disk_or_a_local_pool_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dino_desktop.core import volumes

    monkeypatch.setattr(volumes.sys, "platform", "linux")
    pool = volumes.Mount(str(tmp_path), "fuse.mergerfs", "disk1:disk2", (0, 51))
    monkeypatch.setattr(volumes, "mount_point", lambda path: str(tmp_path))
    monkeypatch.setattr(volumes, "mounts", lambda: [pool])
    with Library(tmp_path / "library") as lib:
        assert lib.status().images == 0
    assert volumes.network_fstype(str(tmp_path / "not" / "made" / "yet")) is None


@pytest.mark.skipif(os.name != "posix", reason="file names that are not UTF-8 need POSIX")
def test_names_that_are_not_utf8_are_kept_on_the_server(tmp_path: Path, pg_url: str) -> None:
    """Linux allows any bytes in a name; PostgreSQL text does not: such a folder and
    photo are still scanned, found unchanged by a rescan, listed and trashed."""
    try:
        root = tmp_path / os.fsdecode(b"caf\xe9")
        root.mkdir()
        name = os.fsdecode(b"x \xff.jpg")
        imagegen.save_jpeg(root / name, seed=1, size=(64, 48))
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    imagegen.save_jpeg(root / "plain.jpg", seed=2, size=(64, 48))
    from dino_desktop.core.progress import drive

    with Library(pg_url) as lib:
        first = drive(lib.scan([root], embed=False))
        assert (first.added, first.failed) == (2, [])
        again = drive(lib.scan(embed=False))
        assert (again.added, again.removed, again.unchanged) == (0, 0, 2)
        assert {p.path for p in lib.photos()} == {str(root / name), str(root / "plain.jpg")}
        assert [f.path for f in lib.folders()] == [str(root)]
        assert lib.trash([root / name]).failed == []
        assert not (root / name).exists()
        assert {p.path for p in lib.photos()} == {str(root / "plain.jpg")}


def test_each_computer_undoes_and_recovers_only_its_own_file_operations(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared journal holds every computer's operations: `undo` takes this
    computer's latest, refuses another's (its paths are that computer's), and
    recovery leaves another computer's unfinished entry alone (it may be running)."""
    from sqlalchemy import select

    from dino_desktop.core.db import JournalRow
    from dino_desktop.core.journal import PAYLOAD_VERSION, dump_payload
    from dino_desktop.core.progress import drive
    from dino_desktop.core.records import FileOpError

    root = tmp_path / "nas"
    root.mkdir()
    for i in range(3):
        imagegen.save_jpeg(root / f"IMG_{i}.jpg", seed=i, size=(64, 48))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "desk-a"))
    a = Library(pg_url)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "desk-b"))
    b = Library(pg_url)
    try:
        assert a.fileops.client and b.fileops.client and a.fileops.client != b.fileops.client
        drive(a.scan([root], embed=False))
        done = a.trash([root / "IMG_1.jpg"])
        assert done.failed == [] and not (root / "IMG_1.jpg").exists()
        with pytest.raises(FileOpError, match="nothing to undo"):
            b.undo()
        with pytest.raises(FileOpError, match="made on another computer"):
            b.undo(done.journal_id)
        # An entry of A's left unfinished: B does not touch it, A settles it.
        pending = dump_payload(
            {"version": PAYLOAD_VERSION, "status": "pending", "client": a.fileops.client,
             "items": []}
        )  # fmt: skip
        with a.sessions() as session, session.begin():
            row = JournalRow(created_at=datetime.now(), action="move", payload=pending)
            session.add(row)
            session.flush()
            open_id = row.id

        def status_of(entry: int) -> str:
            with a.sessions() as session:
                text_ = session.scalar(select(JournalRow.payload).where(JournalRow.id == entry))
            return str(json.loads(text_ or "{}")["status"])

        b.fileops.recover()
        assert status_of(open_id) == "pending"
        a.fileops.recover()
        assert status_of(open_id) != "pending"
        assert a.undo(done.journal_id).failed == [] and (root / "IMG_1.jpg").exists()
    finally:
        b.close()
        a.close()
