"""The About box's text: version, model and weights, where the library keeps its
data, and the licences of what the app is built on."""

from __future__ import annotations

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import qVersion

from dino_desktop import __version__
from dino_desktop.config import LibraryPaths
from dino_desktop.gui.common import escape_html


def about_html(model: str, weights: str | None, paths: LibraryPaths) -> str:
    """Rich text for QMessageBox.about; `weights` None reads "not installed"."""
    return (
        f"<h3>DINO Desktop {__version__}</h3>"
        "<p>A photo organizer that understands pictures. MIT licence.</p>"
        f"<p><b>Model:</b> {escape_html(model)}<br>"
        f"<b>Weights:</b> {escape_html(weights or 'not installed')}</p>"
        f"<p><b>Library (your data):</b> {escape_html(str(paths.home))}<br>"
        f"<b>Models:</b> {escape_html(str(paths.models_dir))}<br>"
        f"<b>Settings:</b> {escape_html(str(paths.settings))}</p>"
        "<p>DINOv2 model and weights © Meta Platforms, Inc., Apache License 2.0 "
        "(github.com/facebookresearch/dinov2). "
        f"Qt {qVersion()} © The Qt Company, LGPLv3; PySide6 {pyside_version}, LGPLv3. "
        "PyTorch (BSD-3-Clause), timm (Apache-2.0), FAISS (MIT).</p>"
    )
