"""Where a library lives on disk and its user settings.

A library is one folder (``--library DIR``, env ``DINO_DESKTOP_HOME``, else the
platform's user data dir) holding the SQLite database, the FAISS index, the
thumbnail cache, the model weights cache and ``settings.toml``. A shared library
(``--library postgresql://...``) keeps its catalog on the server; this machine's
own part of it (caches, weights, settings such as where the shared folders are
mounted here) lives in a folder of the user data dir named for the server and
database (`shared_home`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

APP_NAME = "dino-desktop"
HOME_ENV = "DINO_DESKTOP_HOME"
WEIGHTS_ENV = "DINO_DESKTOP_WEIGHTS"


def default_home() -> Path:
    """The platform's user data dir for the app (e.g. ~/.local/share/dino-desktop)."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


_URL_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")


def is_shared(target: object) -> bool:
    """Whether a library given by the user is a shared one (a PostgreSQL URL)."""
    return isinstance(target, str) and target.startswith(_URL_SCHEMES)


def library_target(override: str | os.PathLike[str] | None = None) -> str | Path:
    """The library the user asked for: explicit option, then the environment, then the
    default folder. A folder as a resolved Path; a shared library as its URL."""
    chosen = override or os.environ.get(HOME_ENV)
    if not chosen:
        return default_home()
    if is_shared(chosen):
        return str(chosen)
    return Path(chosen).expanduser().resolve()


def library_home(override: str | os.PathLike[str] | None = None) -> Path:
    """The local folder of a library: the folder itself, or a shared library's own."""
    target = library_target(override)
    return shared_home(target) if isinstance(target, str) else target


def shared_home(url: str) -> Path:
    """This machine's folder of a shared library: named for its server and database
    (never the password), under the user data dir."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    where = f"{parsed.username or ''}@{parsed.host or 'local'}:{parsed.port or 5432}/"
    where += f"{parsed.database or ''}?{parsed.query.get('host', '')}"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{parsed.host or 'local'}-{parsed.database or ''}")
    digest = hashlib.sha256(where.encode()).hexdigest()[:10]
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "shared" / f"{slug}-{digest}"


@dataclass(frozen=True, slots=True)
class LibraryPaths:
    """The files of one library, all under `home`; `url`: a shared library's server."""

    home: Path
    url: str | None = None

    @property
    def db(self) -> Path:
        return self.home / "library.sqlite3"

    @property
    def database(self) -> Path | str:
        """What the engine opens: the SQLite file, or the shared library's URL."""
        return self.url if self.url is not None else self.db

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def settings(self) -> Path:
        return self.home / "settings.toml"

    def ensure(self) -> None:
        for folder in (self.home, self.index_dir, self.models_dir, self.cache_dir):
            folder.mkdir(parents=True, exist_ok=True)


# What each setting may hold: a bad value falls back to the default, with a message.
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_PRECISIONS = ("auto", "fp32", "bf16", "int8")
MAX_BATCH_SIZE = 4096


