"""Benchmark: reviewing 100,000 duplicate groups in the Duplicates view.

No files and no database: a stand-in library hands the view N synthetic
`Group`s (2-4 members each, every relation label, ~2,000 folders, some
reference members and crops) through the view's real search path (a
`JobWorker` that also builds the list's `GroupIndex`), and runs the real
`plan_removal` (core/dedupe.py) for the bulk action. Measured, in one run:

* open_s: from `find()` to the list showing every group, current group shown;
* label_s, folder_s, min_size_s, sort_members_s, sort_path_s, clear_s: one filter or
  sort change each, until the list shows the new rows;
* plan_s: "Apply keeper rules to N filtered groups…" until its dry run is open
  (`plan_removal` of every group in a worker);
* max_stall_ms_*: the longest gap between the ticks of a 10 ms QTimer on the
  GUI thread during each phase, i.e. the longest time the window could not react;
* remove_s / undo_s (a real library, `--removal` groups of two tiny JPEGs each,
  in a temporary home with its own trash): the bulk action run for real
  (`Library.remove_duplicates` in a worker, then the list rebuilt) and its
  Undo from the view (undo, rescan, search again), with their stalls.

The app's start-up GC tuning (`gui.app.tune_gc`) is applied before the groups
are made, as the app does before any search. Offscreen unless DISPLAY is set.

    python bench/duplicates_review.py [--n 100000] [--removal 2000] [--json] [--markdown]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, Qt, QTimer
from PySide6.QtWidgets import QApplication

from dino_desktop.core import dedupe
from dino_desktop.core.duplicates import RELATIONS, Group, Member
from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, Job, Progress, drive
from dino_desktop.gui.app import tune_gc
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.duplicates import DuplicatesView

WINDOW = (1600, 1000)
FOLDERS = 2000
SIMD = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def synthetic_groups(n: int, seed: int = 0) -> list[Group]:
    """N groups as a phash search of a large library might return them."""
    rnd = random.Random(seed)
    folders = [f"/photos/{2010 + i % 14}/album-{i:04d}" for i in range(FOLDERS)]
    t0 = datetime(2015, 1, 1)
    next_id = 1
    groups: list[Group] = []
    for g in range(n):
        folder = rnd.choice(folders)
        count = rnd.choice((2, 2, 2, 3, 3, 4))
        members: list[Member] = []
        for k in range(count):
            relation = "keeper" if k == 0 else rnd.choice(RELATIONS)
            where = folder if k == 0 or rnd.random() < 0.5 else rnd.choice(folders)
            box = (40, 30, 600, 450) if relation == "cropped" else None
            members.append(
                Member(
                    image_id=next_id,
                    path=f"{where}/IMG_{g:06d}_{k}.jpg",
                    size=rnd.randint(300_000, 8_000_000),
                    width=4032 if k == 0 else 2016,
                    height=3024 if k == 0 else 1512,
                    format="JPEG",
                    taken_at=t0 + timedelta(minutes=g, seconds=k),
                    camera="Pixelcam P7",
                    is_reference=k > 0 and rnd.random() < 0.05,
                    score=1.0 if k == 0 else rnd.uniform(0.85, 1.0),
                    relation=relation,
                    why="" if k == 0 else "not kept: the keeper has more pixels (4032×3024)",
                    evidence="" if k == 0 else f"{relation}: measured on 256 px copies",
                    crop_box=box,
                    crop_in="keeper" if box else None,
                )
            )
            next_id += 1
        keeper, others = members[0], members[1:]
        reclaimable = sum(m.size for m in others if not m.is_reference)
        why = "kept: more pixels (4032×3024 vs 2016×1512)"
        groups.append(Group("phash", keeper, others, reclaimable, why))
    groups.sort(key=lambda x: (-x.reclaimable, x.keeper.path))
    return groups


class StandInLibrary:
    """What the view calls on a Library, without a database: the groups it was given,
    no thumbnails, and the real removal planner."""

    def __init__(self, groups: list[Group]) -> None:
        self._groups = groups

    def duplicates(
        self, method: str, threshold: float | None = None, **_kw: Any
    ) -> Job[list[Group]]:
        yield Progress("duplicates", 0, None, None, "stand-in search")
        return self._groups

    def photos_by_id(self, ids: Iterable[int]) -> dict[int, Any]:
        for _ in ids:
            pass
        return {}

    def plan_removal(self, groups: Iterable[Group], **kw: Any) -> Job[dedupe.RemovalPlan]:
        return dedupe.plan_removal(groups, **kw)

    def metadata_merges(self, plan: Any, cancel: CancelToken | None = None) -> Job[list[Any]]:
        yield Progress("duplicates", 0, None, None, "stand-in merges")
        return []


class Heartbeat:
    """A 10 ms timer on the GUI thread; the longest gap between ticks since `reset`."""

    def __init__(self) -> None:
        self.last = 0.0
        self.worst = 0.0
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last:
            self.worst = max(self.worst, now - self.last)
        self.last = now

    def reset(self) -> None:
        self.last = time.perf_counter()
        self.worst = 0.0

    def worst_ms(self) -> float:
        # The gap still open counts too (a phase that ends in a stall).
        return max(self.worst, time.perf_counter() - self.last) * 1000


def settle(app: QApplication, done: Callable[[], bool], timeout: float = 300.0) -> None:
    """Run the event loop (a real one, as the app's: timers fire on time) until `done()`."""
    loop = QEventLoop()
    check = QTimer()
    check.setInterval(2)
    check.timeout.connect(lambda: loop.quit() if done() else None)
    check.start()
    expired: list[bool] = []
    QTimer.singleShot(round(timeout * 1000), lambda: (expired.append(True), loop.quit()))
    if not done():
        loop.exec()
    check.stop()
    if expired and not done():
        raise RuntimeError("timed out")
    app.processEvents()  # what the last step scheduled (a repaint) runs in the phase


def phase(
    app: QApplication,
    beat: Heartbeat,
    action: Callable[[], object],
    done: Callable[[], bool],
) -> tuple[float, float]:
    """(seconds, longest stall in ms) of `action` until `done()`."""
    settle(app, lambda: True)
    beat.reset()
    t0 = time.perf_counter()
    action()
    settle(app, done)
    return time.perf_counter() - t0, beat.worst_ms()


def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "cpu_flags": [f for f in SIMD if f in flags]}


