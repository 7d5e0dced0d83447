"""The settings dialog and the model-weights dialog (download, cancel, offline, import)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import weightsgen
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QDialog, QFileDialog
from pytestqt.qtbot import QtBot
from qtsync import deliver_posted_events

from dino_desktop.config import Settings
from dino_desktop.core import weights as wts
from dino_desktop.core.library import Library
from dino_desktop.core.progress import Job, Progress
from dino_desktop.gui.dialogs import (
    SettingsDialog,
    WeightsDialog,
    listed_models,
    model_label,
)

TIMEOUT_MS = 120_000  # verifying weights imports torch and timm, slow on a cold start


@pytest.fixture
def pool() -> Iterator[QThreadPool]:
    """The dialogs' thread pool; no test may leave a worker running."""
    pool = QThreadPool()
    yield pool
    assert pool.waitForDone(TIMEOUT_MS)
    assert pool.activeThreadCount() == 0


@pytest.fixture
def library(tmp_path: Path) -> Iterator[Library]:
    weightsgen.register_tiny_model()
    lib = Library(tmp_path / "lib", model=weightsgen.TINY)
    yield lib
    lib.close()


@pytest.fixture
def good_weights(tmp_path: Path) -> Path:
    return weightsgen.write_meta_checkpoint(tmp_path / "dl" / "tiny.pth", weightsgen.TINY)


def cache_files(lib: Library) -> list[str]:
    """Everything in the model cache, hidden partial files included."""
    return sorted(os.listdir(lib.paths.models_dir))


def weights_dialog(qtbot: QtBot, lib: Library, pool: QThreadPool, **kw: Any) -> WeightsDialog:
    dialog = WeightsDialog(lib, pool=pool, **kw)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def wait_done(qtbot: QtBot, dialog: WeightsDialog) -> None:
    qtbot.waitUntil(lambda: not dialog.busy, timeout=TIMEOUT_MS)


# ---- weights dialog -----------------------------------------------------------------


def test_weights_dialog_explains_in_plain_words(
    qtbot: QtBot, tmp_path: Path, pool: QThreadPool
) -> None:
    lib = Library(tmp_path / "lib")
    dialog = weights_dialog(qtbot, lib, pool)
    texts = " ".join(label.text() for label in dialog.findChildren(type(dialog.message_label)))
    assert (
        "DINO Desktop needs the DINOv2 model (about 88 MB) to find similar photos. "
        "Everything else works without it." in texts
    )
    buttons = [dialog.download_button, dialog.import_button, dialog.not_now_button]
    assert [b.text() for b in buttons] == [
        "Download",
        "Import file\N{HORIZONTAL ELLIPSIS}",
        "Not now",
    ]
    assert dialog.download_button.isEnabled()
    dialog.not_now_button.click()
    assert dialog.result() == QDialog.DialogCode.Rejected and not dialog.isVisible()
    lib.close()


def test_import_of_a_good_file_installs_it_and_accepts(
    qtbot: QtBot, library: Library, pool: QThreadPool, good_weights: Path
) -> None:
    dialog = weights_dialog(qtbot, library, pool)
    assert not dialog.download_button.isEnabled()  # the test model has no download
    with qtbot.waitSignal(dialog.accepted, timeout=TIMEOUT_MS):
        dialog.start_import(str(good_weights))
        assert dialog.busy and dialog.progress.isVisibleTo(dialog)
    assert dialog.installed_path == library.paths.models_dir / f"{weightsgen.TINY}.pth"
    assert library.weights_path() == dialog.installed_path
    assert dialog.installed_path.read_bytes() == good_weights.read_bytes()


def test_import_button_opens_a_file_dialog(
    qtbot: QtBot,
    library: Library,
    pool: QThreadPool,
    good_weights: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    def fake_open(*args: Any) -> tuple[str, str]:
        asked.append(args[3])
        return str(good_weights), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(fake_open))
    dialog = weights_dialog(qtbot, library, pool)
    with qtbot.waitSignal(dialog.weights_installed, timeout=TIMEOUT_MS):
        dialog.import_button.click()
    assert "*.safetensors" in asked[0] and "*.pth" in asked[0] and "*.pt" in asked[0]
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted)


