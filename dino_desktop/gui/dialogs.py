"""The settings dialog and the model-weights dialog.

`SettingsDialog` edits the library's settings (model variant, device, precision,
batch size, whether library folders are watched for changes) and shows whether
the chosen model's weights are installed; its "Duplicates" page
(gui/keeper_settings.py) edits which copy of a duplicate group is kept.
`WeightsDialog` is shown when similar-photo search needs the model and there
are no weights: download them (with progress and a Cancel that really stops the
transfer), import a file the user already has, or carry on without.

Both downloading and importing run on a worker thread: verifying a weights file
loads it into the model architecture, which takes seconds. Both are the core's
one weights job (`Library.weights_job`, the same the CLI runs under tqdm),
driven by `JobWorker`; `weights_outcome` turns its expected failures into a
`WeightsOutcome` instead of exceptions, so the dialog can word each case.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStyle,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core import weights as wts
from dino_desktop.core.library import Library
from dino_desktop.core.progress import Cancelled, CancelToken, Job, Progress
from dino_desktop.gui.keeper_settings import KeeperSettings, keeper_values, warning_icon
from dino_desktop.gui.workers import JobWorker, describe

WEIGHTS_FILTER = "Model weights (*.pth *.pt *.safetensors);;All files (*)"
DEVICES = (
    ("auto", "Automatic (a GPU when there is one)"),
    ("cpu", "CPU"),
    ("cuda", "NVIDIA GPU (CUDA)"),
    ("mps", "Apple GPU (Metal)"),
)
PRECISIONS = (
    ("auto", "Automatic"),
    ("fp32", "Full (fp32)"),
    ("bf16", "Half (bf16): faster where supported"),
    ("int8", "Quantised (int8): faster on CPUs without bf16"),
)
MAX_BATCH = 512

_ARCH = re.compile(r"^vit_(small|base|large|giant)_patch(\d+)(_reg4)?_dinov2$")
_ARCH_LETTER = {"small": "S", "base": "B", "large": "L", "giant": "g"}


# --------------------------------------------------------------------------- models


def is_listed(spec: wts.ModelSpec) -> bool:
    """Whether a model is offered to users: test-only models have no download source."""
    return spec.meta_url is not None or spec.hf_repo is not None


def size_text(megabytes: int) -> str:
    return f"~{megabytes / 1000:.1f} GB" if megabytes >= 1000 else f"~{megabytes} MB"


def model_label(spec: wts.ModelSpec) -> str:
    """A person's name for a variant: "ViT-S/14 (384-d, ~88 MB)", "with registers" for reg4."""
    match = _ARCH.match(spec.name)
    if match is None:
        return f"{spec.name} ({spec.dim}-d, {size_text(spec.size_mb)})"
    size, patch, reg = match.groups()
    registers = " with registers" if reg else ""
    return f"ViT-{_ARCH_LETTER[size]}/{patch}{registers} ({spec.dim}-d, {size_text(spec.size_mb)})"


def listed_models() -> list[wts.ModelSpec]:
    """The user-facing variants, smallest first, each plain one before its register twin."""
    specs = [spec for spec in wts.MODELS.values() if is_listed(spec)]
    return sorted(specs, key=lambda s: (s.dim, "_reg4_" in s.name))


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


# --------------------------------------------------------------------------- jobs


OutcomeKind = Literal["installed", "cancelled", "offline", "interrupted", "invalid", "error"]


@dataclass(frozen=True, slots=True)
class WeightsOutcome:
    """How a download or an import ended; `message` is a readable detail for the user."""

    kind: OutcomeKind
    path: Path | None = None
    message: str = ""
    received: int = 0  # bytes downloaded before the end


def _reason(exc: BaseException) -> str:
    """The short cause of a failed download (urllib's reason), not the whole how-to text."""
    cause = exc.__cause__ or exc
    reason = getattr(cause, "reason", None) or cause
    return " ".join(str(reason).split()) or type(cause).__name__


