"""Crash safety: SIGKILL a scan or a move-export at random points, again and again.

A *zygote* process imports everything once (torch included) and forks one child
per attempt, so an attempt costs a fork instead of a 10-second interpreter start.
Each child runs the real code (`Library.scan` with the tiny test model, or
`FileOps.export(..., "move")` and `undo`) and is killed with SIGKILL:

* at the k-th SQL statement or commit (inside transactions and just before
  their commits), or at the k-th progress step, chosen at random; or
* by its parent after a random delay (asynchronously, anywhere).

Scan: after every kill the next attempt reopens the library exactly as the app
does (WAL recovery), checks ``PRAGMA integrity_check`` and the foreign keys, and
resumes the scan; at the end the rows and vectors equal those of an
uninterrupted scan of the same photos in another library.

Export by move: after a kill at any point (file links, unlinks, copies, fsyncs,
journal writes), every original byte string still exists at its source or in
the destination, and undo (itself killed at random points, then run again)
puts every file back at its source, exactly once, with nothing left behind.

Counts: DINO_LONG_TESTS=1 runs the long variants (see RELIABILITY.md).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagegen
import numpy as np
import pytest
import weightsgen

pytestmark = pytest.mark.skipif(
    sys.platform in ("darwin", "win32"), reason="fork + SIGKILL harness (POSIX), freedesktop trash"
)

TESTS = Path(__file__).resolve().parents[1]
LONG = os.environ.get("DINO_LONG_TESTS") == "1"
SCAN_KILLS = 24 if LONG else 6
EXPORT_KILLS = 40 if LONG else 10
N_PHOTOS = 36 if LONG else 12

_ZYGOTE = r"""
import json, os, random, shutil, signal, sys, time, traceback
import weightsgen
import timm, timm.models.vision_transformer  # imported once here, not in every child
weightsgen.register_tiny_model()
from sqlalchemy import event
from dino_desktop import cli
from dino_desktop.core import db, fileops, library, scanner
from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive

def killer(kill):
    state = {"n": 0}
    def tick(*_a, **_k):
        state["n"] += 1
        if kill is not None and state["n"] == kill:
            os.kill(os.getpid(), signal.SIGKILL)
    return tick, state

def arm(cmd, engine=None):
    # Deterministic kill points. "fs": each file-system call the operations make
    # (before and after it) and each SQL statement and commit; "sql": SQL only;
    # "call": every Python and C function call of the main thread (sys.setprofile),
    # the deterministic stand-in for a kill at a random moment.
    tick, state = killer(cmd.get("at"))
    where = cmd.get("where")
    if where in ("sql", "fs") and engine is not None:
        event.listen(engine, "before_cursor_execute", tick)
        event.listen(engine, "commit", tick)
    if where == "fs":
        for mod, name in ((os, "link"), (os, "unlink"), (os, "symlink"), (os, "replace"),
                          (os, "rename"), (os, "fsync"), (os, "makedirs"), (os, "rmdir"),
                          (shutil, "copyfile"), (shutil, "copystat")):
            real = getattr(mod, name)
            def wrapped(*a, _real=real, **k):
                tick()
                out = _real(*a, **k)
                tick()
                return out
            setattr(mod, name, wrapped)
    if where == "call":
        sys.setprofile(lambda frame, event, arg: tick() if event in ("call", "c_call") else None)
    return tick, state

def check(engine):
    with engine.connect() as conn:
        ok = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
        fk = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        half = conn.exec_driver_sql(
            "SELECT count(*) FROM images WHERE status='ok' AND (sha256 IS NULL OR width IS NULL)"
        ).scalar()
    return {"integrity": ok, "fk": len(fk), "half_rows": half}

def run_scan(cmd):
    import torch
    torch.set_num_threads(1)
    scanner.COMMIT_EVERY = 3          # many transactions: many places to die between
    library.EMBED_COMMIT_EVERY = 4
    lib = Library(cmd["home"], model=weightsgen.TINY, weights=cmd["weights"])
    lib.settings.precision = "fp32"  # vectors are compared to a reference at 2e-5
    report = check(lib.engine)
    tick, state = arm(cmd, lib.engine)
    step = tick if cmd.get("where") == "step" else (lambda _p: None)
    result = drive(lib.scan([cmd["folder"]]), step)
    sys.setprofile(None)
    report.update(events=state["n"], pending=result.pending, failed=len(result.failed))
    return report