def removal(app: QApplication, beat: Heartbeat, n: int) -> dict[str, Any]:
    """The bulk action and its Undo on a real library of `n` groups (an original and
    a byte copy in another folder each), in a temporary home and trash."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import imagegen

    work = Path(tempfile.mkdtemp(prefix="dino-review-bench-"))
    os.environ["HOME"] = str(work)
    os.environ["XDG_DATA_HOME"] = str(work / "xdg")
    try:
        for i in range(n):
            buffer = io.BytesIO()
            imagegen.photo(64, 48, seed=i).save(buffer, "JPEG", quality=80)
            for folder in ("photos", "copies"):
                target = work / folder / f"{i // 1000:03d}" / f"IMG_{i:06d}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(buffer.getvalue())
        lib = Library(work / "lib")
        t0 = time.perf_counter()
        drive(lib.scan([work / "photos", work / "copies"], embed=False))
        log(f"removal library: {2 * n:,} files scanned in {time.perf_counter() - t0:.1f} s")
        loader = ThumbnailLoader(lib.paths.cache_dir)
        view = DuplicatesView(lib, loader)
        view.resize(*WINDOW)
        view.show()
        out: dict[str, Any] = {"removal_groups": n}
        view.find("exact")
        settle(app, lambda: not view.busy() and view.pane.model.rowCount() == n)
        view.apply_rules()
        settle(app, lambda: view.bulk_dialog is not None and not view.busy())
        dialog = view.bulk_dialog
        assert dialog is not None
        out["remove_s"], out["max_stall_ms_remove"] = phase(
            app, beat, dialog.accept, lambda: not view.busy()
        )
        assert not any((work / "copies").rglob("*.jpg")), "copies left"
        log(f"remove: {out['remove_s']:.1f} s, stall {out['max_stall_ms_remove']:.0f} ms")
        out["undo_s"], out["max_stall_ms_undo"] = phase(
            app,
            beat,
            view.undo_bar.undo_button.click,
            lambda: not view.busy() and view.pane.model.rowCount() == n,
        )
        log(f"undo: {out['undo_s']:.1f} s, stall {out['max_stall_ms_undo']:.0f} ms")
        loader.shutdown()
        lib.close()
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(n: int, removal_groups: int) -> dict[str, Any]:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    tune_gc()
    t0 = time.perf_counter()
    groups = synthetic_groups(n)
    log(f"{n:,} synthetic groups made in {time.perf_counter() - t0:.1f} s")
    loader = ThumbnailLoader(Path(os.environ.get("TMPDIR", "/tmp")) / "dino-review-bench")
    view = DuplicatesView(StandInLibrary(groups), loader)  # type: ignore[arg-type]
    view.resize(*WINDOW)
    view.show()
    beat = Heartbeat()
    beat.timer.start()
    out: dict[str, Any] = {"groups": n}
    model = view.pane.model

    def idle() -> bool:
        return not view.busy()

    out["open_s"], out["max_stall_ms_open"] = phase(
        app, beat, lambda: view.find("exact"), lambda: idle() and model.rowCount() == n
    )
    log(f"open: {out['open_s']:.2f} s, stall {out['max_stall_ms_open']:.0f} ms")
    stalls = []
    for key, action in (
        ("label", lambda: view.pane.set_label("cropped")),
        ("sort_members", lambda: view.pane.set_sort("members")),
        ("sort_path", lambda: view.pane.set_sort("path")),
        ("folder", lambda: view.pane.set_folder("/photos/2013")),
        ("min_size", lambda: view.pane.set_min_bytes(5 * 1024 * 1024)),
        ("clear", view.pane.clear_filters),
    ):
        seconds, stall = phase(app, beat, action, lambda: True)
        out[f"{key}_s"] = seconds
        out[f"{key}_rows"] = model.rowCount()
        stalls.append(stall)
        log(f"{key}: {seconds * 1000:.0f} ms → {model.rowCount():,} rows, stall {stall:.0f} ms")
    out["max_stall_ms_filter_sort"] = max(stalls)
    out["mark_all_s"], out["max_stall_ms_mark_all"] = phase(
        app, beat, lambda: view.mark_all_but_keeper(True), lambda: True
    )
    view.unmark_all()
    out["plan_s"], out["max_stall_ms_plan"] = phase(
        app, beat, view.apply_rules, lambda: view.bulk_dialog is not None and idle()
    )
    dialog = view.bulk_dialog
    assert dialog is not None
    out["plan_files"] = dialog.plan.files
    out["plan_left_exposures"] = dialog.plan.left_exposures
    log(f"plan: {out['plan_s']:.2f} s, stall {out['max_stall_ms_plan']:.0f} ms")
    out["replan_s"], out["max_stall_ms_replan"] = phase(
        app, beat, lambda: dialog.exposures_check.setChecked(True), lambda: dialog.worker is None
    )
    dialog.reject()
    loader.shutdown()
    if removal_groups:
        out.update(removal(app, beat, removal_groups))
    beat.timer.stop()
    out.update(cpu_info())
    return out


def markdown(r: dict[str, Any]) -> str:
    rows = [
        ("open the view with them (search result → list shown)", "open_s", "max_stall_ms_open"),
        ("filter by a label (cropped)", "label_s", None),
        ("sort by number of members", "sort_members_s", None),
        ("sort by keeper path", "sort_path_s", None),
        ("filter by a folder", "folder_s", None),
        ("filter by a minimum size (5 MB)", "min_size_s", None),
        ("clear the filters (one step)", "clear_s", None),
        ("mark all but the keepers in every group", "mark_all_s", "max_stall_ms_mark_all"),
        ("plan the bulk action (plan_removal in a worker)", "plan_s", "max_stall_ms_plan"),
        ("plan again with bursts (dry-run checkbox)", "replan_s", "max_stall_ms_replan"),
    ]
    lines = ["| step | time | longest GUI stall |", "|---|---|---|"]
    for text, key, stall in rows:
        worst = f"{r[stall]:.0f} ms" if stall else ""
        lines.append(f"| {text} | {r[key]:.3f} s | {worst} |")
    lines.append(
        f"| every filter and sort change above | | {r['max_stall_ms_filter_sort']:.0f} ms |"
    )
    if "remove_s" in r:
        n = r["removal_groups"]
        lines.append(
            f"| real library, {n:,} groups: run the bulk action (trash {n:,} copies, "
            f"rebuild the list) | {r['remove_s']:.1f} s | {r['max_stall_ms_remove']:.0f} ms |"
        )
        lines.append(
            f"| the same: Undo (restore, rescan, search again) | {r['undo_s']:.1f} s "
            f"| {r['max_stall_ms_undo']:.0f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="groups")
    parser.add_argument(
        "--removal", type=int, default=2000, help="groups of the real-library removal (0: skip)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="print the BENCHMARKS.md table")
    args = parser.parse_args()
    result = run(args.n, args.removal)
    if args.markdown:
        print(markdown(result))
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
