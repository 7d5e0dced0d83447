"""The model's lifecycle in a library: which model and weights, built when, stored as which row.

`ModelState` holds the model name, the `--weights` file and the device setting;
it finds the weights, builds the `Embedder` and the overlay's `OverlayEngine` once
(thread-safe: the GUI may search while a scan embeds), keeps the id of the
``models`` row of (model, weights sha256) and forgets all of it when the model,
device or weights change. `weights_job` is the one job that finds, imports or
downloads weights, for the GUI (in a `JobWorker`) and the CLI (under tqdm).
`Library` delegates its model methods here.

torch and timm stay unimported until an embedder or overlay engine is built.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.config import WEIGHTS_ENV, Settings
from dino_desktop.core import weights as wts
from dino_desktop.core.db import ModelRow
from dino_desktop.core.db import insert as db_insert
from dino_desktop.core.progress import CancelToken, Job
from dino_desktop.core.records import LibraryError

if TYPE_CHECKING:
    from dino_desktop.core.embedder import Embedder
    from dino_desktop.core.overlay import OverlayEngine

__all__ = ["ModelState"]

log = logging.getLogger(__name__)


def _setting_error(exc: ValueError) -> Exception:
    """A setting that cannot work here (e.g. --device cuda without CUDA) as the
    facade's user-facing error."""
    return LibraryError(str(exc))


