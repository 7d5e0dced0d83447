"""The plain value types that `Library` returns, and its error.

The GUI and the CLI import from the core only the `Library` facade and these
types, so this module stays a leaf: standard library only, no SQLAlchemy, no
numpy, nothing that opens a database. Values are frozen where callers never
change them; `PhotoRow` is a NamedTuple because the GUI holds 100,000s of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple


class LibraryError(Exception):
    """An expected failure with a message meant for the user (bad path, bad argument)."""


@dataclass(frozen=True, slots=True)
class FolderInfo:
    """A registered folder with its counts of readable and unreadable photos."""

    id: int
    path: str
    is_reference: bool
    images: int
    failed: int
    offline: str | None = None
    """Why the folder cannot be scanned now (its drive is not mounted), or None when online.
    Its photos stay in the library, browsable and searchable, marked offline."""
    same_drive_at: str | None = None
    """Where the folder is now when its drive is mounted at another place (same filesystem
    identity): `Library.relocate(path, same_drive_at)` re-points it."""


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One indexed file, readable or not (`error` says why not): the CLI's `list`."""

    id: int
    path: str
    status: str
    width: int | None
    height: int | None
    taken_at: datetime | None
    camera: str | None
    size: int
    error: str | None
    companions: tuple[str, ...] = ()
    """Paths of the files that go with this photo (its RAW, Live Photo video, sidecars)."""


@dataclass(frozen=True, slots=True)
class Companion:
    """A file that goes with a photo item: `kind` is "raw", "live" or "sidecar"."""

    path: str
    kind: str
    size: int


class PhotoRow(NamedTuple):
    """A readable photo, as light as possible: the GUI holds 100,000s of these.

    A NamedTuple of atoms, so the garbage collector does not track the rows and
    full collections stay short while the GUI holds a large library.
    """

    id: int
    path: str
    folder_id: int
    taken_at: datetime | None
    width: int
    height: int
    size: int
    mtime_ns: int
    camera: str | None
    badge: str = ""
    """What the grid marks the photo with: "RAW+JPEG", "Live", "RAW" (joined by " · "), or ""."""


@dataclass(frozen=True, slots=True)
class Status:
    """The library summary (`dino-desktop status`)."""

    images: int
    embedded: int
    pending: int
    failed: int
    folders: list[FolderInfo]
    model: str
    weights: str | None
    companions: int = 0
    """Files that go with a photo item (RAW originals, Live Photo videos, sidecars)."""
    videos: int = 0
    """Videos that are no photo's companion: not indexed."""
    orphan_sidecars: int = 0
    """Sidecars (.xmp, .aae, .thm) next to no photo."""
    workers: int | None = None
    """A shared library: its indexing workers alive now, on any computer (they embed
    the `pending` photos); None for a SQLite library."""


@dataclass(slots=True)
class ScanReport:
    """What one scan changed; `failed` lists every unreadable file in the scanned folders."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False
    companions: int = 0
    """Companion files in the scanned folders (RAW originals, Live Photo videos, sidecars)."""
    videos: list[str] = field(default_factory=list)
    """Every video in the scanned folders that is no photo's companion (not indexed)."""
    orphan_sidecars: list[str] = field(default_factory=list)
    """Every sidecar in the scanned folders that belongs to no photo."""
    moved: int = 0
    """Photos recognised by content at a new path: their rows (vectors, labels, auto-folders)
    moved with them; not counted in `added` or `removed`."""
    offline: list[str] = field(default_factory=list)
    """Folders not scanned because they are not available (a drive not mounted): kept whole."""
    held: int = 0
    """Files left for a later scan because they may still be being written (the watcher)."""
    changes: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(what, path, old path): "added", "updated", "moved" (old path set) or "removed", when
    the scan was asked to record them (the watcher)."""
    embedded: int = 0
    """Vectors written: by the one-pass scan (core/ingest.py), then by the pending pass."""


@dataclass(slots=True)
class ScanResult(ScanReport):
    """A scan's report (`scanner.scan` makes the ScanReport) plus what the embedding step did."""

    pending: int = 0
    weights_missing: str | None = None  # the WeightsUnavailable message, when embedding waited
    queued: int = 0  # a shared library: pending photos handed to its workers' queue


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One thing the live-folder watcher did or saw (`dino-desktop watch --json` prints it).

    `event` is one of: "watching" (`count` folders), "added", "updated", "removed",
    "failed" (`detail`: why), "moved" (`source`: the old path), "offline" (`path`: the
    folder, `detail`: why), "embedded" (`count` photos), "filed" (`detail`: the
    auto-folder the new photo is filed into), "busy" (another process writes the
    library: retried), "stopped".
    """

    event: str
    path: str | None = None
    source: str | None = None
    detail: str | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A search result: a library photo and its cosine to the query."""

    path: str
    score: float
    image_id: int
    offline: bool = False
    """The photo's folder is on a drive that is not mounted now (its thumbnail may still show)."""


@dataclass(frozen=True, slots=True)
class SortLabelInfo:
    """A sort-by-example label: its example folder (if any) and example counts."""

    id: int
    name: str
    folder: str | None
    positives: int
    negatives: int


# ---- errors and results the front ends handle (raised or returned one layer down) ----


class SchemaTooNew(Exception):
    """The library was written by a newer release; opening it here could damage it."""


class SharedLibraryError(LibraryError):
    """A shared (PostgreSQL) library cannot be opened: the server is down, the
    password is wrong, pgvector is missing... The message says which, in one line."""


class ConflictError(LibraryError):
    """Another client changed the same thing first (a shared library): nothing of
    this edit was written; the message says what the other one holds now."""


class LibraryBusy(Exception):
    """Another process runs a write job on this library; the message says which."""


class FileOpError(Exception):
    """An expected failure; the message is one readable line for the user."""


class ReferenceFolderError(FileOpError):
    """The operation would change a folder marked as reference; nothing was done."""


@dataclass(frozen=True)
class OpResult:
    """What an operation did.

    `done` lists the paths acted on: the sources for trash and move, the
    restored paths (where the files are now) for undo. `failed` pairs a path with
    the reason; a failed item was left as it was. `moved` pairs each file's old
    and new location where the new one is known (for a trash: the file inside the
    trash folder). `notes` are remarks the user should see, e.g. that a restored
    file got a new name because its old one was taken.
    """

    journal_id: int
    done: list[str]
    failed: list[tuple[str, str]]
    moved: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Stopped by a cancel before the end: the items not reached were left as they were.
    cancelled: bool = False
    companions: list[str] = field(default_factory=list)
    """The companion files (RAW, Live Photo video, sidecars) that went with the photos in
    `done`: their sources (for undo: where they are now). Not listed in `done`."""
    companions_moved: list[tuple[str, str]] = field(default_factory=list)
    """As `moved`, for the companion files (`moved` pairs the photos only)."""


EXPORT_MODES = ("copy", "hardlink", "symlink", "move")