def _check_model(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_device(value: object) -> bool:
    return isinstance(value, str) and _DEVICE.match(value) is not None


def _check_batch_size(value: object) -> bool:
    # bool is an int subclass: `batch_size = true` is not a size.
    return type(value) is int and 1 <= value <= MAX_BATCH_SIZE


def _check_precision(value: object) -> bool:
    return value in _PRECISIONS


def _check_words(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


def _check_rules(value: object) -> bool:
    from dino_desktop.core.keeper import parse_rules

    if not _check_words(value):
        return False
    try:
        parse_rules(value)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def _check_roots(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip()
        for k, v in value.items()
    )


_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "model": (_check_model, "a model name"),
    "device": (_check_device, "auto, cpu, cuda, cuda:N or mps"),
    "batch_size": (_check_batch_size, f"a whole number from 1 to {MAX_BATCH_SIZE}"),
    "precision": (_check_precision, ", ".join(_PRECISIONS)),
    "watch_folders": (lambda value: type(value) is bool, "true or false"),
    "keeper_rules": (_check_rules, "a list of keeper rules (see `duplicates --prefer`)"),
    "format_order": (_check_words, "a list of format names, best first"),
    "preferred_folders": (_check_words, "a list of folder paths"),
    "roots": (_check_roots, "a table of stored folder root = this machine's path"),
}


@dataclass(slots=True)
class Settings:
    """User settings; unknown keys in the file are kept but unused, so older apps
    read (and save) newer files.

    `problem` is not a setting: `load` puts there, for the user, what was wrong
    with the file (None when it read cleanly). The CLI prints it on stderr and
    the GUI shows it once.
    """

    model: str = "vit_small_patch14_dinov2"
    device: str = "auto"
    batch_size: int = 16
    # auto | fp32 | bf16 | int8: the embedder's compute precision. auto = bf16 only where
    # the CPU/GPU computes it natively and its embeddings stay within cosine 0.999 of
    # fp32, else fp32; int8 = quantised linear layers on the CPU (opt-in).
    precision: str = "auto"
    # Live folders: library folders watched for changes while the app runs (core/watcher.py).
    watch_folders: bool = True
    # Duplicates: the keeper rules in the user's order (core/keeper.py; empty: the
    # documented default), the format order of the "format" rule, and the folders
    # the "preferred" rule favours, earlier first.
    keeper_rules: list[str] = field(default_factory=list)
    format_order: list[str] = field(default_factory=list)
    preferred_folders: list[str] = field(default_factory=list)
    # Library folder roots as this machine reaches them (core/roots.py): the root as
    # the library stores it (another computer's mount point) = this machine's path.
    roots: dict[str, str] = field(default_factory=dict)
    problem: str | None = field(default=None, compare=False, repr=False)
    # Keys this release does not know (a newer one wrote them): written back
    # unchanged by `save`, so using an older app does not lose them.
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Read `path`; never fails on a bad file, never deletes one.

        A file that is not TOML is moved aside to ``settings.toml.bad-<time>``
        and the defaults are used. A value of the wrong type or out of range
        falls back to its default alone; the file as it was is kept aside the
        same way and rewritten without the bad values (so the user is told
        once, not at every start). Either way `problem` says what happened;
        the front ends show it and log it.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except UnicodeDecodeError:
            return cls(problem=cls._damaged(path, "it is not text", rewrite=None))
        except OSError as exc:  # unreadable (permissions): leave it where it is
            return cls(
                problem=f"The settings file {path} could not be read ({exc}); "
                "the default settings are used."
            )
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            return cls(problem=cls._damaged(path, f"it is not valid TOML: {exc}", rewrite=None))
        settings = cls()
        bad: list[str] = []
        for key, (check, expected) in _CHECKS.items():
            if key not in data:
                continue
            if check(data[key]):
                setattr(settings, key, data[key])
            else:
                bad.append(f"{key} = {data.pop(key)!r} (expected {expected})")
        if bad:
            # `data` keeps unknown keys: a newer app's settings survive the rewrite.
            settings.problem = cls._damaged(path, "; ".join(bad), rewrite=data)
        settings.extra = {k: v for k, v in data.items() if k not in _CHECKS}
        return settings

    @staticmethod
    def _damaged(path: Path, why: str, *, rewrite: dict[str, Any] | None) -> str:
        """Move `path` aside (never over an older copy), optionally write `rewrite`
        in its place, and say so in a sentence for the user."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{path.name}.bad-{stamp}")
        n = 1
        while aside.exists():  # two damaged files in one second: keep both
            aside = path.with_name(f"{path.name}.bad-{stamp}-{n}")
            n += 1
        what = f"Settings file {path}: {why}."
        try:
            path.replace(aside)
        except OSError as exc:
            return f"{what} The default settings are used (it could not be moved aside: {exc})."
        if rewrite is not None:
            # On failure the defaults still apply and the next start says so again.
            with contextlib.suppress(OSError):
                path.write_text(tomli_w.dumps(rewrite), encoding="utf-8")
            return (
                f"{what} Those settings use their defaults; the file as it was is kept as {aside}."
            )
        return f"{what} The default settings are used; the file is kept as {aside}."

    def to_dict(self) -> dict[str, Any]:
        """The settings as written to the file (without `problem`)."""
        known = {f.name: getattr(self, f.name) for f in fields(self) if f.name in _CHECKS}
        return {**self.extra, **known}

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(tomli_w.dumps(self.to_dict()), encoding="utf-8")
        tmp.replace(path)
