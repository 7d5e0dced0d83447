"""The command line's live-library commands: `watch` and `relocate` (see cli.py).

`watch [FOLDER...]` keeps folders indexed until SIGINT or SIGTERM, which end it
cleanly with exit 0 (the scan in progress is cancelled; what it committed
stays, the rest is picked up next time). One line per change goes to stderr;
with `--json`, one JSON object per event goes to stdout (flushed at once, so a
pipe sees each event as it happens).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dino_desktop.core.library import Library
    from dino_desktop.core.records import WatchEvent

EXIT_OK = 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "watch",
        parents=[common],
        help="keep folders indexed as photos are added, changed, moved or deleted (until Ctrl+C)",
    )
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="folders (added if new; none: all)")
    p.add_argument("--no-embed", action="store_true", help="index files only, embed later")
    p.add_argument(
        "--poll",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how often to rescan folders that send no change events, such as network "
        "shares (default 300)",
    )
    p = sub.add_parser(
        "relocate",
        parents=[common],
        help="re-point a library folder that was renamed or moved on disk (or whose "
        "drive is mounted elsewhere now); nothing is rescanned",
    )
    p.add_argument("old", metavar="OLD", help="the folder's path as the library knows it")
    p.add_argument("new", metavar="NEW", help="where the folder is now")


def _line(event: WatchEvent) -> str:
    if event.event == "moved":
        return f"moved: {event.source} -> {event.path}"
    if event.event == "watching":
        return f"watching {event.count} folder(s); Ctrl+C to stop"
    if event.event == "embedded":
        return f"embedded {event.count} photo(s)"
    if event.event == "filed":
        return f"filed: {event.path} -> {event.detail}"
    if event.event in ("failed", "offline", "busy"):
        return ": ".join(str(p) for p in (event.event, event.path, event.detail) if p)
    if event.event == "stopped":
        return "stopped"
    return f"{event.event}: {event.path}"


def _json(event: WatchEvent) -> dict[str, Any]:
    out: dict[str, Any] = {"event": event.event}
    for key, value in (
        ("path", event.path),
        ("from", event.source),
        ("detail", event.detail),
        ("count", event.count),
    ):
        if value is not None:
            out[key] = value
    return out


def cmd_watch(lib: Library, args: argparse.Namespace) -> int:
    from dino_desktop.core.progress import CancelToken, drive

    cancel = CancelToken()
    ids = [lib.add_folder(f).id for f in args.folders] if args.folders else None

    def stop(signum: int, _frame: object) -> None:
        print(f"dino-desktop: {signal.Signals(signum).name}: stopping", file=sys.stderr)
        cancel.cancel()

    def on_event(event: WatchEvent) -> None:
        print(_line(event), file=sys.stderr, flush=True)
        if args.json:
            print(json.dumps(_json(event)), flush=True)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
    options: dict[str, Any] = {"embed": not args.no_embed}
    if args.poll is not None:
        options["poll_interval"] = max(args.poll, 1.0)
    drive(lib.watch(ids, on_event=on_event, cancel=cancel, **options))
    return EXIT_OK


def cmd_relocate(lib: Library, args: argparse.Namespace) -> int:
    done = lib.relocate(args.old, args.new)
    if args.json:
        print(
            json.dumps(
                {
                    "folders": [{"from": a, "to": b} for a, b in done.folders],
                    "photos": done.photos,
                },
                indent=2,
            )
        )
    else:
        for a, b in done.folders:
            print(f"{a} -> {b}")
        print(f"{done.photos} photo(s) re-pointed; nothing rescanned")
    return EXIT_OK
