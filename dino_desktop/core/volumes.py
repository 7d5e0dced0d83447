"""Which drive a folder lives on, and whether that drive is there now.

A library folder on a USB disk or a NAS must never be emptied because the drive
is not mounted: an unmounted drive leaves either no folder at all or an empty
mount-point folder, and a scan of either would see every photo "gone". So each
folder records the mount point it was found under and the identity of that
filesystem (`Volume`), and a scan skips a folder that is `unavailable`: its
path is missing, the mount point it was on is no longer a mount, or it is an
empty folder while the catalog holds photos for it.

The filesystem's identity survives a new mount point: on Linux it is the
filesystem UUID (`/dev/disk/by-uuid`), or for a network share its source
(`server:/export`, `//server/share`). `find_volume` looks for a recorded
identity among today's mounts, so an offline folder can be offered its new path
("this is the same drive"). Elsewhere (macOS, Windows) the identity is not read
yet: folders still go offline safely, and the user re-points them by hand
(`relocate`).

Network filesystems (and FUSE ones) send no change events: the watcher polls them
(core/watcher.py), which is why `Volume.network` is kept.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from functools import lru_cache

log = logging.getLogger(__name__)

# Filesystems whose changes a local watcher never hears of (inotify sees only the
# changes this machine makes): they are polled instead.
NETWORK_FSTYPES = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs",
        "fuse.sshfs", "fuse.rclone", "fuse.gvfsd-fuse", "davfs", "fuse.davfs2", "fuse.s3fs",
        "fuse.smbnetfs", "fuse.mergerfs", "lustre", "gpfs", "beegfs",
    }
)  # fmt: skip


# Polled like a share (no change events), but its files are on this machine's disks.
LOCAL_POOLS = frozenset({"fuse.mergerfs"})


@dataclass(frozen=True, slots=True)
class Mount:
    point: str
    fstype: str
    source: str
    dev: tuple[int, int]  # major, minor


@dataclass(frozen=True, slots=True)
class Volume:
    """The filesystem a path is on: `id` ("uuid:…", "net:…") or None when unknown."""

    id: str | None
    mount: str
    relpath: str  # the path under `mount` ("" for the mount point itself)
    network: bool
    fstype: str


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounts() -> list[Mount]:
    """Today's mounts (Linux: /proc/self/mountinfo); [] where that is not available."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    out: list[Mount] = []
    for line in lines:
        left, sep, right = line.partition(" - ")
        parts, tail = left.split(), right.split()
        if not sep or len(parts) < 5 or len(tail) < 2:
            continue
        major, _, minor = parts[2].partition(":")
        try:
            dev = (int(major), int(minor))
        except ValueError:
            continue
        out.append(Mount(_unescape(parts[4]), tail[0], _unescape(tail[1]), dev))
    return out


@lru_cache(maxsize=1)
def _uuids_cached(stamp: float) -> dict[tuple[int, int], str]:
    del stamp  # only the cache key: the folder's mtime changes when a disk comes or goes
    out: dict[tuple[int, int], str] = {}
    folder = "/dev/disk/by-uuid"
    try:
        names = os.listdir(folder)
    except OSError:
        return out
    for name in names:
        try:
            rdev = os.stat(os.path.join(folder, name)).st_rdev
        except OSError:
            continue
        out[(os.major(rdev), os.minor(rdev))] = name
    return out


def _uuids() -> dict[tuple[int, int], str]:
    try:
        stamp = os.stat("/dev/disk/by-uuid").st_mtime
    except OSError:
        return {}
    return _uuids_cached(stamp)


def _identity(mount: Mount, uuids: dict[tuple[int, int], str]) -> str | None:
    if mount.fstype in NETWORK_FSTYPES:
        return f"net:{mount.source}"
    uuid = uuids.get(mount.dev)
    if uuid is None and mount.source.startswith("/dev/"):
        try:
            rdev = os.stat(mount.source).st_rdev
            uuid = uuids.get((os.major(rdev), os.minor(rdev)))
        except OSError:
            uuid = None
    return f"uuid:{uuid}" if uuid else None