class ModelState:
    """One library's model: settings in; weights path, embedder, overlay engine, row id out."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        models_dir: Path,
        settings: Settings,
        *,
        name: str,
        weights: Path | None = None,
        device: str | None = None,
    ) -> None:
        wts.get_spec(name)  # an unknown name raises ValueError here, not on first use
        self.sessions = sessions
        self.models_dir = models_dir
        self.settings = settings
        self.name = name
        self.weights_arg = weights  # --weights, resolved by the caller
        self.device = device or settings.device
        self._embedder: Embedder | None = None
        self._overlay: OverlayEngine | None = None
        self._model_id: int | None = None
        # Builds the models once however many threads ask (the GUI may search while
        # a scan embeds); use/forget take it too, so nobody sees half a switch.
        self.lock = threading.Lock()
        # The row id apart: hashing multi-GB weights must not wait for a model build.
        self._id_lock = threading.Lock()

    # ---- weights -------------------------------------------------------------

    def weights_path(self, model: str | None = None) -> Path:
        """The weights file `model` (default: the one in use) would load; raises
        WeightsUnavailable with what to download. --weights applies to the model in use only."""
        if model is None or model == self.name:
            return wts.resolve_weights(self.name, self.weights_arg, self.models_dir)
        return wts.resolve_weights(model, None, self.models_dir)

    def installed(self, model: str | None = None) -> Path | None:
        """`weights_path`, or None when there are none (no network, no loading)."""
        try:
            return self.weights_path(model)
        except wts.WeightsUnavailable:
            return None

    def weights_source(self) -> str | None:
        """Where the weights in use come from: "option", "environment", "cache" or None."""
        if self.weights_arg is not None:
            return "option"
        if os.environ.get(WEIGHTS_ENV):
            return "environment"
        return "cache" if self.installed() is not None else None

    def import_weights(self, source: str | os.PathLike[str]) -> Path:
        """Verify a weights file for the model in use and copy it into the cache."""
        path = wts.import_weights(self.name, Path(source), self.models_dir)
        self._installed(self.name)
        return path

    def weights_job(
        self,
        cancel: CancelToken | None = None,
        *,
        model: str | None = None,
        import_file: str | os.PathLike[str] | None = None,
        download: str | None = None,
        url: str | None = None,
    ) -> Job[Path]:
        """`weights.weights_job` for `model` (default: the one in use) in this library's cache.

        With `import_file` it imports that file, with `download` ("timm"/"meta")
        or `url` it downloads, else it finds the installed file. Once new weights
        are in the cache, the model in use is rebuilt on next use.
        """
        name = model or self.name
        path = yield from wts.weights_job(
            name,
            self.models_dir,
            cancel,
            explicit=self.weights_arg if name == self.name else None,
            import_file=Path(import_file).expanduser() if import_file is not None else None,
            download=download,
            url=url,
        )
        if import_file is not None or download is not None or url is not None:
            self._installed(name)
        return path

    def _installed(self, name: str) -> None:
        """New weights for `name` are in the cache: if the model in use loads from
        there, forget what was built from the old file (and its row)."""
        if name == self.name and self.weights_arg is None and not os.environ.get(WEIGHTS_ENV):
            self.forget()

    # ---- built models --------------------------------------------------------

    def embedder(self) -> Embedder:
        with self.lock:
            return self._get_embedder()

    def _get_embedder(self) -> Embedder:
        """The embedder, built on first use; the caller holds `lock`."""
        if self._embedder is None:
            from dino_desktop.core.embedder import Embedder

            weights = self.weights_path()
            try:
                self._embedder = Embedder(
                    self.name,
                    weights,
                    device=self.device,
                    batch_size=self.settings.batch_size,
                    precision=self.settings.precision,
                    # The weights' sha256 and the bf16 probe are remembered there.
                    cache_dir=self.models_dir,
                )
            except ValueError as exc:  # e.g. --device cuda on a machine without CUDA
                raise _setting_error(exc) from exc
        return self._embedder

    def overlay_engine(self) -> OverlayEngine:
        """Patch features for PCA overlays (a 518-px model of its own, built on first use)."""
        with self.lock:
            if self._overlay is None or self._overlay.model_name != self.name:
                from dino_desktop.core.overlay import OverlayEngine

                try:
                    self._overlay = OverlayEngine(
                        self.name, self.weights_path(), device=self.device
                    )
                except ValueError as exc:
                    raise _setting_error(exc) from exc
            return self._overlay

    # ---- the models row ------------------------------------------------------

    @property
    def cached_model_id(self) -> int | None:
        """The row id if `model_id` already ran since the last switch, else None."""
        return self._model_id

    def model_id(self) -> int:
        """The row of (model, weights file): vectors of different weights never mix."""
        with self._id_lock:
            if self._model_id is None:
                model_id = self.lookup_model_id(create=True)
                assert model_id is not None
                engine = self.sessions.kw["bind"]
                if engine.dialect.name == "postgresql":  # search on the server
                    from dino_desktop.core.server_search import ensure_index

                    ensure_index(engine, model_id, wts.get_spec(self.name).dim)
                self._model_id = model_id
            return self._model_id

    def known_model_id(self) -> int | None:
        """`model_id` if its row exists, else None (no weights, or never used): the
        cached id spares hashing the weights file again; no row is created."""
        if self._model_id is not None:
            return self._model_id
        try:
            return self.lookup_model_id(create=False)
        except wts.WeightsUnavailable:
            return None

    def lookup_model_id(self, *, create: bool) -> int | None:
        """The id of the row for the model and its weights' sha256; with `create`,
        the row is added if missing. Safe when several threads or processes create
        it at once (UNIQUE(name, weights_sha256))."""
        spec = wts.get_spec(self.name)
        sha = wts.file_sha256(self.weights_path(), self.models_dir)
        wanted = select(ModelRow.id).where(
            (ModelRow.name == self.name) & (ModelRow.weights_sha256 == sha)
        )
        with self.sessions() as session:
            row_id: int | None = session.scalar(wanted)
        if row_id is not None or not create:
            return row_id
        # The INSERT opens the write transaction (a SELECT first would pin a stale
        # snapshot that can never be upgraded to a write); a row that another
        # writer added meanwhile is kept, and read back by the same transaction.
        with self.sessions() as session, session.begin():
            session.execute(
                db_insert(session, ModelRow)
                .values(name=self.name, weights_sha256=sha, dim=spec.dim, image_size=wts.IMAGE_SIZE)
                .on_conflict_do_nothing(index_elements=["name", "weights_sha256"])
            )
            row_id = session.scalar(wanted)
        assert row_id is not None
        log.info("model row %d: %s, weights sha256 %s", row_id, self.name, sha[:12])
        return row_id

    # ---- state ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The model and where its weights are (the `model status` JSON, less `pending`)."""
        spec = wts.get_spec(self.name)
        path = self.installed()
        return {
            "model": self.name,
            "dim": spec.dim,
            "weights": str(path) if path is not None else None,
            "source": self.weights_source(),
            "cache": str(self.models_dir),
            "download": spec.hf_repo and f"https://huggingface.co/{spec.hf_repo}",
            "meta_url": spec.meta_url,
        }

    def use(self, name: str) -> None:
        """Switch model (or re-read the device setting): the next use builds anew."""
        wts.get_spec(name)
        with self.lock:
            self.name = name
            self.device = self.settings.device
            self._forget()
        log.info("model in use: %s on device setting %s", name, self.device)

    def forget(self) -> None:
        """Drop the built models and the row id (e.g. new weights): rebuilt on next use."""
        with self.lock:
            self._forget()

    def _forget(self) -> None:
        self._embedder = None
        self._overlay = None
        with self._id_lock:
            self._model_id = None
