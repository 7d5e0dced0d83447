"""Concurrency: two writers on one library are refused, never interleaved; readers go on.

The library's write lock (core/lock.py) covers scans, embedding and every file
operation. A second *process* (or a second `Library` on the same folder) that
wants to write while one does is refused at once with a message naming what
holds the lock; reading (status, list, search) never waits. Whatever the
timing, the database stays sound and the library ends as one scan would leave it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import imagegen
import pytest

from dino_desktop.cli import main
from dino_desktop.core.library import Library
from dino_desktop.core.lock import LibraryLock
from dino_desktop.core.progress import drive
from dino_desktop.core.records import LibraryBusy

TESTS = Path(__file__).resolve().parents[1]


def _photos(root: Path, n: int) -> Path:
    for i in range(n):
        imagegen.save_jpeg(root / f"{i:03}.jpg", seed=i, size=(160, 120))
    return root


def _cli(*args: str, gate: tuple[int, int] | None = None) -> subprocess.Popen[str]:
    """The CLI in a subprocess. `gate` (told, go): pipe ends; the child writes a line to
    `told` when its scan reads its first photo (holding the lock), then waits until
    `go` is written to or closed. Synchronisation, not timing."""
    code = (
        "import os, sys, threading\n"
        "from dino_desktop.core import ingest\n"
        f"gate = {gate!r}\n"
        "if gate:\n"
        "    real, lock, opened = ingest._read_bytes, threading.Lock(), []\n"
        "    def held(path):\n"
        "        with lock:\n"
        "            if not opened:\n"
        "                os.write(gate[0], b'holding\\n')\n"
        "                os.read(gate[1], 1)\n"
        "                opened.append(True)\n"
        "        return real(path)\n"
        "    ingest._read_bytes = held\n"
        "from dino_desktop.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=gate or (),
    )


def _sound(db: Path) -> sqlite3.Connection:
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    return con


def test_a_second_library_on_the_same_folder_is_refused_while_one_writes(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "p", 3)
    gui = Library(tmp_path / "lib")
    cli = Library(tmp_path / "lib")
    with gui.lock.hold("scan"):
        with pytest.raises(LibraryBusy) as info:
            drive(cli.scan([str(photos)], embed=False))
        message = str(info.value)
        assert "busy" in message and "scan" in message and f"process {os.getpid()}" in message
        for write in (
            lambda: cli.trash([str(photos / "000.jpg")]),
            lambda: cli.move([str(photos / "000.jpg")], str(tmp_path)),
            lambda: cli.undo(),
        ):
            with pytest.raises(LibraryBusy):
                write()
        assert (photos / "000.jpg").exists()
        # Reading goes on.
        assert cli.status().images == 0 and list(cli.images()) == []
        # The holder itself may run several write jobs at once (the GUI trashes
        # while its scan runs): the lock is shared within one Library.
        drive(gui.scan([str(photos)], embed=False))
    # Released: the other one can write now.
    result = drive(cli.scan([str(photos)], embed=False))
    assert result.unchanged == 3
    gui.close()
    cli.close()


def test_the_lock_goes_with_a_killed_holder(tmp_path: Path) -> None:
    home = tmp_path / "lib"
    Library(home).close()
    code = (
        "import sys\n"
        "from dino_desktop.core.lock import LibraryLock\n"
        f"lock = LibraryLock({str(home)!r})\n"
        "lock.acquire('scan'); print('held', flush=True); sys.stdin.read()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,  # held open: the holder waits on it until killed
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    lock = LibraryLock(home)
    with pytest.raises(LibraryBusy, match=f"process {proc.pid}"):
        lock.acquire("scan")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdin is not None
    proc.stdin.close()
    with lock.hold("scan"):  # no stale lock after a crash
        assert lock.held
    assert not lock.held


def test_cli_scan_while_the_gui_scans_is_refused_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "p", 2)
    lib = str(tmp_path / "lib")
    gui = Library(lib)  # the GUI keeps its Library open all the time
    assert main(["--library", lib, "scan", str(photos), "--no-embed"]) == 0
    capsys.readouterr()
    with gui.lock.hold("scan"):
        assert main(["--library", lib, "scan", "--no-embed"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("dino-desktop: the library") and "busy" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        # The CLI's read commands keep working while the GUI writes.
        assert main(["--library", lib, "status", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["images"] == 2
        assert main(["--library", lib, "list", "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)) == 2
    gui.close()


def test_two_cli_scans_at_once_one_is_refused_and_the_library_is_whole(tmp_path: Path) -> None:
    n = 24
    photos = _photos(tmp_path / "p", n)
    home = tmp_path / "lib"
    args = ["--library", str(home), "scan", str(photos), "--no-embed", "--json"]
    told_r, told_w = os.pipe()
    go_r, go_w = os.pipe()
    first = _cli(*args, gate=(told_w, go_r))
    os.close(told_w)
    os.close(go_r)
    # The first scan holds the lock and waits in its first photo until we say go.
    assert os.read(told_r, 64) == b"holding\n"
    second = _cli(*args)
    out2, err2 = second.communicate(timeout=120)
    os.close(go_w)  # go on
    os.close(told_r)
    out1, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert json.loads(out1)["added"] == n
    assert second.returncode == 1 and out2 == ""
    assert "busy" in err2 and f"process {first.pid}" in err2 and "Traceback" not in err2
    con = _sound(home / "library.sqlite3")
    assert con.execute("SELECT count(*) FROM images WHERE status='ok'").fetchone()[0] == n
    con.close()
    again = _cli(*args)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert json.loads(out)["unchanged"] == n


def test_racing_scans_from_threads_leave_one_consistent_library(tmp_path: Path) -> None:
    """Two Library objects (as two processes would have) start scans together:
    each either finishes or is refused; the library is as one scan leaves it."""
    photos = _photos(tmp_path / "p", 12)
    home = tmp_path / "lib"
    outcomes: list[Any] = []
    barrier = threading.Barrier(3)

    def scan() -> None:
        barrier.wait(30)
        # Opened together too: a new library's schema is created once (db.open_engine).
        lib = Library(home)
        try:
            outcomes.append(drive(lib.scan([str(photos)], embed=False)))
        except LibraryBusy as exc:
            outcomes.append(exc)
        finally:
            lib.close()

    threads = [threading.Thread(target=scan) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    finished = [o for o in outcomes if not isinstance(o, LibraryBusy)]
    assert len(outcomes) == 3 and finished
    assert sum(r.added for r in finished) == 12
    con = _sound(home / "library.sqlite3")
    assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 12
    assert con.execute("SELECT count(DISTINCT relpath) FROM images").fetchone()[0] == 12
    con.close()
