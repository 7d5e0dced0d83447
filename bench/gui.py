"""Benchmark: the browse page with 100,000 photos, and the GUI's responsiveness during a scan.

Builds a library of N indexed photos in seconds: one folder of hard links to a
few hundred tiny real JPEGs (~1-2 KB each, so every path exists and decodes),
whose rows are inserted straight into the database in bulk. Then measures

* first_screen_s: from creating the browse page (PhotosView and its
  ThumbnailLoader, shown in a QMainWindow) to the first painted screen on
  which every visible photo has its thumbnail (cold thumbnail cache, i.e. the
  first time the library is opened; `first_screen_warm_s` is a second window
  over the same library, thumbnails on disk but not in memory);
* max_stall_ms_during_scan: the longest gap between the ticks of a 5 ms timer
  on the GUI thread while a real scan (`Library.scan` in a `JobWorker`, no
  embedding) indexes `scan_files` new photos and the grid is refreshed once a
  second, i.e. the longest time the window could not react.

Runs under QT_QPA_PLATFORM=offscreen unless DISPLAY is set. Prints progress on
stderr and one JSON object on the last line of stdout.

    python bench/gui.py --json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import imagegen
from PySide6.QtCore import QEvent, QObject, Qt, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
from sqlalchemy import insert

from dino_desktop.core.db import Folder, ImageRow
from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, Job
from dino_desktop.core.records import ScanResult
from dino_desktop.gui.app import tune_gc
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.browse import PhotosView
from dino_desktop.gui.workers import JobWorker

DISTINCT = 200  # different pictures; the N files are hard links to these
PER_DIR = 1000
WINDOW = (1600, 1000)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tiny_jpegs(count: int, size: tuple[int, int], seed: int = 0) -> list[bytes]:
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        imagegen.photo(*size, seed=seed + i).save(buffer, "JPEG", quality=80)
        out.append(buffer.getvalue())
    return out


def build_library(home: Path, root: Path, n: int) -> Library:
    """N photos on disk (hard links) and their rows in the database, in bulk."""
    sources = root.parent / "sources"
    sources.mkdir(parents=True)
    originals = []
    for i, data in enumerate(tiny_jpegs(DISTINCT, (64, 48))):
        path = sources / f"{i}.jpg"
        path.write_bytes(data)
        originals.append(path)
    relpaths = []
    for i in range(n):
        rel = f"{i // PER_DIR:03}/IMG_{i:06}.jpg"
        target = root / rel
        if i % PER_DIR == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
        os.link(originals[i % DISTINCT], target)
        relpaths.append(rel)
    lib = Library(home)
    now = datetime.now()
    start = datetime(2015, 1, 1)
    with lib.sessions() as session, session.begin():
        folder = Folder(path=str(root.resolve()), is_reference=False, added_at=now)
        session.add(folder)
        session.flush()
        folder_id = folder.id
        for first in range(0, n, 10_000):
            rows = []
            for i in range(first, min(n, first + 10_000)):
                st = originals[i % DISTINCT].stat()
                rows.append(
                    {
                        "folder_id": folder_id,
                        "relpath": relpaths[i],
                        "size": st.st_size,
                        "mtime_ns": st.st_mtime_ns,
                        "width": 64,
                        "height": 48,
                        "orientation": 1,
                        "taken_at": start + timedelta(minutes=17 * i),
                        "status": "ok",
                        "scanned_at": now,
                        "format": "JPEG",
                        "dev": st.st_dev,
                        "inode": st.st_ino,
                    }
                )
            session.execute(insert(ImageRow), rows)
    return lib


class PaintWatch(QObject):
    """Records when a widget was last painted."""

    def __init__(self) -> None:
        super().__init__()
        self.last_paint = 0.0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            # Stamped after the paint handler has run, on the next turn.
            QTimer.singleShot(0, self._stamp)
        return False

    def _stamp(self) -> None:
        self.last_paint = time.perf_counter()


def first_screen(app: QApplication, lib: Library, timeout: float = 60.0) -> dict[str, Any]:
    """Open the browse page and wait for a screen whose visible photos all show thumbnails."""
    t0 = time.perf_counter()
    loader = ThumbnailLoader(lib.paths.cache_dir)
    window = QMainWindow()
    view = PhotosView(lib, loader)
    window.setCentralWidget(view)
    window.resize(*WINDOW)
    watch = PaintWatch()
    view.grid.viewport().installEventFilter(watch)
    last_load = [0.0]
    loaded_at: list[float] = []

    def on_loaded(*_args: object) -> None:
        last_load[0] = time.perf_counter()

    loader.thumbnail_loaded.connect(on_loaded)
    view.rows_loaded.connect(lambda _n: loaded_at.append(time.perf_counter()))
    window.show()
    view.reload()
    visible: list[int] = []
    while time.perf_counter() - t0 < timeout:
        app.processEvents()
        if not loaded_at:
            time.sleep(0.001)
            continue
        photos = view.photos()
        visible = list(view.grid.visible_rows())
        ready = bool(visible) and all(loader.pixmap(photos[r]) is not None for r in visible)
        if ready and watch.last_paint > last_load[0]:
            break
        time.sleep(0.001)
    else:
        raise RuntimeError("the first screen never completed")
    result = {
        "seconds": watch.last_paint - t0,
        "rows_s": loaded_at[0] - t0,
        "visible": len(visible),
        "view": view,
        "loader": loader,
        "window": window,
    }
    return result


def close(app: QApplication, screen: dict[str, Any]) -> None:
    screen.pop("view").shutdown()
    screen.pop("loader").shutdown()
    window = screen.pop("window")  # the Python wrappers would keep the 100,000 rows alive
    window.close()
    window.deleteLater()
    # processEvents() alone leaves deferred deletes for an event loop that never runs.
    app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()


def stall_during_scan(
    app: QApplication,
    lib: Library,
    screen: dict[str, Any],
    new_dir: Path,
    count: int,
    refresh_s: float,
) -> dict[str, Any]:
    """Scan `count` new photos in a worker while the grid refreshes; the longest GUI stall."""
    for i, data in enumerate(tiny_jpegs(count, (160, 120), seed=10_000)):
        target = new_dir / f"{i // PER_DIR:03}" / f"NEW_{i:05}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    view: PhotosView = screen["view"]
    gaps: list[float] = []
    last = [0.0]

    def tick() -> None:
        now = time.perf_counter()
        if last[0]:
            gaps.append(now - last[0])
        last[0] = now

    ticker = QTimer()
    ticker.setTimerType(Qt.TimerType.PreciseTimer)
    ticker.setInterval(5)
    ticker.timeout.connect(tick)
    refresher = QTimer()
    refresher.setInterval(max(1, round(refresh_s * 1000)))
    refresher.timeout.connect(view.refresh)
    done: list[ScanResult] = []
    failed: list[str] = []

    def job(token: CancelToken) -> Job[ScanResult]:
        return lib.scan(embed=False, cancel=token)

    worker = JobWorker(job)
    worker.signals.finished.connect(done.append)
    worker.signals.failed.connect(failed.append)
    refreshes = [0]
    view.rows_loaded.connect(lambda _n: refreshes.__setitem__(0, refreshes[0] + 1))
    ticker.start()
    if refresh_s > 0:
        refresher.start()
    t0 = time.perf_counter()
    QThreadPool.globalInstance().start(worker)
    while not done and not failed:
        app.processEvents()
        time.sleep(0.0005)
    scan_s = time.perf_counter() - t0
    refresher.stop()
    # The last refresh, so the grid shows every new photo; still measured.
    view.refresh()
    expected = screen["photos"] + count
    while view.model.rowCount() != expected or view.is_loading():
        app.processEvents()
        time.sleep(0.0005)
    ticker.stop()
    if failed:
        raise RuntimeError(failed[0])
    result = done[0]
    QThreadPool.globalInstance().waitForDone()
    gaps.sort()
    return {
        "max_ms": gaps[-1] * 1000 if gaps else 0.0,
        "p99_ms": gaps[int(len(gaps) * 0.99)] * 1000 if gaps else 0.0,
        "scan_s": scan_s,
        "added": result.added,
        "refreshes": refreshes[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="photos in the library")
    parser.add_argument("--scan-files", type=int, default=2000, help="new photos to scan")
    parser.add_argument(
        "--refresh-s", type=float, default=1.0, help="grid refresh period during the scan (0: none)"
    )
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="skip the gc.freeze() that the app does after start-up (see BENCHMARKS.md)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    work = Path(tempfile.mkdtemp(prefix="dino-gui-bench-"))
    try:
        root = work / "photos"
        t0 = time.perf_counter()
        lib = build_library(work / "lib", root, args.n)
        log(f"library of {args.n:,} photos built in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        lib.photos()
        rows_s = time.perf_counter() - t0
        log(f"Library.photos(): {rows_s:.2f} s")
        if args.gc_freeze:
            # As gui/app.py does after start-up: objects that live as long as
            # the app leave the cyclic GC's way, so full collections get cheap.
            tune_gc()

        cold = first_screen(app, lib)
        log(f"first screen (cold thumbnails): {cold['seconds']:.3f} s, {cold['visible']} visible")
        close(app, cold)
        warm = first_screen(app, lib)
        log(f"first screen (thumbnails on disk): {warm['seconds']:.3f} s")
        warm["photos"] = args.n
        stall = stall_during_scan(app, lib, warm, root / "new", args.scan_files, args.refresh_s)
        log(
            f"scan of {stall['added']} files in {stall['scan_s']:.1f} s, "
            f"{stall['refreshes']} grid refreshes: longest stall {stall['max_ms']:.1f} ms, "
            f"p99 {stall['p99_ms']:.1f} ms"
        )
        close(app, warm)
        lib.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "photos": args.n,
        "first_screen_s": round(cold["seconds"], 3),
        "first_screen_warm_s": round(warm["seconds"], 3),
        "rows_load_s": round(rows_s, 3),
        "visible_thumbnails": cold["visible"],
        "max_stall_ms_during_scan": round(stall["max_ms"], 1),
        "p99_gap_ms_during_scan": round(stall["p99_ms"], 1),
        "scan_files": stall["added"],
        "scan_s": round(stall["scan_s"], 2),
        "grid_refreshes": stall["refreshes"],
        "refresh_s": args.refresh_s,
        "gc_freeze": args.gc_freeze,
        "cpus": os.cpu_count(),
        "platform": os.environ.get("QT_QPA_PLATFORM") or "xcb",
        "python": platform.python_version(),
    }
    print(json.dumps(result) if args.json else result)


if __name__ == "__main__":
    main()
