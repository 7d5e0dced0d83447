"""Where a library lives on disk and its user settings.

A library is one folder (``--library DIR``, env ``DINO_DESKTOP_HOME``, else the
platform's user data dir) holding the SQLite database, the FAISS index, the
thumbnail cache, the model weights cache and ``settings.toml``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import platformdirs

APP_NAME = "dino-desktop"
HOME_ENV = "DINO_DESKTOP_HOME"
WEIGHTS_ENV = "DINO_DESKTOP_WEIGHTS"


def default_home() -> Path:
    """The platform's user data dir for the app (e.g. ~/.local/share/dino-desktop)."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def library_home(override: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the library folder: explicit option, then the environment, then the default."""
    if override:
        return Path(override).expanduser().resolve()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return default_home()


@dataclass(frozen=True, slots=True)
class LibraryPaths:
    """The files of one library, all under `home`."""

    home: Path

    @property
    def db(self) -> Path:
        return self.home / "library.sqlite3"

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


@dataclass(slots=True)
class Settings:
    """User settings; unknown keys in the file are ignored so older apps read newer files."""

    model: str = "vit_small_patch14_dinov2"
    device: str = "auto"
    batch_size: int = 16
    # auto | fp32 | bf16 | int8: the embedder's compute precision. auto = bf16 only where
    # the CPU/GPU computes it natively and its embeddings stay within cosine 0.999 of
    # fp32, else fp32; int8 = quantised linear layers on the CPU (opt-in).
    precision: str = "auto"

    @classmethod
    def load(cls, path: Path) -> Settings:
        if not path.exists():
            return cls()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            # A damaged settings file must not keep the app from opening.
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> None:
        lines = [f"{key} = {_toml_value(value)}" for key, value in asdict(self).items()]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
