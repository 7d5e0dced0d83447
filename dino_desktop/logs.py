"""The app's log: one rotating file per user, and warnings on stderr for the CLI.

`setup_logging` is called once at start-up by the CLI (`cli.main`) and by the
GUI (`gui.app.run_gui`). The file is in the platform's user log dir (e.g.
``~/.local/state/dino-desktop/log/dino-desktop.log`` on Linux), or in
``$DINO_DESKTOP_LOG_DIR`` when that is set (tests, or a user who wants it
elsewhere). The gui-script has no console, so the file is where a traceback
of a crash ends up (see `gui.app.install_excepthooks`).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import TextIO

import platformdirs

from dino_desktop.config import APP_NAME

LOG_DIR_ENV = "DINO_DESKTOP_LOG_DIR"
LOG_FILE_NAME = "dino-desktop.log"
MAX_BYTES = 2 * 1024 * 1024  # per file: a few MB is months of normal use
BACKUP_COUNT = 3  # dino-desktop.log.1 .. .3: at most ~8 MB in all
FILE_FORMAT = "%(asctime)s %(levelname)-7s %(process)d %(threadName)s %(name)s: %(message)s"
# Chatty third-party loggers (PIL logs every decoded chunk at DEBUG).
NOISY_LOGGERS = ("PIL", "urllib3", "filelock", "huggingface_hub", "matplotlib", "faiss")

# Marks our handlers, so a second call replaces them instead of adding more.
_OURS = "_dino_desktop_handler"


def log_dir() -> Path:
    """Where the log files go: $DINO_DESKTOP_LOG_DIR, else the platform's user log dir."""
    env = os.environ.get(LOG_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return platformdirs.user_log_path(APP_NAME, appauthor=False)


def log_file() -> Path:
    """The current log file (older ones are ``<name>.1`` … next to it)."""
    return log_dir() / LOG_FILE_NAME


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of the record.

    Not the stream of start-up: tests swap stderr per test, and the gui-script
    has none at all (then records go to the file only).
    """

    def __init__(self, level: int) -> None:
        logging.Handler.__init__(self, level)  # StreamHandler's would store a stream

    @property
    def stream(self) -> TextIO | None:
        return sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        if sys.stderr is not None:
            super().emit(record)


class _CliFormatter(logging.Formatter):
    """``dino-desktop: warning: …``, like the CLI's own messages."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"dino-desktop: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            # The traceback belongs in the file; stderr gets the one line.
            text += f" ({record.exc_info[1]!r})"
        return text


def setup_logging(*, console: bool = True, level: int = logging.INFO) -> Path | None:
    """Log at `level` to the rotating file and, with `console`, warnings to stderr.

    Returns the log file, or None when it could not be opened (a read-only
    home): logging must never keep the app from starting. Safe to call again
    (the CLI sets it up, then the GUI it starts does): it replaces the
    handlers it added before instead of adding more.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)

    path: Path | None = log_file()
    try:
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
        )
    except OSError:
        path = None
    else:
        file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
        setattr(file_handler, _OURS, True)
        root.addHandler(file_handler)

    if console:
        stderr = _StderrHandler(logging.WARNING)
        stderr.setFormatter(_CliFormatter())
        setattr(stderr, _OURS, True)
        root.addHandler(stderr)
    return path