def weights_outcome(job: Job[Path]) -> Job[WeightsOutcome]:
    """Run a core weights job, passing its progress on, and say how it ended.

    Cancelling, being offline, a dropped connection, a file that is not weights
    and an unwritable cache come back as a `WeightsOutcome`; anything else is a
    bug and propagates (`JobWorker` reports it). Closing this job closes `job`,
    whose download then removes its partial file.
    """
    received = 0
    try:
        while True:
            try:
                step = next(job)
            except StopIteration as stop:
                return WeightsOutcome("installed", stop.value, received=received)
            if step.phase == "download":
                received = step.done
            yield step
    except Cancelled:
        return WeightsOutcome("cancelled", received=received)
    except wts.WeightsUnavailable as exc:
        # Failing before the first byte is what being offline looks like; failing
        # later is a dropped connection, worth a different sentence.
        kind: OutcomeKind = "interrupted" if received else "offline"
        return WeightsOutcome(kind, message=_reason(exc), received=received)
    except wts.WeightsError as exc:
        return WeightsOutcome("invalid", message=str(exc), received=received)
    except OSError as exc:  # e.g. the model cache is not writable
        return WeightsOutcome("error", message=str(exc), received=received)
    finally:
        job.close()


def download_job(
    library: Library, model: str, cancel: CancelToken, *, url: str | None = None
) -> Job[WeightsOutcome]:
    """Download, verify and cache the weights of `model` (from `url` if given), with
    byte progress; `cancel` stops the transfer at the next chunk and keeps nothing."""
    return weights_outcome(library.weights_job(cancel, model=model, download="timm", url=url))


def import_job(
    library: Library, model: str, path: str, cancel: CancelToken | None = None
) -> Job[WeightsOutcome]:
    """Verify a weights file for `model` and copy it into the library's model cache."""
    return weights_outcome(library.weights_job(cancel, model=model, import_file=path))


def installed_weights(library: Library, model: str) -> Path | None:
    """The weights file `model` would use in this library, or None (no network, no loading)."""
    return library.model_state.installed(model)


# --------------------------------------------------------------------------- weights


