"""The command line's shared-library commands: `worker` and `roots` (see cli.py).

`roots` lists the library folders as stored and as this machine reaches them, and
maps a stored root (another computer's mount point of a share) to a path here
(`roots map STORED LOCAL`, `roots unmap STORED`; core/roots.py).

`worker` embeds the photos a shared library's clients queued (core/queue.py)
on this machine, until SIGINT or SIGTERM (the jobs running then are finished
first), or with `--once` until no job is left for it. One line per job goes to
stderr; with `--json`, one JSON object per job to stdout (flushed at once),
then one for the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dino_desktop.core.library import Library
    from dino_desktop.core.queue import JobDone

EXIT_OK = 0


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not 0.1 <= number <= 3600:
        raise argparse.ArgumentTypeError("must be from 0.1 to 3600 seconds")
    return number


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "worker",
        parents=[common],
        help="embed the photos queued in a shared library (--library postgresql://...) "
        "on this machine, until Ctrl+C",
    )
    p.add_argument(
        "--batch",
        type=_positive,
        default=None,
        metavar="N",
        help="photos per forward pass of the model (default from settings, 16)",
    )
    p.add_argument(
        "--concurrency",
        type=_positive,
        default=1,
        metavar="N",
        help="jobs run at once by this worker, sharing its model (default 1)",
    )
    p.add_argument(
        "--heartbeat",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="how often this worker says it is alive; a job of a worker silent for "
        "three heartbeats goes back to the queue (default 10)",
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="stop when no job is left (else wait for new ones until Ctrl+C)",
    )

    p = sub.add_parser(
        "roots",
        parents=[common],
        help="library folders as stored and as this computer reaches them; map a "
        "share's root to its path here",
    )
    rsub = p.add_subparsers(dest="roots_command", metavar="{map,unmap}")
    rm = rsub.add_parser(
        "map", parents=[common], help="reach the folders stored under STORED at LOCAL here"
    )
    rm.add_argument("stored", metavar="STORED", help="a folder root as the library stores it")
    rm.add_argument("local", metavar="LOCAL", help="the same folder on this computer")
    ru = rsub.add_parser("unmap", parents=[common], help="forget this computer's mapping")
    ru.add_argument("stored", metavar="STORED", help="a mapped root, as listed by `roots`")


def cmd_roots(lib: Library, args: argparse.Namespace) -> int:
    if args.roots_command == "map":
        lib.map_root(args.stored, args.local)
    elif args.roots_command == "unmap":
        lib.unmap_root(args.stored)
    roots = lib.roots()
    lib_folders = lib.folders()
    folders = [
        {"stored": roots.to_stored(f.path), "path": f.path, "offline": f.offline}
        for f in lib_folders
    ]
    mapped = [{"stored": stored, "local": local} for stored, local in sorted(roots.pairs)]
    if args.json:
        print(json.dumps({"roots": mapped, "folders": folders}, indent=2))
        return EXIT_OK
    for m in mapped:
        print(f"mapped: {m['stored']} -> {m['local']}")
    for f in lib_folders:
        stored = roots.to_stored(f.path)
        where = f.path if f.path == stored else f"{stored} -> {f.path}"
        print(where + (f"  [{f.offline}]" if f.offline else ""))
    if not lib_folders:
        print("no library folders yet")
    return EXIT_OK


def cmd_worker(lib: Library, args: argparse.Namespace) -> int:
    from dino_desktop.core.queue import HEARTBEAT_S

    if args.batch is not None:
        lib.settings.batch_size = args.batch  # this run only: not saved
    totals = {"jobs": 0, "photos": 0, "embedded": 0}
    lock = threading.Lock()  # jobs end on their own threads with --concurrency

    def on_job(done: JobDone) -> None:
        try:
            state = lib.workers.state()
        except Exception:  # the server away for a moment: the job itself is done
            state = None
        with lock:
            totals["jobs"] += 1
            totals["photos"] += done.photos
            totals["embedded"] += done.embedded
            if args.json:
                event: dict[str, Any] = {
                    "event": "job",
                    "photos": done.photos,
                    "embedded": done.embedded,
                    "seconds": round(done.seconds, 3),
                }
                if state is not None:
                    event.update(photos_left=state.photos_left, workers=state.workers)
                print(json.dumps(event), flush=True)
            else:
                where = f"; {state.describe()}" if state is not None else ""
                print(
                    f"job of {done.photos} photo(s): {done.embedded} embedded "
                    f"in {done.seconds:.1f} s{where}",
                    file=sys.stderr,
                    flush=True,
                )

    heartbeat = args.heartbeat or HEARTBEAT_S
    before = lib.workers.state()  # a SQLite library: says it needs a shared one
    device = lib.embedder().device  # no weights: exit 3 before any work
    if not args.json:
        print(
            f"worker on {device} for {lib.model_name}; {before.describe()}",
            file=sys.stderr,
            flush=True,
        )
    lib.workers.run(
        concurrency=args.concurrency, heartbeat=heartbeat, once=args.once, on_job=on_job
    )
    state = lib.workers.state()
    if args.json:
        print(json.dumps({"event": "stopped", **totals, "photos_left": state.photos_left}))
    else:
        print(
            f"stopped: {totals['embedded']} embedded in {totals['jobs']} job(s); "
            f"{state.describe()}",
            file=sys.stderr,
        )
    return EXIT_OK