def test_import_of_a_bad_file_shows_the_error_and_keeps_the_cache_empty(
    qtbot: QtBot, library: Library, pool: QThreadPool, tmp_path: Path
) -> None:
    bad = tmp_path / "model.pth"
    bad.write_bytes(b"this is not a weights file" * 100)
    dialog = weights_dialog(qtbot, library, pool)
    dialog.start_import(str(bad))
    wait_done(qtbot, dialog)
    assert dialog.isVisible() and dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.outcome is not None and dialog.outcome.kind == "invalid"
    text = dialog.message_label.text()
    assert dialog.message_label.isVisibleTo(dialog)
    assert "cannot be used as the model" in text and "model.pth" in text
    assert "Traceback" not in text
    assert cache_files(library) == []
    # The user can try again.
    assert dialog.import_button.isEnabled()


def test_download_from_a_url_shows_progress_and_installs(
    qtbot: QtBot,
    library: Library,
    pool: QThreadPool,
    good_weights: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dialog = weights_dialog(qtbot, library, pool, url=good_weights.as_uri())
    assert dialog.download_button.isEnabled()
    labels: list[str] = []
    values: list[int] = []

    # Recorded by the dialog's own progress slot, so no step can slip past
    # before a connection made after the download started.
    shown = WeightsDialog._on_download_progress

    def record(self: WeightsDialog, step: Progress) -> None:
        shown(self, step)
        labels.append(self.progress_label.text())
        values.append(self.progress.value())

    monkeypatch.setattr(WeightsDialog, "_on_download_progress", record)
    with qtbot.waitSignal(dialog.accepted, timeout=TIMEOUT_MS):
        dialog.download_button.click()
        assert dialog.cancel_button.isVisibleTo(dialog)
    size_mb = f"{good_weights.stat().st_size / 1e6:.1f} MB"
    assert labels and labels[-1].startswith(f"{size_mb} of {size_mb}")
    assert values[-1] == dialog.progress.maximum() == 1000
    assert dialog.installed_path is not None and dialog.installed_path.is_file()
    assert library.weights_path() == dialog.installed_path
    assert cache_files(library) == [f"{weightsgen.TINY}.pth"]


class HeldDownload:
    """Wraps the `download_weights` job so that after the first chunk the transfer
    waits for `release`: a cancel then lands mid-download however fast the disk is."""

    def __init__(self) -> None:
        self.chunks: list[int] = []
        self.release = threading.Event()
        self._real = wts.download_weights

    def __call__(self, *args: Any, **kw: Any) -> Job[Path]:
        job = self._real(*args, **kw)
        try:
            while True:
                try:
                    step = next(job)
                except StopIteration as stop:
                    path: Path = stop.value
                    return path
                if step.phase == "download":
                    self.chunks.append(step.done)
                yield step
                if step.phase == "download" and step.done > 0:
                    self.release.wait(30)
        finally:
            job.close()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldDownload]:
    held = HeldDownload()
    monkeypatch.setattr(wts, "download_weights", held)
    yield held
    held.release.set()  # never leave the download thread waiting


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    big = tmp_path / "big.pth"
    big.write_bytes(os.urandom(4 << 20))  # four 1 MiB chunks
    return big


def test_cancel_stops_the_download_and_leaves_nothing(
    qtbot: QtBot, library: Library, pool: QThreadPool, big_file: Path, held: HeldDownload
) -> None:
    dialog = weights_dialog(qtbot, library, pool, url=big_file.as_uri())
    dialog.start_download()
    # The size is on screen and a chunk is written (later chunks wait for `release`).
    qtbot.waitUntil(
        lambda: " of 4.2 MB" in dialog.progress_label.text() and any(held.chunks),
        timeout=TIMEOUT_MS,
    )
    assert any(name.endswith(".part") for name in cache_files(library))  # mid-transfer
    dialog.cancel_button.click()
    assert "Stopping" in dialog.progress_label.text()
    held.release.set()
    wait_done(qtbot, dialog)
    assert dialog.outcome is not None and dialog.outcome.kind == "cancelled"
    assert held.chunks[-1] < big_file.stat().st_size  # stopped before the end
    assert "cancelled" in dialog.message_label.text()
    assert dialog.isVisible() and dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.download_button.isEnabled()  # free to try again
    assert cache_files(library) == []


