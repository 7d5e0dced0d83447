"""Live folders: the watcher and the watch loop (core/watcher.py, core/live.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import imagegen
import weightsgen
from sqlalchemy import func, select

from dino_desktop.core import db
from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, drive
from dino_desktop.core.records import WatchEvent
from dino_desktop.core.watcher import FolderWatcher

FAST = {"debounce": 0.2}


def _lib(tmp_path: Path, weights: Path | None = None) -> Library:
    lib: Library = weightsgen.tiny_library(tmp_path, weights)
    return lib


def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _rows(lib: Library) -> dict[str, tuple[int, int]]:
    return {r.path: (r.id, r.size) for r in lib.images()}


def _row_count(lib: Library) -> int:
    with lib.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(db.ImageRow)) or 0)


@contextmanager
def watching(lib: Library, **options: Any) -> Iterator[list[WatchEvent]]:
    events: list[WatchEvent] = []
    cancel = CancelToken()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            drive(lib.watch(on_event=events.append, cancel=cancel, **{**FAST, **options}))
        except BaseException as exc:  # surfaced in the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # "watching" comes once the catch-up scan is done.
    _until(lambda: any(e.event == "watching" for e in events) or bool(errors))
    try:
        yield events
    finally:
        cancel.cancel()
        thread.join(timeout=20)
        assert not thread.is_alive(), "the watch loop did not end on cancel"
        if errors:
            raise errors[0]
    assert events[-1].event == "stopped"


def test_create_modify_move_and_delete_are_picked_up_without_rescanning_by_hand(
    tmp_path: Path, tiny_weights: Path
) -> None:
    root = tmp_path / "photos"
    imagegen.save_jpeg(root / "a.jpg", seed=1, size=(96, 64))
    imagegen.save_jpeg(root / "b.jpg", seed=2, size=(96, 64))
    lib = _lib(tmp_path, tiny_weights)
    drive(lib.scan([root]))
    before = _rows(lib)
    with watching(lib) as events:
        imagegen.save_jpeg(root / "new.jpg", seed=3, size=(96, 64))
        _until(lambda: str(root / "new.jpg") in _rows(lib))
        _until(lambda: lib.pending_count() == 0)
        hits = lib.search(root / "new.jpg", top=1)
        assert hits[0].path == str(root / "new.jpg")

        imagegen.save_jpeg(root / "a.jpg", seed=7, size=(128, 96))  # edited in place
        _until(lambda: _rows(lib)[str(root / "a.jpg")][1] == os.path.getsize(root / "a.jpg"))

        (root / "sub").mkdir()
        (root / "b.jpg").rename(root / "sub" / "b2.jpg")
        _until(lambda: str(root / "sub" / "b2.jpg") in _rows(lib))
        assert _rows(lib)[str(root / "sub" / "b2.jpg")][0] == before[str(root / "b.jpg")][0]

        (root / "new.jpg").unlink()
        _until(lambda: str(root / "new.jpg") not in _rows(lib))
    kinds = [e.event for e in events]
    assert {"added", "updated", "moved", "removed", "embedded"} <= set(kinds)
    assert _row_count(lib) == 2


def test_a_slowly_written_file_is_indexed_once_after_it_is_complete(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    imagegen.save_jpeg(tmp_path / "src.jpg", seed=4, size=(640, 480))
    data = (tmp_path / "src.jpg").read_bytes()
    lib = _lib(tmp_path)
    lib.add_folder(root)
    with watching(lib) as events:
        with open(root / "slow.jpg", "wb") as handle:
            for start in range(0, len(data), len(data) // 4 + 1):
                handle.write(data[start : start + len(data) // 4 + 1])
                handle.flush()
                time.sleep(0.8)  # several debounce periods between chunks
        _until(lambda: str(root / "slow.jpg") in _rows(lib))
        time.sleep(1.0)
    assert [e.event for e in events if e.path == str(root / "slow.jpg")] == ["added"]
    record = next(r for r in lib.images() if r.path == str(root / "slow.jpg"))
    assert record.status == "ok" and record.size == len(data)


def test_a_flood_of_new_files_and_a_rename_cycle_lose_no_row_and_make_no_duplicate(
    tmp_path: Path,
) -> None:
    root, staging = tmp_path / "photos", tmp_path / "staging"
    root.mkdir()
    for i in range(300):
        imagegen.save_jpeg(staging / f"f{i:04d}.jpg", seed=i, size=(48, 32))
    imagegen.save_jpeg(root / "a.jpg", seed=999, size=(48, 32))
    lib = _lib(tmp_path)
    drive(lib.scan([root]))
    a_id = _rows(lib)[str(root / "a.jpg")][0]
    with watching(lib):
        shutil.copytree(staging, root / "copied")
        (root / "a.jpg").rename(root / "b.jpg")
        (root / "b.jpg").rename(root / "a.jpg")
        _until(lambda: _row_count(lib) == 301, timeout=60)
        time.sleep(1.0)
    assert _row_count(lib) == 301
    assert _rows(lib)[str(root / "a.jpg")][0] == a_id


def test_a_folder_that_vanishes_while_watched_goes_offline_and_comes_back(
    tmp_path: Path,
) -> None:
    root = tmp_path / "drive" / "photos"
    for i in range(3):
        imagegen.save_jpeg(root / f"p{i}.jpg", seed=i, size=(48, 32))
    lib = _lib(tmp_path)
    drive(lib.scan([root]))
    with watching(lib) as events:
        (tmp_path / "drive").rename(tmp_path / "unplugged")
        _until(lambda: any(e.event == "offline" for e in events))
        assert _row_count(lib) == 3
        assert next(f for f in lib.folders()).offline
        (tmp_path / "unplugged").rename(tmp_path / "drive")
        imagegen.save_jpeg(root / "p9.jpg", seed=9, size=(48, 32))
        _until(lambda: str(root / "p9.jpg") in _rows(lib))
    assert _row_count(lib) == 4 and next(f for f in lib.folders()).offline is None


def test_polled_folders_are_rescanned_on_their_interval(tmp_path: Path) -> None:
    root = tmp_path / "share"
    root.mkdir()
    lib = _lib(tmp_path)
    lib.add_folder(root)
    with watching(lib, force_polling=True, poll_interval=1.0) as events:
        imagegen.save_jpeg(root / "x.jpg", seed=1, size=(48, 32))
        os.utime(root / "x.jpg", (time.time() - 60, time.time() - 60))
        _until(lambda: str(root / "x.jpg") in _rows(lib))
    assert [e.event for e in events if e.path == str(root / "x.jpg")] == ["added"]


def test_hidden_files_excluded_folders_and_other_files_are_ignored(tmp_path: Path) -> None:
    root, nested, home = tmp_path / "p", tmp_path / "p" / "nested", tmp_path / "p" / "lib"
    watcher = FolderWatcher([(1, str(root)), (2, str(nested))], exclude=[str(home)])
    assert watcher.owner(str(root / "x.jpg")) == 1
    assert watcher.owner(str(nested / "y.jpg")) == 2
    assert watcher.owner(str(root / ".hidden" / "x.jpg")) is None
    assert watcher.owner(str(root / ".x.jpg")) is None
    assert watcher.owner(str(home / "thumbs" / "a.jpg")) is None
    assert watcher.owner(str(tmp_path / "elsewhere.jpg")) is None
    watcher.note(str(root / "notes.txt"), is_dir=False, kind="created")
    watcher.note(str(root / ".x.jpg"), is_dir=False, kind="created")
    assert not watcher.busy()
    watcher.note(str(root / "x.jpg"), is_dir=False, kind="created")
    assert watcher.busy()


def test_the_headless_watcher_ends_cleanly_on_sigint(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    imagegen.save_jpeg(root / "a.jpg", seed=1, size=(48, 32))
    env = {**os.environ, "DINO_DESKTOP_HOME": str(tmp_path / "lib")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dino_desktop", "watch", str(root), "--json", "--no-embed"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline()]  # the catch-up scan's "added"
    lines.append(proc.stdout.readline())  # {"event": "watching", ...}
    imagegen.save_jpeg(root / "b.jpg", seed=2, size=(48, 32))
    lines.append(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in [*lines, *out.splitlines()] if line.strip()]
    assert events[:2] == [
        {"event": "added", "path": str(root / "a.jpg")},
        {"event": "watching", "count": 1},
    ]
    assert {"event": "added", "path": str(root / "b.jpg")} in events
    assert events[-1] == {"event": "stopped"}
    assert "Traceback" not in err
