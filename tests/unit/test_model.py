"""The model's lifecycle (core/model.py) through the Library: weights job, rebuilds, models row."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import weightsgen
from sqlalchemy import event, func, select

from dino_desktop.core import db
from dino_desktop.core.library import Library
from dino_desktop.core.progress import Cancelled, CancelToken, Progress, drive
from dino_desktop.core.weights import WeightsError, WeightsUnavailable

TINY = weightsgen.TINY


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    weightsgen.register_tiny_model()
    return weightsgen.write_meta_checkpoint(tmp_path_factory.mktemp("w") / "tiny.pth", TINY)


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    weightsgen.register_tiny_model()
    library = Library(tmp_path / "lib", model=TINY, device="cpu")
    library.settings.precision = "fp32"
    yield library
    library.close()


def _model_rows(lib: Library) -> int:
    with lib.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(db.ModelRow)) or 0)


def test_weights_job_imports_then_finds_then_the_model_builds(
    lib: Library, tiny_weights: Path
) -> None:
    assert lib.model_status()["weights"] is None
    with pytest.raises(WeightsUnavailable, match="model import"):
        drive(lib.weights_job())
    steps: list[Progress] = []
    path = drive(lib.weights_job(import_file=tiny_weights), steps.append)
    assert path == lib.paths.models_dir / f"{TINY}.pth"
    assert path.read_bytes() == tiny_weights.read_bytes()
    assert steps and steps[0].phase == "import"
    assert drive(lib.weights_job()) == path == lib.weights_path()
    assert lib.weights_source() == "cache"
    assert lib.model_status()["weights"] == str(path)
    assert lib.embedder().dim == 96 and lib.model_id() == 1


def test_a_bad_file_changes_nothing(lib: Library, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not weights" * 50)
    with pytest.raises(WeightsError):
        drive(lib.weights_job(import_file=bad))
    assert sorted(p.name for p in lib.paths.models_dir.iterdir()) == []


def test_a_cancelled_download_keeps_nothing(lib: Library, tiny_weights: Path) -> None:
    cancel = CancelToken()
    job = lib.weights_job(cancel, url=tiny_weights.as_uri())
    assert next(job).phase == "download"
    cancel.cancel()
    with pytest.raises(Cancelled):
        drive(job)
    assert list(lib.paths.models_dir.iterdir()) == []
    assert lib.model_state.installed() is None


def test_new_weights_give_a_new_model_row(lib: Library, tmp_path: Path) -> None:
    """Vectors of different weights never mix: importing other weights for the
    model in use drops the built embedder and the row id."""
    first = weightsgen.write_meta_checkpoint(tmp_path / "a.pth", TINY, seed=1)
    second = weightsgen.write_meta_checkpoint(tmp_path / "b.pth", TINY, seed=2)
    lib.import_weights(first)
    old_embedder, old_id = lib.embedder(), lib.model_id()
    drive(lib.weights_job(import_file=second))
    assert lib.embedder() is not old_embedder
    assert lib.model_id() != old_id and _model_rows(lib) == 2


def test_weights_for_another_model_leave_the_one_in_use_alone(
    lib: Library, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dino_desktop.core.weights import MODELS

    other = "dinov2_tiny_other_test"
    monkeypatch.setitem(MODELS, other, MODELS[TINY])
    lib.import_weights(tiny_weights)
    built = lib.embedder()
    path = drive(lib.weights_job(model=other, import_file=tiny_weights))
    assert path.name == f"{other}.pth" and lib.model_state.installed(other) == path
    assert lib.embedder() is built and lib.model_name == TINY


def test_use_model_rebuilds_on_next_use(lib: Library, tiny_weights: Path) -> None:
    lib.import_weights(tiny_weights)
    built, row = lib.embedder(), lib.model_id()
    lib.settings.device = "cpu"
    lib.use_model(TINY)
    assert lib.device == "cpu" and lib.model_state.cached_model_id is None
    assert lib.embedder() is not built and lib.model_id() == row  # same weights, same row


def test_a_device_that_is_not_there_is_a_library_error(tmp_path: Path, tiny_weights: Path) -> None:
    from dino_desktop.core.records import LibraryError

    lib = Library(tmp_path / "lib", model=TINY, weights=tiny_weights, device="quantum")
    with pytest.raises(LibraryError, match="device"):
        lib.embedder()
    lib.close()


def test_two_libraries_creating_the_model_row_at_once_share_it(
    tmp_path: Path, tiny_weights: Path
) -> None:
    """Two workers (here two Library objects on one library, as two processes
    would be) use the model for the first time together: both must get the one
    row, UNIQUE(name, weights_sha256), neither an error. A barrier holds each
    thread just before its INSERT into models until the other got there too, so
    both have looked for the row before either adds it."""
    libs = [
        Library(tmp_path / "lib", model=TINY, weights=tiny_weights, device="cpu") for _ in range(2)
    ]
    barrier = threading.Barrier(2, timeout=30)

    def hold(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO MODELS"):
            barrier.wait()

    for lib in libs:
        event.listen(lib.engine, "before_cursor_execute", hold)
    ids: list[int] = []
    errors: list[BaseException] = []

    def first_use(lib: Library) -> None:
        try:
            ids.append(lib.model_id())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(lib,)) for lib in libs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert len(ids) == 2 and ids[0] == ids[1]
        assert _model_rows(libs[0]) == 1
    finally:
        for lib in libs:
            lib.close()


def test_weights_import_and_download_are_logged(
    lib: Library, tiny_weights: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="dino_desktop.core.weights"):
        drive(lib.weights_job(import_file=tiny_weights))
        (lib.paths.models_dir / f"{TINY}.pth").unlink()
        drive(lib.weights_job(url=tiny_weights.as_uri()))
    assert "imported weights for" in caplog.text
    assert "downloaded weights for" in caplog.text