class WeightsDialog(QDialog):
    """Offers to download or import the model weights; accepts once they are installed.

    `url` overrides where the download comes from (tests use a file:// URL);
    `pool` is the thread pool the work runs on (default: the global one).
    """

    weights_installed = Signal(str)  # the installed file

    def __init__(
        self,
        library: Library,
        parent: QWidget | None = None,
        *,
        model: str | None = None,
        url: str | None = None,
        pool: QThreadPool | None = None,
    ) -> None:
        super().__init__(parent)
        self.library = library
        self.model = model or library.model_name
        self.spec = wts.get_spec(self.model)
        self.url = url
        self.pool = pool or QThreadPool.globalInstance()
        self.installed_path: Path | None = None
        self.outcome: WeightsOutcome | None = None
        # The last worker stays referenced after it reports: its run() may still be
        # returning on the pool thread when the result arrives here.
        self._worker: JobWorker | None = None
        self._busy: Literal["", "download", "import"] = ""
        self._closed = False  # the user closed the dialog; late results must not reopen it
        self.setWindowTitle("Model weights")

        icon = QLabel()
        icon.setPixmap(
            self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation).pixmap(48)
        )
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        heading = QLabel("<b>Similar-photo search needs the DINOv2 model</b>")
        variant = "" if self.model == wts.DEFAULT_MODEL else f"{model_label(self.spec)}, "
        size = f"about {size_text(self.spec.size_mb).lstrip('~')}"
        intro = QLabel(
            f"DINO Desktop needs the DINOv2 model ({variant}{size}) to find similar photos. "
            "Everything else works without it."
        )
        intro.setWordWrap(True)
        where = QLabel(
            "It is downloaded once and kept in the library's model folder:\n"
            f"{library.paths.models_dir}"
        )
        where.setWordWrap(True)
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        _secondary(where)

        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the download; nothing is kept")
        self.cancel_button.clicked.connect(self.cancel_download)
        self.progress_label = QLabel()
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)

        self.message_icon = warning_icon()
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextFormat(Qt.TextFormat.RichText)
        self.message_label.setOpenExternalLinks(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        message_row = QHBoxLayout()
        message_row.addWidget(self.message_icon)
        message_row.addWidget(self.message_label, 1)

        buttons = QDialogButtonBox()
        self.download_button = buttons.addButton("Download", QDialogButtonBox.ButtonRole.AcceptRole)
        self.import_button = buttons.addButton(
            "Import file\N{HORIZONTAL ELLIPSIS}", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.not_now_button = buttons.addButton("Not now", QDialogButtonBox.ButtonRole.RejectRole)
        self.download_button.setDefault(True)
        self.download_button.clicked.connect(self.start_download)
        self.import_button.clicked.connect(self.choose_file)
        buttons.rejected.connect(self.reject)
        self.import_button.setToolTip("Use a .pth or .safetensors file you already have")
        if self._download_url() is None:
            self.download_button.setEnabled(False)
            self.download_button.setToolTip("No download is known for this model")

        text = QVBoxLayout()
        text.setSpacing(8)
        text.addWidget(heading)
        text.addWidget(intro)
        text.addWidget(where)
        top = QHBoxLayout()
        top.setSpacing(16)
        top.addWidget(icon)
        top.addLayout(text, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addSpacing(8)
        layout.addLayout(progress_row)
        layout.addWidget(self.progress_label)
        layout.addLayout(message_row)
        layout.addStretch(1)
        layout.addWidget(buttons)
        self.setMinimumWidth(520)
        self._set_busy("")
        self._show_message("")

    # ---- state -------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return bool(self._busy)

    def _download_url(self) -> str | None:
        return self.url or self.spec.hf_url or self.spec.meta_url

    def _set_busy(self, busy: Literal["", "download", "import"]) -> None:
        self._busy = busy
        for widget in (self.progress, self.progress_label):
            widget.setVisible(bool(busy))
        self.cancel_button.setVisible(busy == "download")
        self.cancel_button.setEnabled(True)
        self.download_button.setEnabled(not busy and self._download_url() is not None)
        self.import_button.setEnabled(not busy)

    def _show_message(self, text: str, *, warning: bool = True) -> None:
        """Show rich `text` under the progress area (empty hides it)."""
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))
        self.message_icon.setVisible(bool(text) and warning)

    # ---- download ----------------------------------------------------------------

    def start_download(self) -> None:
        url = self._download_url()
        if self._busy or url is None:
            return
        self._show_message("")
        self.progress.setRange(0, 0)  # busy until the size is known
        self.progress_label.setText("Connecting\N{HORIZONTAL ELLIPSIS}")
        self._set_busy("download")
        self._closed = False
        library, model = self.library, self.model
        self._start(
            lambda token: download_job(library, model, token, url=url),
            self._on_download_progress,
        )

    def cancel_download(self) -> None:
        """Stop a running download; the dialog stays open for another choice."""
        if self._busy == "download" and self._worker is not None:
            self._worker.cancel()
            self.cancel_button.setEnabled(False)
            self.progress_label.setText("Stopping\N{HORIZONTAL ELLIPSIS}")

    def _on_download_progress(self, step: Progress) -> None:
        if self._worker is not None and self._worker.token.cancelled:
            return  # keep saying "Stopping…"
        # The "verify" step after the last chunk has done == total: "checking the file".
        if step.total:
            # Per mille rather than bytes: QProgressBar's range is a 32-bit int and
            # the giant model is over 4 GB.
            self.progress.setRange(0, 1000)
            self.progress.setValue(min(1000, step.done * 1000 // step.total))
            text = f"{_megabytes(step.done)} of {_megabytes(step.total)}"
            if step.done >= step.total:
                text += " \N{MIDDLE DOT} checking the file\N{HORIZONTAL ELLIPSIS}"
            self.progress_label.setText(text)
        else:
            self.progress.setRange(0, 0)
            self.progress_label.setText(_megabytes(step.done))

    # ---- import ------------------------------------------------------------------

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import DINOv2 weights", str(Path.home()), WEIGHTS_FILTER
        )
        if path:
            self.start_import(path)

    def start_import(self, path: str) -> None:
        """Verify `path` on a worker thread and install it; errors are shown in the dialog."""
        if self._busy:
            return
        self._show_message("")
        self.progress.setRange(0, 0)
        self.progress_label.setText(
            f"Checking {Path(path).name}\N{HORIZONTAL ELLIPSIS} (this can take a few seconds)"
        )
        self._set_busy("import")
        self._closed = False
        library, model = self.library, self.model
        self._start(lambda token: import_job(library, model, path, token), None)

    # ---- results -----------------------------------------------------------------

    def _start(
        self,
        make: Callable[[CancelToken], Job[WeightsOutcome]],
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        worker = JobWorker(make)
        if on_progress is not None:
            worker.signals.progressed.connect(on_progress)
        worker.signals.finished.connect(self._on_finished)
        worker.signals.failed.connect(self._on_failed)
        self._worker = worker
        self.pool.start(worker)

    def _on_finished(self, outcome: WeightsOutcome) -> None:
        action = self._busy
        self._set_busy("")
        self.outcome = outcome
        if outcome.kind == "installed":
            assert outcome.path is not None
            self.installed_path = outcome.path
            self.progress_label.clear()
            self.weights_installed.emit(str(outcome.path))
            if not self._closed:
                self.accept()
            return
        self._show_message(self._describe(outcome, action), warning=outcome.kind != "cancelled")
        # Offer the likeliest next step: after a cancel, downloading again; otherwise
        # (offline, a bad file) importing a file.
        retry = self.download_button if outcome.kind == "cancelled" else self.import_button
        if retry.isEnabled():
            retry.setDefault(True)
            retry.setFocus()

    def _on_failed(self, exc: Exception) -> None:
        message = describe(exc)
        self._set_busy("")
        self.outcome = WeightsOutcome("error", message=message)
        self._show_message(f"Something went wrong: {html.escape(message)}")

    def _describe(self, outcome: WeightsOutcome, action: str) -> str:
        detail = html.escape(outcome.message)
        if outcome.kind == "cancelled":
            return "Download cancelled. Nothing was kept."
        if outcome.kind == "offline":
            return (
                "You seem to be offline: the model could not be downloaded. You can import a "
                f"weights file instead ({self._links()}), and everything else keeps working."
                f"<br><small>Details: {detail}</small>"
            )
        if outcome.kind == "interrupted":
            return (
                "The download was interrupted after "
                f"{_megabytes(outcome.received)}. Try again, or import a weights file "
                f"({self._links()}); everything else keeps working."
                f"<br><small>Details: {detail}</small>"
            )
        if outcome.kind == "invalid" and action == "import":
            return f"This file cannot be used as the model's weights.<br><small>{detail}</small>"
        if outcome.kind == "invalid":
            return f"The downloaded file is not usable.<br><small>{detail}</small>"
        return f"The model could not be saved: {detail}"

    def _links(self) -> str:
        urls = self.spec.download_urls or ((self.url,) if self.url else ())
        if not urls:
            return "ask whoever set up this model for the file"
        links = " or ".join(f'<a href="{html.escape(u)}">{html.escape(u)}</a>' for u in urls)
        return f"get it from {links} on a computer that is online"

    def reject(self) -> None:
        # Closing while downloading stops the transfer; the worker finishes (and
        # cleans up) on its own thread.
        if self._busy == "download" and self._worker is not None:
            self._worker.cancel()
        self._closed = True
        super().reject()


# --------------------------------------------------------------------------- settings


class SettingsDialog(QDialog):
    """Edits `library.settings`; OK saves them to settings.toml.

    After `exec()` returns Accepted, `model_changed` says whether another model
    was chosen, and `runtime_changed` whether anything that shapes the embedder
    (model, device, precision, batch size) changed: the caller re-creates its
    Library for those to apply. `watch_changed`: watching the library folders was
    turned on or off (the main window's live folders follow). `keeper_changed`: the
    keeper rules, format order or preferred folders changed (duplicate groups found
    before keep their old keepers until found again).
    """

    def __init__(
        self,
        library: Library,
        parent: QWidget | None = None,
        *,
        download_url: str | None = None,
        pool: QThreadPool | None = None,
    ) -> None:
        super().__init__(parent)
        self.library = library
        self.download_url = download_url
        self.pool = pool
        self.model_changed = False
        self.runtime_changed = False
        self.watch_changed = False
        self.keeper_changed = False
        self.weights_dialog: WeightsDialog | None = None
        self.setWindowTitle("Settings")
        settings = library.settings

        self.model_combo = QComboBox()
        specs = listed_models()
        if all(spec.name != library.model_name for spec in specs):
            # A model chosen elsewhere (--model, a test model) stays selectable, so
            # pressing OK never switches models behind the user's back.
            specs.insert(0, wts.get_spec(library.model_name))
        for spec in specs:
            self.model_combo.addItem(model_label(spec), spec.name)
            self.model_combo.setItemData(
                self.model_combo.count() - 1, spec.name, Qt.ItemDataRole.ToolTipRole
            )
        self.model_combo.setCurrentIndex(self.model_combo.findData(library.model_name))
        self.model_combo.currentIndexChanged.connect(self._refresh_weights)
        model_note = QLabel(
            "Larger models find subtler likenesses but are slower and need more memory. "
            "Variants \N{LEFT DOUBLE QUOTATION MARK}with registers\N{RIGHT DOUBLE QUOTATION MARK}"
            " (*_reg4_*) give cleaner feature maps for overlays. Changing the model computes "
            "new embeddings for every photo."
        )
        model_note.setWordWrap(True)
        _secondary(model_note)

        self.weights_label = QLabel()
        self.weights_label.setWordWrap(True)
        self.weights_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.download_button = QPushButton("Download\N{HORIZONTAL ELLIPSIS}")
        self.download_button.clicked.connect(self.download_weights)
        self.import_button = QPushButton("Import file\N{HORIZONTAL ELLIPSIS}")
        self.import_button.clicked.connect(self.import_weights)
        weights_buttons = QHBoxLayout()
        weights_buttons.addWidget(self.download_button)
        weights_buttons.addWidget(self.import_button)
        weights_buttons.addStretch(1)

        model_box = QGroupBox("Model")
        model_form = QFormLayout(model_box)
        model_form.addRow("&Variant:", self.model_combo)
        model_form.addRow("", model_note)
        model_form.addRow("Weights:", self.weights_label)
        model_form.addRow("", weights_buttons)

        self.device_combo = _choice_combo(DEVICES, settings.device)
        self.precision_combo = _choice_combo(PRECISIONS, settings.precision)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, MAX_BATCH)
        self.batch_spin.setValue(min(max(settings.batch_size, 1), MAX_BATCH))
        self.batch_spin.setToolTip("Photos per model step; lower it if memory runs short")
        run_box = QGroupBox("Performance")
        run_form = QFormLayout(run_box)
        run_form.addRow("&Device:", self.device_combo)
        run_form.addRow("&Precision:", self.precision_combo)
        run_form.addRow("&Batch size:", self.batch_spin)

        self.watch_check = QCheckBox("&Watch library folders for changes")
        self.watch_check.setChecked(settings.watch_folders)
        watch_note = QLabel(
            "While the app runs, photos added to, changed in or removed from the library "
            "folders are indexed as it happens. Off: they are found by the next scan (F5)."
        )
        watch_note.setWordWrap(True)
        _secondary(watch_note)
        library_box = QGroupBox("Library folders")
        library_layout = QVBoxLayout(library_box)
        library_layout.addWidget(self.watch_check)
        library_layout.addWidget(watch_note)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        general = QWidget()
        general_layout = QVBoxLayout(general)
        general_layout.addWidget(model_box)
        general_layout.addWidget(run_box)
        general_layout.addWidget(library_box)
        general_layout.addStretch(1)
        self.keeper = KeeperSettings(settings)
        self.tabs = QTabWidget()
        self.tabs.addTab(general, "General")
        self.tabs.addTab(self.keeper, "Duplicates")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(buttons)
        self.setMinimumWidth(660)
        self._refresh_weights()

    @property
    def selected_model(self) -> str:
        return str(self.model_combo.currentData())

    def _refresh_weights(self) -> None:
        model = self.selected_model
        path = installed_weights(self.library, model)
        if path is None:
            self.weights_label.setText("Not installed: similar-photo search waits for them.")
        else:
            self.weights_label.setText(f"Installed: {path}")
        spec = wts.get_spec(model)
        can_download = bool(self.download_url or spec.download_urls)
        self.download_button.setEnabled(can_download)
        self.download_button.setToolTip(
            f"Download {model_label(spec)}" if can_download else "No download known"
        )

    def _open_weights_dialog(self) -> WeightsDialog:
        dialog = WeightsDialog(
            self.library, self, model=self.selected_model, url=self.download_url, pool=self.pool
        )
        dialog.finished.connect(self._refresh_weights)
        self.weights_dialog = dialog
        return dialog

    def download_weights(self) -> None:
        """Open the weights dialog downloading the selected model (window-modal)."""
        dialog = self._open_weights_dialog()
        dialog.open()
        dialog.start_download()

    def import_weights(self) -> None:
        """Ask for a file and install it for the selected model, with the weights dialog's
        progress and error reporting."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Import DINOv2 weights", str(Path.home()), WEIGHTS_FILTER
        )
        if not path:
            return
        dialog = self._open_weights_dialog()
        dialog.open()
        dialog.start_import(path)

    def accept(self) -> None:
        if not self.keeper.check():  # a format order that cannot be used: say so, stay open
            self.tabs.setCurrentWidget(self.keeper)
            return
        settings = self.library.settings
        before = dataclasses.replace(settings)
        model = self.selected_model
        if model != self.library.model_name:
            settings.model = model
        settings.device = str(self.device_combo.currentData())
        settings.precision = str(self.precision_combo.currentData())
        settings.batch_size = self.batch_spin.value()
        settings.watch_folders = self.watch_check.isChecked()
        self.keeper.apply(settings)
        try:
            self.library.save_settings()
        except OSError as exc:
            for field in dataclasses.fields(settings):  # keep memory and disk in step
                setattr(settings, field.name, getattr(before, field.name))
            QMessageBox.warning(self, "Settings", f"The settings could not be saved: {exc}")
            return
        self.model_changed = model != self.library.model_name
        self.watch_changed = before.watch_folders != settings.watch_folders
        self.keeper_changed = keeper_values(before) != keeper_values(settings)
        if self.model_changed:
            self.library.use_model(model)
        self.runtime_changed = self.model_changed or (
            (before.device, before.precision, before.batch_size)
            != (settings.device, settings.precision, settings.batch_size)
        )
        super().accept()


def _secondary(label: QLabel) -> None:
    """Give a note the platform's secondary-text colour (still selectable, unlike a
    disabled label)."""
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)


def _choice_combo(choices: tuple[tuple[str, str], ...], current: str) -> QComboBox:
    """A combo of (value, label) pairs; a value from the file that we don't know stays."""
    combo = QComboBox()
    for value, label in choices:
        combo.addItem(label, value)
    index = combo.findData(current)
    if index < 0:
        combo.addItem(current, current)
        index = combo.count() - 1
    combo.setCurrentIndex(index)
    return combo
