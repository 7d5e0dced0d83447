"""The live-folder loop: watch library folders and keep them indexed until cancelled.

`watch` is what `dino-desktop watch` runs (and what a headless machine keeps
running): a catch-up scan of the folders, then, for each settled `Batch` from
core/watcher.py, an incremental scan of its folders that holds back files still
being written, embeds the new photos and files them into the current
auto-folders. Each change is told to `on_event` as a `WatchEvent`.

The library's write lock is taken per batch, not for the whole watch, so the
desktop app or another command can still write between batches; a batch that
finds the lock taken waits and is retried ("busy"). The GUI does not run this
loop: it takes batches from a `FolderWatcher` itself and runs each scan as a
normal background job with the progress strip (gui/live.py), which is the
same scan call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.records import LibraryBusy, ScanResult, WatchEvent
from dino_desktop.core.scanner import Hold
from dino_desktop.core.watcher import DEBOUNCE_S, POLL_INTERVAL_S, Batch
from dino_desktop.core.weights import WeightsUnavailable

if TYPE_CHECKING:
    from dino_desktop.core.library import Library

log = logging.getLogger(__name__)

BUSY_RETRY_S = 2.0


def hold_for(batch: Batch, debounce: float) -> Hold:
    """What a batch's scan must leave alone: the files still settling, and any file
    modified too recently to be known complete (its own events will bring it)."""
    sizes = set()
    for path in batch.held:
        with contextlib.suppress(OSError):
            sizes.add(os.stat(path).st_size)
    return Hold(batch.held, time.time_ns() - int(2 * debounce * 1e9), frozenset(sizes))


def events_of(result: ScanResult, filed: dict[str, str]) -> list[WatchEvent]:
    """The scan's changes as watch events (`filed`: new photo path -> auto-folder);
    "embedded" when the scan embedded too."""
    failed = dict(result.failed)
    out: list[WatchEvent] = []
    for what, path, old in result.changes:
        if what in ("added", "updated") and path in failed:
            out.append(WatchEvent("failed", path, detail=failed[path]))
        else:
            out.append(WatchEvent(what, path, old))
    out.extend(WatchEvent("offline", path) for path in result.offline)
    if result.embedded:
        out.append(WatchEvent("embedded", count=result.embedded))
    out.extend(WatchEvent("filed", path, detail=name) for path, name in filed.items())
    return out


def _filed(lib: Library, added: set[str]) -> dict[str, str]:
    """The auto-folder each just-added photo is filed into (when there are auto-folders)."""
    if not added:
        return {}
    try:
        return {p.path: p.cluster_name for p in lib.new_photos() if p.path in added}
    except Exception:  # no model or no run: nothing to file into
        log.debug("watch: no auto-folders to file new photos into", exc_info=True)
        return {}


def _embed(
    lib: Library, cancel: CancelToken, added: set[str], on_event: Callable[[WatchEvent], None]
) -> Job[set[str]]:
    """Embed what waits; tell what was embedded and where new photos are filed. Returns
    the new photos still waiting (the lock was taken, or no weights)."""
    try:
        embedded, failed = yield from lib.embed_pending(cancel)
    except WeightsUnavailable as exc:
        log.info("watch: embedding waits for weights: %s", exc)
        return set()
    except LibraryBusy as exc:
        on_event(WatchEvent("busy", detail=str(exc)))
        return added  # embedded with the next batch
    for path, error in failed:
        on_event(WatchEvent("failed", path, detail=error))
    if embedded:
        on_event(WatchEvent("embedded", count=embedded))
    for path, name in _filed(lib, added).items():
        on_event(WatchEvent("filed", path, detail=name))
    return set()


def _load_model(lib: Library) -> None:
    """Load the model now, not when the first new photo lands (seconds on a CPU)."""
    try:
        lib.embedder()  # builds the model
    except Exception as exc:  # no weights, bad weights: the embedding step reports it
        log.info("watch: model not loaded: %s", exc)


def watch(
    lib: Library,
    folder_ids: list[int],
    on_event: Callable[[WatchEvent], None],
    cancel: CancelToken,
    *,
    debounce: float = DEBOUNCE_S,
    poll_interval: float = POLL_INTERVAL_S,
    embed: bool = True,
    force_polling: bool = False,
) -> Job[None]:
    """Index `folder_ids` as they change until `cancel`; see the module docstring."""
    watcher = lib.folder_watcher(
        folder_ids, debounce=debounce, poll_interval=poll_interval, force_polling=force_polling
    )
    watcher.start()
    try:
        count = len(watcher.roots)
        batch: Batch | None = Batch(
            frozenset(r.folder_id for r in watcher.roots), frozenset(), frozenset()
        )
        first = True
        added: set[str] = set()  # new photos not embedded yet (to file once they are)
        while not cancel.cancelled:
            if batch is None:
                batch = watcher.wait(0.25)
                yield Progress("watch", 0, None, None, "watching")
                continue
            try:
                # Embedding is a step of its own, so changes are told as soon as the
                # scan has them (a 12 MP photo's embedding is slower than its scan).
                if first:  # the catch-up scan: nothing is being written that it knows of
                    job = lib.scan(
                        folder_ids=sorted(batch.folder_ids),
                        record_changes=True,
                        embed=False,
                        cancel=cancel,
                    )
                else:
                    job = lib.scan_batch(batch, debounce=debounce, embed=False, cancel=cancel)
                result = yield from job
            except LibraryBusy as exc:
                on_event(WatchEvent("busy", detail=str(exc)))
                deadline = time.monotonic() + BUSY_RETRY_S
                while time.monotonic() < deadline and not cancel.cancelled:
                    time.sleep(0.1)
                continue  # the same batch again
            if result.held:
                watcher.rescan_later(batch.folder_ids, 2 * debounce + 0.1)
            batch = None
            for event in events_of(result, {}):
                on_event(event)
            added.update(path for what, path, _ in result.changes if what == "added")
            if embed and not cancel.cancelled:
                added = yield from _embed(lib, cancel, added, on_event)
            if first:  # caught up: from here on, changes come as they happen
                first = False
                if embed:
                    _load_model(lib)
                on_event(WatchEvent("watching", count=count))
    finally:
        watcher.stop()
        on_event(WatchEvent("stopped"))