def test_closing_during_a_download_cancels_it(
    qtbot: QtBot, library: Library, pool: QThreadPool, big_file: Path, held: HeldDownload
) -> None:
    dialog = weights_dialog(qtbot, library, pool, url=big_file.as_uri())
    dialog.start_download()
    qtbot.waitUntil(lambda: any(held.chunks), timeout=TIMEOUT_MS)
    dialog.reject()  # Esc, the window's close button, or "Not now"
    assert not dialog.isVisible()
    held.release.set()
    wait_done(qtbot, dialog)
    assert dialog.outcome is not None and dialog.outcome.kind == "cancelled"
    assert dialog.result() == QDialog.DialogCode.Rejected
    assert cache_files(library) == []


def test_unreachable_url_says_offline(qtbot: QtBot, library: Library, pool: QThreadPool) -> None:
    dialog = weights_dialog(qtbot, library, pool, url="file:///nonexistent/model.pth")
    dialog.download_button.click()
    wait_done(qtbot, dialog)
    assert dialog.outcome is not None and dialog.outcome.kind == "offline"
    text = dialog.message_label.text()
    assert text.startswith(
        "You seem to be offline: the model could not be downloaded. You can import a "
        "weights file instead ("
    )
    assert "file:///nonexistent/model.pth" in text
    assert "and everything else keeps working." in text
    assert dialog.isVisible() and dialog.import_button.isEnabled()
    assert cache_files(library) == []


def test_offline_message_names_the_real_download_urls(
    qtbot: QtBot, tmp_path: Path, pool: QThreadPool
) -> None:
    lib = Library(tmp_path / "lib")
    dialog = weights_dialog(qtbot, lib, pool, url="file:///nonexistent/model.safetensors")
    dialog.start_download()
    wait_done(qtbot, dialog)
    text = dialog.message_label.text()
    spec = wts.get_spec(lib.model_name)
    assert "You seem to be offline" in text
    assert spec.hf_url is not None and spec.meta_url is not None
    assert spec.hf_url in text and spec.meta_url in text
    lib.close()


# ---- settings dialog ----------------------------------------------------------------


def test_settings_lists_real_models_with_readable_names(qtbot: QtBot, tmp_path: Path) -> None:
    weightsgen.register_tiny_model()
    lib = Library(tmp_path / "lib")
    dialog = SettingsDialog(lib)
    qtbot.addWidget(dialog)
    names = [dialog.model_combo.itemData(i) for i in range(dialog.model_combo.count())]
    assert weightsgen.TINY not in names  # test-only: no download source
    assert set(names) == {s.name for s in wts.MODELS.values() if s.hf_repo or s.meta_url}
    assert names[0] == "vit_small_patch14_dinov2" and dialog.selected_model == names[0]
    labels = [dialog.model_combo.itemText(i) for i in range(dialog.model_combo.count())]
    assert labels[0] == "ViT-S/14 (384-d, ~88 MB)"
    assert labels[1] == "ViT-S/14 with registers (384-d, ~88 MB)"
    assert "ViT-g/14 (1536-d, ~4.5 GB)" in labels
    assert [model_label(s) for s in listed_models()] == labels
    assert "Not installed" in dialog.weights_label.text()
    lib.close()


