"""Small helpers shared by the GUI modules: words, rich text, sizes, PIL → QImage,
progress lines with the time left, and the wording for companion files (what
moves together with a photo: its RAW, its Live Photo video, its sidecars)."""

from __future__ import annotations

import html
import os
from collections.abc import Iterable

from PIL import Image
from PySide6.QtCore import QLocale
from PySide6.QtGui import QImage

from dino_desktop.core.progress import Progress
from dino_desktop.gui.models import display_path

# Companion.kind in words (the details panel, the review dialogs).
COMPANION_KINDS = {"raw": "RAW original", "live": "Live Photo video", "sidecar": "sidecar"}
# Names a review dialog spells out before "and N more": enough to recognise the
# files, short enough that a 500-photo trash still fits in a message box.
NAMES_SHOWN = 4


def plural(n: int, word: str) -> str:
    """ "1 photo", "2,345 photos"."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def escape_html(text: str) -> str:
    """Plain text (a path, an error message) safe inside a rich-text label."""
    return html.escape(text, quote=False)


def code_html(text: str) -> str:
    """Plain text in a rich-text label: escaped, with `code` spans kept readable."""
    parts = escape_html(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def data_size(n: int) -> str:
    """A file size in the user's locale ("1.5 MB", 1024-based as file managers show)."""
    return QLocale().formattedDataSize(n, 1, QLocale.DataSizeFormat.DataSizeTraditionalFormat)


def rgb_qimage(img: Image.Image) -> QImage:
    """An 8-bit RGB PIL image as a QImage that owns its pixels, in RGB32 (the format
    QPainter draws without converting on every paint). Safe on any thread."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    data = img.tobytes("raw", "RGB")
    wrapped = QImage(data, img.width, img.height, 3 * img.width, QImage.Format.Format_RGB888)
    # The conversion copies the pixels out of `data` (still alive here).
    return wrapped.convertToFormat(QImage.Format.Format_RGB32)


def format_eta(seconds: float) -> str:
    """ "42 s", "2 min 05 s", "3 h 01 min"."""
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_text(phase: str, step: Progress, elapsed: float, first: int) -> str:
    """ "Reading 120 of 5,000 · about 2 min 05 s left · IMG_0042.jpg": the time left
    from the rate since the phase began (`elapsed` seconds ago, at `first` done)."""
    text = f"{phase} {step.done:,}"
    if step.total:
        text += f" of {step.total:,}"
        if step.done > first and elapsed > 1:
            rate = (step.done - first) / elapsed
            text += f" · about {format_eta((step.total - step.done) / rate)} left"
    if step.current:
        text += f" · {os.path.basename(step.current)}"
    return text


def file_names(paths: Iterable[str], limit: int = NAMES_SHOWN) -> str:
    """ "IMG_1.MOV, IMG_1.CR3.xmp and 3 more": file names (never whole paths), capped."""
    names = [display_path(os.path.basename(p)) for p in paths]
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit:,} more"


def also_moves(paths: Iterable[str], verb: str = "moves") -> str:
    """ "Also moves IMG_1.MOV, IMG_1.CR3.xmp" for the companions going along ("" when none)."""
    names = file_names(paths)
    return f"Also {verb} {names}" if names else ""


def companions_note(n: int) -> str:
    """ " (and 3 companion files)" after "Moved 2 photos" ("" when none went along)."""
    return f" (and {plural(n, 'companion file')})" if n else ""
