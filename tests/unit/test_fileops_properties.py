"""Property tests (hypothesis) of the file operations: nothing is ever lost.

Random sequences of trash / move / export (copy, hardlink, symlink, move) /
undo on a small tree with name collisions, a hard-linked pair, a symlink and a
reference folder, with the system trash failing now and then. After every step:

* every original byte string still exists: in place, in the trash or at a
  destination;
* the reference folder is byte-for-byte and entry-for-entry unchanged;
* nothing is written outside the tree, its destinations and the trash;
* a failed trash is reported failed (never "done") and the file is still there.

At the end, undoing every operation (newest first) restores every original path
with its bytes (and symlink target) and leaves nothing else behind.

Examples: 25 by default, DINO_LONG_TESTS=1 runs 300 (RELIABILITY.md).
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dino_desktop.core import db, fileops, trash
from dino_desktop.core.export_plan import plan_export
from dino_desktop.core.fileops import FileOps
from dino_desktop.core.records import FileOpError, ReferenceFolderError

pytestmark = pytest.mark.skipif(
    sys.platform in ("darwin", "win32"), reason="exercises the freedesktop.org trash"
)

LONG = os.environ.get("DINO_LONG_TESTS") == "1"
EXAMPLES = 300 if LONG else 25

# Source files, relative to the tree: collisions (two x.jpg), a hard-linked pair, a symlink.
FILES = ["photos/a/x.jpg", "photos/b/x.jpg", "photos/a/y.jpg", "photos/b/z (1).jpg", "photos/z.jpg"]
HARD = ("photos/a/h.jpg", "photos/a/y.jpg")  # h is a second name of y
SYMLINK = ("photos/b/s.jpg", "photos/a/x.jpg")
REF = ["ref/r1.jpg", "ref/x.jpg"]
SOURCES = [*FILES, HARD[0], SYMLINK[0]]
DESTS = ["out", "out/deep", "photos/a", "photos/b"]
NAMES = ["Beach", "beach", "../escape", "con", "a/b", "", "x" * 150, "Ünïcode ☀"]


class Tree:
    """The tree on disk, its library database, and what must never be lost."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "tree"
        self.trash = base / "xdg-data" / "Trash"
        self.data: dict[str, bytes] = {}
        for i, rel in enumerate([*FILES, *REF]):
            p = self.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(f"{rel}\n".encode() + bytes([i]) * (500 + 37 * i))
            self.data[rel] = p.read_bytes()
        os.link(self.root / HARD[1], self.root / HARD[0])
        self.data[HARD[0]] = self.data[HARD[1]]
        (self.root / SYMLINK[0]).symlink_to(self.root / SYMLINK[1])
        (self.root / "out" / "deep").mkdir(parents=True)
        self.engine = db.open_engine(base / "lib.sqlite3")
        self.sessions = db.session_factory(self.engine)
        with self.sessions() as session, session.begin():
            for folder, ref in (("photos", False), ("ref", True)):
                session.add(
                    db.Folder(
                        path=str(self.root / folder), is_reference=ref, added_at=datetime.now()
                    )
                )
        self.ops = FileOps(self.sessions)
        self.initial = self.snapshot()
        self.ref_before = self.snapshot("ref")

    def path(self, rel: str) -> str:
        return str(self.root / rel)

    def snapshot(self, under: str = "") -> dict[str, Any]:
        """Every entry below `under`: bytes for files, ("->", target) for symlinks."""
        out: dict[str, Any] = {}
        top = self.root / under if under else self.root
        for dirpath, dirs, files in os.walk(top):
            for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
                p = Path(dirpath, name)
                rel = str(p.relative_to(self.root))
                out[rel] = ("->", os.readlink(p)) if p.is_symlink() else p.read_bytes()
            for d in dirs:
                out.setdefault(str(Path(dirpath, d).relative_to(self.root)) + "/", "dir")
        return out

    def check(self) -> None:
        blobs = [v for v in self.snapshot().values() if isinstance(v, bytes)]
        if self.trash.exists():
            blobs += [p.read_bytes() for p in (self.trash / "files").rglob("*") if p.is_file()]
        for rel, blob in self.data.items():
            assert blob in blobs, f"the bytes of {rel} are lost"
        assert self.snapshot("ref") == self.ref_before, "a reference folder changed"
        # Nothing outside the tree, the library database and the trash.
        allowed = {"tree", "xdg-data", "home"}
        extra = {n for n in os.listdir(self.base) if not n.startswith("lib.sqlite3")} - allowed
        assert not extra, extra
        assert set(os.listdir(self.root)) <= {"photos", "ref", "out"}

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def _tree() -> Iterator[Tree]:
    base = Path(tempfile.mkdtemp(prefix="dino-prop-"))
    old = {k: os.environ.get(k) for k in ("XDG_DATA_HOME", "HOME")}
    os.environ["XDG_DATA_HOME"] = str(base / "xdg-data")
    (base / "home").mkdir()
    os.environ["HOME"] = str(base / "home")
    tree = Tree(base)
    try:
        yield tree
    finally:
        tree.close()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(base, ignore_errors=True)