def no_exdev(cmd):
    if cmd.get("exdev"):
        # Another device: os.link fails, so moves copy, fsync and link-or-reserve.
        import errno
        def no_link(*_a, **_k):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        os.link = no_link

def run_fileop(cmd):
    engine = db.open_engine(__import__("pathlib").Path(cmd["db"]))
    report = check(engine)
    ops = fileops.FileOps(db.session_factory(engine))
    tick, state = arm(cmd, engine)
    no_exdev(cmd)
    try:
        if cmd["op"] == "export":
            ops.export([tuple(p) for p in cmd["plan"]], cmd["mode"])
        elif cmd["op"] == "trash":
            ops.trash(cmd["paths"])
        else:
            report["failed"] = ops.undo().failed
    except fileops.FileOpError as exc:
        report["error"] = str(exc)
    sys.setprofile(None)
    report["events"] = state["n"]
    return report

def run_cli(cmd):
    # The CLI as `dino-desktop ...` runs it (argument parsing, Library, the job under
    # its progress bar), armed once the library's database is open.
    out = os.open(cmd["out"] + ".stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)  # the CLI prints; our own stdout is the zygote's pipe
    armed = {}
    real_engine = library.open_engine
    def open_engine(*a, **k):
        engine = real_engine(*a, **k)
        armed.update(state=arm(cmd, engine)[1])
        return engine
    library.open_engine = open_engine
    code = cli.main(cmd["argv"])
    sys.setprofile(None)
    sys.stdout.flush()
    return {"code": code, "events": armed["state"]["n"] if armed else 0}

for line in sys.stdin:
    cmd = json.loads(line)
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            run = {"scan": run_scan, "cli": run_cli}.get(cmd["op"], run_fileop)
            out = run(cmd)
            with open(cmd["out"], "w") as f:
                json.dump(out, f)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    print(json.dumps({"killed": killed, "code": code}), flush=True)
"""


class Zygote:
    """One pre-imported process that forks a child per attempt (see the module doc)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.n = 0

    def run(self, **cmd: Any) -> tuple[bool, dict[str, Any] | None]:
        """(killed, what the child reported, None when it was killed)."""
        self.n += 1
        out = self.tmp / f"attempt-{self.n}.json"
        cmd["out"] = str(out)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the zygote died"
        status = json.loads(line)
        if status["killed"]:
            return True, None
        assert status["code"] == 0, f"attempt {self.n} failed: {cmd}"
        return False, json.loads(out.read_text())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[Zygote]:
    z = Zygote(tmp_path)
    yield z
    z.close()


# ---- scan ----------------------------------------------------------------------


def _library_state(home: Path) -> tuple[dict[str, tuple[Any, ...]], dict[str, np.ndarray]]:
    con = sqlite3.connect(home / "library.sqlite3")
    try:
        rows = {
            rel: tuple(rest)
            for rel, *rest in con.execute(
                "SELECT relpath, size, mtime_ns, sha256, phash, width, height, orientation,"
                " taken_at, camera, status, error, format, dev, inode FROM images"
            )
        }
        vectors = {
            rel: np.frombuffer(blob, dtype=np.float32)
            for rel, blob in con.execute(
                "SELECT i.relpath, e.vector FROM embeddings e JOIN images i ON i.id = e.image_id"
            )
        }
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    return rows, vectors


@pytest.fixture
def scan_photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for i in range(N_PHOTOS):
        sub = root / (f"day {i % 3}" if i % 4 else "")
        imagegen.save_jpeg(sub / f"IMG_{i:03}.jpg", seed=i, size=(320, 240), orientation=1 + i % 8)
    imagegen.bad_files(root / "bad")  # failures are rows too, and must survive kills alike
    imagegen.save_as(root / "x.png", "PNG", seed=99)
    return root


def test_repeated_sigkills_during_a_scan_end_as_an_uninterrupted_scan(
    tmp_path: Path, zygote: Zygote, scan_photos: Path
) -> None:
    weightsgen.register_tiny_model()
    weights = weightsgen.write_meta_checkpoint(tmp_path / "tiny.pth", weightsgen.TINY)
    common = {"op": "scan", "folder": str(scan_photos), "weights": str(weights)}

    # The reference: one uninterrupted scan (counting its SQL events and steps).
    ref_home = tmp_path / "ref"
    killed, ref = zygote.run(home=str(ref_home), where="sql", at=None, **common)
    assert not killed and ref is not None and ref["pending"] == 0
    total_sql = ref["events"]
    assert total_sql > 30  # many transactions to die in (the new schema is one of them)

    # The number of function calls of one scan, for the "call" kill points.
    killed, counted = zygote.run(home=str(tmp_path / "count"), where="call", at=None, **common)
    assert not killed and counted is not None
    total_calls = counted["events"]

    ref_rows, ref_vectors = _library_state(ref_home)
    assert {r for r, v in ref_rows.items() if v[9] == "failed"}  # bad files are rows too

    rng = random.Random(1234)
    kills, campaigns = 0, 1
    home = tmp_path / "lib-1"
    while True:
        # Kill, resume, kill... A resumed scan that gets to the end closes a
        # campaign (its library must equal the reference); once enough kills
        # are done, one last uninterrupted resume closes the last one.
        if kills >= SCAN_KILLS:
            cmd: dict[str, Any] = {}
        elif rng.random() < 0.25:
            cmd = {"where": "call", "at": rng.randint(1, total_calls)}
        else:
            cmd = {"where": rng.choice(["sql", "sql", "step"]), "at": rng.randint(1, total_sql)}
        killed, report = zygote.run(home=str(home), **common, **cmd)
        if killed:
            kills += 1
            continue
        assert report is not None
        # Every attempt first checks the state the previous kill left.
        assert (report["integrity"], report["fk"], report["half_rows"]) == ("ok", 0, 0)
        assert report["pending"] == 0
        rows, vectors = _library_state(home)
        assert rows == ref_rows
        assert set(vectors) == set(ref_vectors)
        for rel, vec in vectors.items():
            # Batches are composed differently after a kill; fp32 matmuls then differ
            # in the last bits only.
            np.testing.assert_allclose(vec, ref_vectors[rel], atol=2e-5, err_msg=rel)
        if kills >= SCAN_KILLS:
            break
        campaigns += 1
        home = tmp_path / f"lib-{campaigns}"
    print(f"scan: {kills} kills in {campaigns} campaigns, {total_sql} SQL events per scan")


# ---- file operations killed anywhere, then undone --------------------------------------

OPS = ("copy", "hardlink", "symlink", "move", "trash")
ROUNDS = 40 if LONG else 4  # per operation
CLI_KILLS = 6 if LONG else 2  # per export mode


def _tree(root: Path) -> tuple[list[tuple[str, str]], dict[str, bytes], dict[str, str], Path]:
    """Sources with name collisions, a hard-linked pair, a symlink and companion files;
    a plan of the photos into DEST (their companions go with them)."""
    from dino_desktop.core.export_plan import plan_export

    src = root / "src"
    data: dict[str, bytes] = {}
    links: dict[str, str] = {}
    for i in range(8):
        # The same names in two folders: they collide in one cluster folder.
        p = src / f"d{i % 2}" / f"IMG_{i // 2}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(2000 + i * 300))
        data[str(p)] = p.read_bytes()
    hard = src / "d0" / "hard.jpg"
    os.link(src / "d0" / "IMG_0.jpg", hard)
    data[str(hard)] = hard.read_bytes()
    sym = src / "d1" / "sym.jpg"
    sym.symlink_to(src / "d1" / "IMG_1.jpg")
    links[str(sym)] = os.readlink(sym)
    photos = sorted([*data, *links])
    # Companion files (a RAW, an XMP, a Live Photo video): each group goes whole.
    for name in (c for group in GROUPS for c in group[1:]):
        p = src / "d1" / name
        p.write_bytes(os.urandom(1500))
        data[str(p)] = p.read_bytes()
    dest = root / "dest"
    (dest / "Beach").mkdir(parents=True)
    (dest / "Beach" / "IMG_0.jpg").write_bytes(b"already there")  # a collision on disk
    paths = photos
    clusters = [("Beach", paths[::2]), ("Mountains/../..", paths[1::2])]
    return plan_export(clusters, str(dest)), data, links, dest


# Photo items of the tree in src/d1: each photo with its companion files.
GROUPS = (
    ("IMG_0.jpg", "IMG_0.CR3", "IMG_0.CR3.xmp"),
    ("IMG_2.jpg", "IMG_2.MOV"),
    ("IMG_3.jpg", "IMG_3.jpg.json"),
)


def _check_groups_whole(root: Path) -> None:
    """After a trash or move was interrupted and settled, each photo item is whole at
    its source or gone from it whole: no companion left behind, none gone alone."""
    for group in GROUPS:
        here = [os.path.lexists(root / "src" / "d1" / name) for name in group]
        assert all(here) or not any(here), f"split: {dict(zip(group, here, strict=True))}"


def _all_bytes(root: Path) -> list[bytes]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            if not p.is_symlink():
                out.append(p.read_bytes())
    return out


def _check_nothing_lost(root: Path, data: dict[str, bytes], trash: Path) -> None:
    present = _all_bytes(root) + _all_bytes(trash)
    for path, blob in data.items():
        assert blob in present, f"the bytes of {path} are gone"


def _check_restored(
    root: Path,
    data: dict[str, bytes],
    links: dict[str, str],
    dest: Path,
    nlinks: dict[str, int],
    exdev: bool,
) -> None:
    for path, blob in data.items():
        assert Path(path).read_bytes() == blob, path
        # Copied across devices, a hard-linked pair comes back as two files.
        nlink = os.lstat(path).st_nlink
        assert nlink <= nlinks[path] if exdev else nlink == nlinks[path], f"extra name: {path}"
    for path, target in links.items():
        assert os.readlink(path) == target
    left = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert left == ["Beach", os.path.join("Beach", "IMG_0.jpg")], left
    assert (dest / "Beach" / "IMG_0.jpg").read_bytes() == b"already there"
    # Nothing written outside the tree (the trash may hold a copy made across devices).
    assert sorted(os.listdir(root)) == ["dest", "lib.sqlite3", *_sqlite_side(root), "src"]


def _sqlite_side(root: Path) -> list[str]:
    return sorted(n for n in os.listdir(root) if n.startswith("lib.sqlite3") and n != "lib.sqlite3")


def _journal(db_path: Path) -> list[tuple[int, dict[str, Any], bool]]:
    con = sqlite3.connect(db_path)
    try:
        return [
            (entry_id, json.loads(payload), undone is not None)
            for entry_id, payload, undone in con.execute(
                "SELECT id, payload, undone_at FROM journal ORDER BY id"
            )
        ]
    finally:
        con.close()


def _check_settled(db_path: Path, *roots: Path) -> None:
    """No entry says "pending" (each is done, cancelled or "interrupted", told apart),
    no item is left unaccounted for, and none of our temporary files is left."""
    for entry_id, payload, _undone in _journal(db_path):
        assert payload["status"] in ("done", "interrupted", "cancelled"), (entry_id, payload)
        assert (payload.get("undo") or {}).get("status") != "pending", entry_id
        open_items = [it for it in payload["items"] if it["status"] in ("pending", "unknown")]
        assert open_items == [], (entry_id, open_items)
    for root in roots:
        assert sorted(root.rglob(".dino-*")) == []


def _check_all_undone(db_path: Path, trash: Path) -> None:
    entries = _journal(db_path)
    assert entries and all(undone for _, _, undone in entries)
    assert all(p["undo"]["status"] == "done" for _, p, _ in entries)
    # No broken entry in the system trash (Send2Trash writes the info first).
    info = trash / "info"
    if info.exists():
        for entry in info.iterdir():
            assert os.path.lexists(trash / "files" / entry.name[: -len(".trashinfo")]), entry


def _op_cmd(op: str, plan: list[list[str]], sources: list[str]) -> dict[str, Any]:
    if op == "trash":
        return {"op": "trash", "paths": sources}
    return {"op": "export", "plan": plan, "mode": op}


@pytest.mark.parametrize("op", OPS)
def test_a_file_operation_killed_anywhere_then_undone_leaves_nothing_behind(
    tmp_path: Path, zygote: Zygote, op: str
) -> None:
    """Export (each mode) or trash, SIGKILLed at a deterministic point, then (every other
    round) another export into the same DEST, then undo (itself killed now and then)
    until nothing is left to undo: every source is back byte for byte with its names,
    DEST holds only what was there before, the journal tells what happened, and no
    temporary file is left."""
    rng = random.Random(OPS.index(op) * 1000 + 7)
    trash = tmp_path / "xdg-data" / "Trash"
    # Uninterrupted runs count the kill points of each kind.
    events = {}
    for where in ("fs", "call"):
        root = tmp_path / f"count-{where}"
        plan, data, links, _dest = _fresh(root)
        killed, report = zygote.run(
            db=str(root / "lib.sqlite3"),
            where=where,
            at=None,
            **_op_cmd(op, plan, sorted([*data, *links])),
        )
        assert not killed and report is not None and "error" not in report
        events[where] = report["events"]
    assert events["fs"] > 30
    kills = 0
    for n in range(ROUNDS):
        root = tmp_path / f"round-{n}"
        plan, data, links, dest = _fresh(root)
        sources = sorted([*data, *links])
        nlinks = {p: os.lstat(p).st_nlink for p in data}
        db_path = root / "lib.sqlite3"
        # Across devices a move copies, and a copy reserves its name with a placeholder.
        exdev = op in ("move", "copy") and n % 3 == 2
        where = "call" if n % 4 == 3 else "fs"
        cmd: dict[str, Any] = {"where": where, "at": rng.randint(1, events[where])}
        killed, _ = zygote.run(db=str(db_path), exdev=exdev, **_op_cmd(op, plan, sources), **cmd)
        kills += killed
        _check_nothing_lost(root, data, trash)
        if n % 2 == 1:
            # Another command before the undo: it first settles the killed entry, so
            # the copies it writes (same sources, same DEST) are never taken for the
            # killed operation's, nor the reverse.
            killed, report = zygote.run(op="export", db=str(db_path), plan=plan, mode="copy")
            assert not killed and report is not None
            _check_settled(db_path, root)
            if op in ("trash", "move"):
                _check_groups_whole(root)
        if rng.random() < 0.5:
            killed, _ = zygote.run(
                op="undo", db=str(db_path), exdev=exdev, where="fs", at=rng.randint(1, 60)
            )
            kills += killed
            _check_nothing_lost(root, data, trash)
        for _ in range(4):  # newest first, until nothing is left
            killed, report = zygote.run(op="undo", db=str(db_path), exdev=exdev)
            assert not killed and report is not None and report["integrity"] == "ok"
            if "error" in report:
                assert "nothing to undo" in report["error"]
                break
            assert report["failed"] == [], report  # every item accounted for and undone
        else:
            pytest.fail(f"round {n}: an entry stays open: {_journal(db_path)}")
        _check_restored(root, data, links, dest, nlinks, exdev)
        _check_settled(db_path, root)
        if _journal(db_path):  # empty when the kill came before the first journal commit
            _check_all_undone(db_path, trash)
    assert kills >= ROUNDS // 2
    print(f"{op}: {kills} kills in {ROUNDS} rounds, {events} kill points per run")


def _fresh(root: Path) -> tuple[list[list[str]], dict[str, bytes], dict[str, str], Path]:
    from dino_desktop.core import db

    root.mkdir(parents=True)
    plan, data, links, dest = _tree(root)
    db.open_engine(root / "lib.sqlite3").dispose()
    return [list(p) for p in plan], data, links, dest


# ---- the CLI: export-clusters killed, then undo ---------------------------------------


def _undo_until_nothing_left(cli: Any) -> None:
    """`dino-desktop undo` (not killed), newest entry first, until nothing is left."""
    for _ in range(4):
        killed, report = cli("undo")
        assert not killed and report is not None
        if report["code"] != 0:  # "nothing to undo"
            return
    pytest.fail("an entry stays open")


def test_cli_export_clusters_killed_then_undo_leaves_dest_empty(
    tmp_path: Path, zygote: Zygote
) -> None:
    """`dino-desktop --library L export-clusters DEST --mode M` SIGKILLed at a deterministic
    point, then `dino-desktop undo` until nothing is left: DEST holds nothing, the
    photos are unchanged, the journal says every entry was undone, no temporary file."""
    weightsgen.register_tiny_model()
    weights = weightsgen.write_meta_checkpoint(tmp_path / "tiny.pth", weightsgen.TINY)
    photos = tmp_path / "photos"
    for i in range(8):
        imagegen.save_jpeg(photos / f"d{i % 2}" / f"IMG_{i}.jpg", seed=i, size=(96, 72))
    before = {p: p.read_bytes() for p in photos.rglob("*.jpg")}
    home = tmp_path / "lib"
    base = ["--library", str(home), "--model", weightsgen.TINY, "--weights", str(weights)]

    def cli(*args: str, **cmd: Any) -> tuple[bool, dict[str, Any] | None]:
        return zygote.run(op="cli", argv=[*base, *args], **cmd)

    for args in (("scan", str(photos)), ("cluster", "--k", "2")):
        killed, report = cli(*args)
        assert not killed and report is not None and report["code"] == 0, args
    trash = tmp_path / "xdg-data" / "Trash"
    rng = random.Random(5)
    kills = 0
    for mode in ("copy", "hardlink", "symlink"):
        dest = tmp_path / f"out-{mode}"
        export = ("export-clusters", str(dest), "--mode", mode, "--json")
        killed, report = cli(*export, where="fs", at=None)  # counts the kill points
        assert not killed and report is not None and report["code"] == 0
        points = report["events"]
        killed, report = cli("undo")
        assert not killed and report is not None and report["code"] == 0
        for _ in range(CLI_KILLS):
            killed, _ = cli(*export, where="fs", at=rng.randint(1, points))
            kills += killed
            _undo_until_nothing_left(cli)
            assert not dest.exists() or not [p for p in dest.rglob("*") if not p.is_dir()]
            assert {p: p.read_bytes() for p in photos.rglob("*.jpg")} == before
            assert sorted(photos.rglob(".dino-*")) == []
            _check_settled(home / "library.sqlite3")
            _check_all_undone(home / "library.sqlite3", trash)
    assert kills >= CLI_KILLS


# ---- the CLI: a duplicate removal killed, then undo --------------------------------

DEDUPE_KILLS = 30 if LONG else 6
T_CRASH = __import__("datetime").datetime(2021, 3, 4, 5, 6, 7)


def test_cli_duplicate_removal_killed_then_undo_restores_every_byte(
    tmp_path: Path, zygote: Zygote
) -> None:
    """`duplicates --remove` (sidecar merge, memberships, trash: one journal entry)
    SIGKILLed at a deterministic file-system or SQL point, then `undo` until nothing is
    left: every photo is back byte for byte, no sidecar and no temporary file is left,
    and the journal says every entry was settled and undone."""
    from PIL import Image

    photos = tmp_path / "photos"
    img = imagegen.photo(320, 240, 600)
    imagegen.save_jpeg(photos / "keep.jpg", img)  # no metadata: the copy's date is carried
    imagegen.save_jpeg(
        photos / "copies" / "dated.jpg", img.resize((240, 180)), taken_at=T_CRASH, make="Cam"
    )
    imagegen.save_jpeg(photos / "copies" / "small.jpg", img.resize((160, 120), Image.LANCZOS))
    imagegen.save_jpeg(photos / "other.jpg", seed=601)
    (photos / "copies" / "other copy.jpg").write_bytes((photos / "other.jpg").read_bytes())
    before = {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()}
    home = tmp_path / "lib"
    base = ["--library", str(home)]

    def cli(*args: str, **cmd: Any) -> tuple[bool, dict[str, Any] | None]:
        return zygote.run(op="cli", argv=[*base, *args], **cmd)

    killed, report = cli("scan", str(photos), "--no-embed")
    assert not killed and report is not None and report["code"] == 0
    remove = ("duplicates", "--method", "phash", "--remove", "--json")
    killed, report = cli(*remove, where="fs", at=None)  # counts the kill points
    assert not killed and report is not None and report["code"] == 0
    points = report["events"]
    assert (photos / "keep.jpg.xmp").exists()  # the uninterrupted run merged the date
    trash = tmp_path / "xdg-data" / "Trash"
    rng = random.Random(11)
    kills = 0
    for attempt in range(DEDUPE_KILLS + 1):
        if attempt:  # the first round undoes the counting run
            killed, _ = cli(*remove, where="fs", at=rng.randint(1, points))
            kills += killed
        _undo_until_nothing_left(cli)
        killed, report = cli("scan", str(photos), "--no-embed")  # restored copies: rows again
        assert not killed and report is not None and report["code"] == 0
        now = {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()}
        assert now == before, sorted(set(now) ^ set(before))
        assert sorted(photos.rglob(".dino-*")) == []
        _check_settled(home / "library.sqlite3")
        _check_all_undone(home / "library.sqlite3", trash)
    assert kills >= DEDUPE_KILLS // 2