def mount_point(path: str) -> str:
    """The mount point a (existing) path is under: the nearest ancestor that is a mount."""
    current = os.path.abspath(path)
    while not os.path.ismount(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def volume_of(path: str) -> Volume:
    """The filesystem `path` (an existing folder) is on."""
    point = mount_point(path)
    rel = os.path.relpath(path, point) if path != point else ""
    rel = "" if rel == "." else rel
    found = [m for m in mounts() if m.point == point]
    if not found:
        return Volume(None, point, rel, False, "")
    mount = found[-1]  # the last one mounted over this point is the one seen
    return Volume(_identity(mount, _uuids()), point, rel, mount.fstype in NETWORK_FSTYPES,
                  mount.fstype)  # fmt: skip


def find_volume(volume_id: str) -> list[str]:
    """Mount points where the filesystem `volume_id` is mounted now."""
    uuids = _uuids()
    return [m.point for m in mounts() if _identity(m, uuids) == volume_id]


def unavailable(path: str, mount: str | None, has_photos: bool) -> str | None:
    """Why a library folder cannot be scanned now (its drive is not there), or None.

    `mount` is the mount point recorded when the folder was last seen; `has_photos`
    whether the catalog holds photos for it (an empty folder is then suspect).
    """
    if not os.path.isdir(path):
        return f"folder not available: {path} (is its drive connected?)"
    root = os.path.abspath(os.sep)
    if mount and mount != root and is_below(path, mount) and not os.path.ismount(mount):
        return f"folder not available: {path} (the drive at {mount} is not mounted)"
    if has_photos:
        try:
            with os.scandir(path) as entries:
                empty = next(entries, None) is None
        except OSError:
            return None  # unreadable: the scan reports it and keeps the rows
        if empty:
            return (
                f"folder is empty: {path}; its photos are kept in the library, as an "
                "unmounted drive looks like this (remove the folder from the library if "
                "its photos are really gone)"
            )
    return None


def is_below(path: str, root: str) -> bool:
    """Whether `path` is `root` or inside it (lexically)."""
    root = root.rstrip(os.sep) or os.sep
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)


def _existing(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.exists(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return current


def network_fstype(path: str) -> str | None:
    """The network filesystem `path` (or its nearest existing ancestor) is on, e.g.
    "nfs4", "cifs", "smbfs"; None for a local disk or where it cannot be told."""
    path = _existing(path)
    if sys.platform == "win32":
        return _windows_network(path)
    if sys.platform == "darwin":
        return _macos_fstype(path)
    point = mount_point(path)
    found = [m for m in mounts() if m.point == point]
    if found and found[-1].fstype in NETWORK_FSTYPES - LOCAL_POOLS:
        return found[-1].fstype
    return None


def _windows_network(path: str) -> str | None:
    if path.startswith(("\\\\", "//")):
        return "SMB"  # a UNC path: \\server\share
    if sys.platform != "win32":  # (for the type checker: called on Windows only)
        return None
    import ctypes

    drive = os.path.splitdrive(path)[0] + "\\"
    remote = 4  # DRIVE_REMOTE: a mapped network drive
    return "SMB" if ctypes.windll.kernel32.GetDriveTypeW(drive) == remote else None


def _macos_fstype(path: str) -> str | None:
    # `mount` lists "//user@nas/photos on /Volumes/photos (smbfs, nodev, ...)".
    import subprocess

    try:
        listing = subprocess.run(
            ["/sbin/mount"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    point = mount_point(path)
    for line in listing.splitlines():
        where, _, rest = line.partition(" on ")
        mounted, _, options = rest.rpartition(" (")
        if where and mounted == point:
            fstype = options.split(",")[0].strip(" )")
            return fstype if fstype in {"smbfs", "nfs", "afpfs", "webdav", "cifs"} else None
    return None


def supported() -> bool:
    """Whether filesystem identities are read on this OS (same-drive detection)."""
    return sys.platform.startswith("linux")