sources = st.lists(st.sampled_from([*SOURCES, *REF]), min_size=1, max_size=4, unique=True)
trash_fault = st.sampled_from([None, None, "no-trash", "fake-success"])
step = st.one_of(
    st.tuples(st.just("trash"), sources, trash_fault),
    st.tuples(st.just("move"), sources, st.sampled_from(DESTS)),
    st.tuples(
        st.just("export"),
        st.lists(st.tuples(st.sampled_from(NAMES), sources), min_size=1, max_size=3),
        st.sampled_from(fileops.EXPORT_MODES),
    ),
    st.tuples(st.just("undo"), st.none(), st.none()),
)


def _do(tree: Tree, kind: str, arg: Any, opt: Any, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run one step; True if it was journaled (so it can be undone)."""
    refs = {tree.path(r) for r in REF}
    if kind == "undo":
        try:
            tree.ops.undo()
        except FileOpError:
            return False
        return False
    if kind == "trash":
        paths = [tree.path(r) for r in arg]
        present = [p for p in paths if os.path.lexists(p)]
        with monkeypatch.context() as mp:
            if opt == "no-trash":

                def fail(path: str) -> None:
                    raise OSError(errno.EXDEV, "no trash on this device", path)

                mp.setattr(trash, "send_to_trash", fail)
            elif opt == "fake-success":
                mp.setattr(trash, "send_to_trash", lambda path: None)
            try:
                result = tree.ops.trash(paths)
            except ReferenceFolderError:
                assert refs & set(paths)
                return False
        if opt is not None:
            # Reported failed, never done, and nothing deleted instead.
            assert result.done == []
            assert {p for p, _ in result.failed} == set(paths)
            assert all(os.path.lexists(p) for p in present)
        return True
    if kind == "move":
        paths = [tree.path(r) for r in arg]
        try:
            tree.ops.move(paths, tree.path(opt))
        except ReferenceFolderError:
            assert refs & set(paths)
            return False
        return True
    groups = [(name, [tree.path(r) for r in rels]) for name, rels in arg]
    plan = plan_export(groups, tree.path("out"))
    for _src, dest in plan:
        # Sanitised names: every destination stays inside DEST, one folder deep.
        assert os.path.dirname(os.path.dirname(dest)) == tree.path("out")
    try:
        tree.ops.export(plan, opt)
    except ReferenceFolderError:
        assert opt == "move" and refs & {s for s, _ in plan}
        return False
    return True


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=not LONG,
)
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_random_file_operations_never_lose_a_byte_and_undo_restores_every_path(
    steps: list[tuple[str, Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with _tree() as tree:
        for kind, arg, opt in steps:
            _do(tree, kind, arg, opt, monkeypatch)
            tree.check()
        # Undo everything, newest first.
        for _ in range(len(steps) + 1):
            try:
                result = tree.ops.undo()
            except FileOpError as exc:
                assert "nothing to undo" in str(exc)
                break
            assert not [f for f in result.failed if "interrupted" in f[1]]
            tree.check()
        assert tree.snapshot() == tree.initial
        assert os.path.samefile(tree.path(HARD[0]), tree.path(HARD[1]))
