"""The library's write lock: one process at a time runs write jobs on a library.

Write jobs are scanning and embedding and every file operation (trash, move,
export, undo). Two processes doing those at once on one library (two CLI scans,
or the GUI and the CLI) would race on the same rows and files; SQLite keeps
each transaction sound, but not the jobs' plans (a scan's list of files to
remove, a journal's idea of where a file is). So a write job first takes an OS
file lock on ``<library>/write.lock``; a second *process* that wants one while
it is held is **refused at once** with `LibraryBusy`, whose message says what
holds the lock (the job, its process id and program, since when). Refusing
rather than waiting: a CLI scan that silently hangs behind a GUI export looks
broken, and the user can simply run it again.

Readers never take the lock: the CLI's status, list and search work while the
GUI holds the library open or scans, thanks to SQLite's WAL mode.

Within one process the lock is re-entrant and shared: the GUI may run a trash
while its own scan runs, and `Library.scan` calls `embed_pending` under the lock
it already holds. Each transaction is atomic, and the scanner re-checks every
row it writes or removes against what it read, so a photo that a file operation
moves meanwhile keeps its row (see core/scanner.py). Holding the lock is also
what lets a file operation tell an interrupted journal entry from a running one
(`FileOps.recover`): no other process can be running one.

The OS releases the lock when its holder dies, even by SIGKILL, so a crash
never leaves a library locked ("stale lock" files cannot happen: the file's
content is only a description of the holder, the lock is the kernel's).

`flock` (BSD lock, per open file) rather than `fcntl`/`lockf` (POSIX record
locks, per process): two `Library` objects in one process also exclude each
other, which the tests rely on, and closing any descriptor of the file does not
drop the lock. Windows uses ``msvcrt.locking`` on the first byte. No extra
dependency is needed for either.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import IO, Any, Concatenate, ParamSpec, Protocol, TypeVar

from dino_desktop.core.records import LibraryBusy

LOCK_NAME = "write.lock"


class LibraryLock:
    """The write lock of one library folder; see the module docstring."""

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.path = os.path.join(os.fspath(home), LOCK_NAME)
        self._mutex = threading.Lock()
        self._depth = 0
        self._file: IO[bytes] | None = None
        self._jobs: list[str] = []

    @property
    def held(self) -> bool:
        """Whether this object holds the OS lock now."""
        return self._depth > 0

    @contextlib.contextmanager
    def hold(self, job: str) -> Iterator[None]:
        """Hold the lock for `job` ("scan", "trash", ...); raises LibraryBusy when taken."""
        self.acquire(job)
        try:
            yield
        finally:
            self.release(job)

    def acquire(self, job: str) -> None:
        with self._mutex:
            if self._depth == 0:
                self._file = self._lock_os(job)
            self._depth += 1
            self._jobs.append(job)

    def release(self, job: str) -> None:
        with self._mutex:
            if self._depth == 0:
                return
            self._depth -= 1
            with contextlib.suppress(ValueError):
                self._jobs.remove(job)
            if self._depth == 0 and self._file is not None:
                handle, self._file = self._file, None
                _unlock(handle)
                handle.close()

    def holder(self) -> dict[str, Any] | None:
        """What the lock file says about its last holder (for messages; may be stale)."""
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read(4096).lstrip(b"\x00") or b"null")
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _lock_os(self, job: str) -> IO[bytes]:
        # "a+b": create if missing, never truncate before we hold the lock.
        handle = open(self.path, "a+b")  # noqa: SIM115 - kept open while held
        try:
            if not _try_lock(handle):
                raise LibraryBusy(self._busy_message(job))
            info = {
                "job": job,
                "pid": os.getpid(),
                "program": _program(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            # Windows locks byte 0 only; the description goes after it there.
            offset = 1 if sys.platform == "win32" else 0
            handle.seek(offset)
            handle.truncate(offset)
            handle.write(json.dumps(info).encode())
            handle.flush()
        except BaseException:
            handle.close()
            raise
        return handle

    def _busy_message(self, job: str) -> str:
        folder = os.path.dirname(self.path)
        info = self.holder() or {}
        what = info.get("job", "another job")
        who = []
        if "program" in info:
            who.append(str(info["program"]))
        if "pid" in info:
            who.append(f"process {info['pid']}")
        by = f" ({', '.join(who)}" + (f", since {info['since']})" if "since" in info else ")")
        return (
            f"the library {folder} is busy: a {what} is running{by if who else ''}; "
            f"cannot start {job} until it has finished (reading, e.g. status, list "
            "and search, works meanwhile)"
        )


@contextlib.contextmanager
def waiting_lock(path: str | os.PathLike[str], timeout: float = 120.0) -> Iterator[None]:
    """Hold an OS lock on `path` for a short critical section, waiting for it if taken.

    For work that is brief and must not run twice at once, such as the schema
    migrations when two processes open a new library together (both would
    create the same tables). Raises LibraryBusy after `timeout` seconds.
    """
    with open(path, "a+b") as handle:
        deadline = time.monotonic() + timeout
        while not _try_lock(handle):
            if time.monotonic() > deadline:
                raise LibraryBusy(f"{path} stayed locked for {timeout:.0f} s")
            time.sleep(0.05)
        try:
            yield
        finally:
            _unlock(handle)


def _program() -> str:
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return argv0 if argv0 not in ("", "-c", "-m") else "python"


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(handle: IO[bytes]) -> bool:
        handle.seek(0)
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(handle: IO[bytes]) -> None:
        handle.seek(0)
        with contextlib.suppress(OSError):
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(handle: IO[bytes]) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ---- decorators for the facade's write jobs ------------------------------------------

_P = ParamSpec("_P")
_R = TypeVar("_R")
_Y = TypeVar("_Y")


class _HasLock(Protocol):
    lock: LibraryLock


_S = TypeVar("_S", bound=_HasLock)


def write_op(
    job: str,
) -> Callable[[Callable[Concatenate[_S, _P], _R]], Callable[Concatenate[_S, _P], _R]]:
    """Run a method (a file operation) under its object's `lock`."""

    def decorate(fn: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
        @functools.wraps(fn)
        def wrapper(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            with self.lock.hold(job):
                return fn(self, *args, **kwargs)

        return wrapper

    return decorate


def write_job(
    job: str,
) -> Callable[
    [Callable[Concatenate[_S, _P], Generator[_Y, None, _R]]],
    Callable[Concatenate[_S, _P], Generator[_Y, None, _R]],
]:
    """Run a generator method (a long job) under its object's `lock`.

    The lock is taken when the job starts (its first step), not when it is
    created, and released when it ends, fails or is closed.
    """

    def decorate(
        fn: Callable[Concatenate[_S, _P], Generator[_Y, None, _R]],
    ) -> Callable[Concatenate[_S, _P], Generator[_Y, None, _R]]:
        @functools.wraps(fn)
        def wrapper(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> Generator[_Y, None, _R]:
            with self.lock.hold(job):
                return (yield from fn(self, *args, **kwargs))

        return wrapper

    return decorate
