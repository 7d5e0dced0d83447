"""Take the README's screenshots from the real app (run under Xvfb: xvfb-run -a python ...).

    xvfb-run -a -s "-screen 0 1400x900x24" python docs/screenshots/take.py PHOTOS [WEIGHTS]

Scans PHOTOS into a fresh library in a temp dir, then grabs each view. Without
real DINOv2 weights (none can be downloaded on the development machines) the
similarity ranking in the pictures is that of random weights: layout only.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from dino_desktop.core.library import Library
from dino_desktop.gui import theme
from dino_desktop.gui.app import app_icon
from dino_desktop.gui.dialogs import SettingsDialog
from dino_desktop.gui.failed_dialog import FailedFilesDialog
from dino_desktop.gui.main_window import MainWindow

OUT = Path(__file__).resolve().parent


def wait(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def until(check: object, timeout_ms: int = 60000) -> None:
    waited = 0
    while not check() and waited < timeout_ms:  # type: ignore[operator]
        wait(50)
        waited += 50


def shot(widget: QWidget, name: str) -> None:
    wait(400)
    widget.grab().save(str(OUT / name))
    print("wrote", OUT / name)


def main() -> None:
    photos, weights = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
    app = QApplication(sys.argv[:1])
    app.setWindowIcon(app_icon())
    theme.apply(app, dark="--dark" in sys.argv)
    with tempfile.TemporaryDirectory() as home:
        lib = Library(home, weights=weights)
        win = MainWindow(lib, prompt_for_weights=False)
        win.resize(1400, 860)
        win.show()
        worker = win.start_scan([photos])
        until(lambda: win.progress_label.text() != "")
        shot(win, "scanning.png")
        until(lambda: win.worker is None, 600000)
        assert worker is not None
        until(lambda: len(win.photos_view.photos()) > 0)
        win.photos_view.grid.select_rows([1])
        until(lambda: win.loader.pending_count() == 0)
        shot(win, "photos.png")
        viewer = win.open_viewer(win.photos_view.photos()[1])
        viewer.resize(1100, 760)
        until(lambda: not viewer.is_loading)
        shot(viewer, "viewer.png")
        if weights:
            viewer.set_overlay_visible(True)
            until(lambda: viewer.overlay_map is not None and not viewer.is_computing_overlay)
            shot(viewer, "overlay.png")
        viewer.close()
        if weights:
            rows = win.photos_view.photos()
            picks = [rows[0], rows[8], rows[20]] if len(rows) > 20 else rows[:3]
            compare = win.compare(picks)
            assert compare is not None
            compare.resize(1300, 560)
            until(lambda: len(compare.maps) == len(picks))
            shot(compare, "compare.png")
            compare.close()
            search = win.find_similar(win.photos_view.photos()[1])
            until(lambda: win.search_worker is None)
            until(lambda: win.loader.pending_count() == 0)
            shot(win, "similar.png")
            assert search is not None
        win.show_view(2)
        found = win.duplicates_view.find("phash")
        assert found is not None
        until(lambda: len(win.duplicates_view.groups()) > 0)
        until(lambda: win.loader.pending_count() == 0)
        shot(win, "duplicates.png")
        dialog = FailedFilesDialog(list(lib.images(failed_only=True)), win)
        dialog.show()
        shot(dialog, "unreadable.png")
        dialog.close()
        settings = SettingsDialog(lib, win)
        settings.show()
        shot(settings, "settings.png")
        settings.close()
        win.close()
        lib.close()


if __name__ == "__main__":
    main()