def test_settings_save_round_trips_to_settings_toml(qtbot: QtBot, tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    dialog = SettingsDialog(lib)
    qtbot.addWidget(dialog)
    dialog.model_combo.setCurrentIndex(dialog.model_combo.findData("vit_base_patch14_reg4_dinov2"))
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    dialog.precision_combo.setCurrentIndex(dialog.precision_combo.findData("bf16"))
    dialog.batch_spin.setValue(8)
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.model_changed and dialog.runtime_changed
    saved = Settings.load(lib.paths.settings)
    assert (saved.model, saved.device, saved.precision, saved.batch_size) == (
        "vit_base_patch14_reg4_dinov2",
        "cpu",
        "bf16",
        8,
    )
    assert saved == lib.settings
    assert 'precision = "bf16"' in lib.paths.settings.read_text(encoding="utf-8")
    lib.close()
    # A new Library reads them back, and the dialog shows them.
    again = Library(tmp_path / "lib")
    assert again.model_name == "vit_base_patch14_reg4_dinov2"
    dialog = SettingsDialog(again)
    qtbot.addWidget(dialog)
    assert dialog.selected_model == "vit_base_patch14_reg4_dinov2"
    assert dialog.device_combo.currentData() == "cpu"
    assert dialog.precision_combo.currentData() == "bf16"
    assert dialog.batch_spin.value() == 8
    dialog.accept()  # nothing changed
    assert not dialog.model_changed and not dialog.runtime_changed
    again.close()


def test_settings_switch_watching_library_folders(qtbot: QtBot, tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    dialog = SettingsDialog(lib)
    qtbot.addWidget(dialog)
    assert dialog.watch_check.text() == "&Watch library folders for changes"
    assert dialog.watch_check.isChecked()  # on by default
    dialog.watch_check.setChecked(False)
    dialog.accept()
    assert dialog.watch_changed and not dialog.runtime_changed
    assert Settings.load(lib.paths.settings).watch_folders is False
    again = SettingsDialog(lib)
    qtbot.addWidget(again)
    assert not again.watch_check.isChecked()
    again.accept()
    assert not again.watch_changed
    lib.close()


def test_settings_keep_a_model_chosen_elsewhere(qtbot: QtBot, library: Library) -> None:
    dialog = SettingsDialog(library)
    qtbot.addWidget(dialog)
    assert dialog.selected_model == weightsgen.TINY  # in use, so shown though test-only
    dialog.batch_spin.setValue(4)
    dialog.accept()
    assert not dialog.model_changed and dialog.runtime_changed
    # The model was given on the "command line", not chosen here: the file keeps its own.
    assert Settings.load(library.paths.settings).model == Settings().model


def test_settings_import_installs_weights_for_the_model(
    qtbot: QtBot,
    library: Library,
    pool: QThreadPool,
    good_weights: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", staticmethod(lambda *a: (str(good_weights), ""))
    )
    dialog = SettingsDialog(library, pool=pool)
    qtbot.addWidget(dialog)
    dialog.show()
    assert "Not installed" in dialog.weights_label.text()
    assert not dialog.download_button.isEnabled()  # the test model has no download
    dialog.import_button.click()
    weights = dialog.weights_dialog
    assert weights is not None and weights.isVisible()
    qtbot.waitUntil(lambda: not weights.isVisible(), timeout=TIMEOUT_MS)
    assert weights.result() == QDialog.DialogCode.Accepted
    installed = library.paths.models_dir / f"{weightsgen.TINY}.pth"
    assert dialog.weights_label.text() == f"Installed: {installed}"


def test_settings_download_uses_the_weights_dialog(
    qtbot: QtBot, library: Library, pool: QThreadPool, good_weights: Path
) -> None:
    dialog = SettingsDialog(library, pool=pool, download_url=good_weights.as_uri())
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.download_button.isEnabled()
    dialog.download_button.click()
    weights = dialog.weights_dialog
    assert weights is not None
    qtbot.waitUntil(lambda: not weights.isVisible(), timeout=TIMEOUT_MS)
    assert weights.result() == QDialog.DialogCode.Accepted
    assert dialog.weights_label.text().startswith("Installed: ")


def test_deleting_the_dialog_during_a_download_is_safe(
    qtbot: QtBot, library: Library, pool: QThreadPool, big_file: Path, held: HeldDownload
) -> None:
    dialog = WeightsDialog(library, pool=pool, url=big_file.as_uri())
    dialog.show()
    dialog.start_download()
    qtbot.waitUntil(lambda: any(held.chunks), timeout=TIMEOUT_MS)
    with qtbot.waitSignal(dialog.destroyed, timeout=TIMEOUT_MS):
        dialog.reject()
        dialog.deleteLater()
    held.release.set()
    assert pool.waitForDone(TIMEOUT_MS)
    deliver_posted_events()  # the worker's last signals arrive at nothing, harmlessly
    assert cache_files(library) == []
