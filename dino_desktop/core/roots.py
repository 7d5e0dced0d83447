"""Library folder roots as each client sees them (a shared library's photos on a NAS).

The catalog keeps a photo as (library folder, path relative to it); a folder's path
is stored as the client that added it saw it, say ``/mnt/nas/photos``. Another
client mounts the same share elsewhere (``/Volumes/photos``, ``P:\\photos``) and
maps the stored root to its mount point in its own settings (``[roots]``). The
mapping is applied where folder paths cross the database, in one place
(db.FolderPath, through the engine's dialect): every query reads local paths and
every write stores the shared form, so two clients that add the same folder
through different mount points meet on one row.

A root maps a prefix: one mapping of ``/mnt/nas`` covers every library folder
below it. The longest matching prefix wins.
"""

from __future__ import annotations

import logging
import ntpath
import os
from collections.abc import Mapping
from dataclasses import dataclass

from dino_desktop.core.records import LibraryError

log = logging.getLogger(__name__)

_SEPARATORS = "/\\"


def _style(path: str) -> str:
    """The separator a path is written with: a Windows path (drive or UNC) uses
    backslashes, everything else slashes."""
    drive, _ = ntpath.splitdrive(path)
    return "\\" if drive or path.startswith("\\\\") else "/"


def _below(path: str, root: str) -> str | None:
    """The rest of `path` below `root` (without a leading separator), "" for
    `root` itself, None when `path` is not below it."""
    root = root.rstrip(_SEPARATORS)
    if path == root:
        return ""
    if path.startswith(root) and path[len(root) : len(root) + 1] in ("/", "\\"):
        return path[len(root) + 1 :]
    return None


def covers(root: str, path: str) -> bool:
    """Whether `path` is `root` or below it (either separator)."""
    return _below(path, root) is not None


def map_hint(stored: str) -> str:
    """What to do when a stored folder is not found here: map its root."""
    return (
        "if this computer reaches it at another path, map it: dino-desktop roots map "
        f"{stored} LOCAL-PATH (a share's root maps every folder below it)"
    )


def _join(root: str, rest: str, sep: str) -> str:
    if not rest:
        return root.rstrip(_SEPARATORS) or root
    parts = [p for p in rest.replace("\\", "/").split("/") if p]
    return root.rstrip(_SEPARATORS) + sep + sep.join(parts)


@dataclass(frozen=True, slots=True)
class RootMap:
    """Stored root prefix -> this machine's path for it."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, roots: Mapping[str, str]) -> RootMap:
        # Longest first: /mnt/nas/photos/2024 wins over /mnt/nas.
        pairs = sorted(roots.items(), key=lambda kv: len(kv[0]), reverse=True)
        return cls(tuple(pairs))

    def to_local(self, stored: str) -> str:
        """A folder path as stored -> as this machine reaches it."""
        for root, local in self.pairs:
            rest = _below(stored, root)
            if rest is not None:
                return _join(local, rest, os.sep)
        return stored

    def to_stored(self, local: str) -> str:
        """A folder path on this machine -> as the library stores it."""
        for root, mount in sorted(self.pairs, key=lambda kv: len(kv[1]), reverse=True):
            rest = _below(local, mount)
            if rest is not None:
                return _join(root, rest, _style(root))
        return local

    def maps(self, stored: str) -> bool:
        """Whether a mapping covers the stored folder path `stored`."""
        return any(covers(root, stored) for root, _ in self.pairs)


def mapped(
    roots: Mapping[str, str], stored: str, local: str | os.PathLike[str], known: list[str]
) -> dict[str, str]:
    """`roots` with `stored` mapped to `local` (a folder here, made real); `known`:
    the library folders as stored. Refused (LibraryError) when `local` is not a
    folder, or no library folder is stored under `stored`."""
    stored = stored.rstrip(_SEPARATORS) or stored
    here = os.path.realpath(os.fspath(local))
    if not os.path.isdir(here):
        raise LibraryError(f"{here} is not a folder on this computer")
    if not any(covers(stored, path) for path in known):
        listed = ", ".join(sorted(known)) or "none yet"
        raise LibraryError(
            f"no library folder is stored under {stored} (library folders as stored: {listed})"
        )
    log.info("root %s mapped to %s on this computer", stored, here)
    return {**{k: v for k, v in roots.items() if k != stored}, stored: here}


def unmapped(roots: Mapping[str, str], stored: str) -> dict[str, str]:
    """`roots` without the mapping of `stored` (LibraryError when there is none)."""
    stored = stored.rstrip(_SEPARATORS) or stored
    if stored not in roots:
        mapped_ = ", ".join(sorted(roots)) or "none"
        raise LibraryError(f"{stored} is not mapped on this computer (mapped: {mapped_})")
    log.info("root %s unmapped", stored)
    return {k: v for k, v in roots.items() if k != stored}
