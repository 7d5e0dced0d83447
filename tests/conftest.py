"""Shared fixtures: every path points into tmp dirs, never at the user's library."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the real user data dir or a weights file from the environment."""
    monkeypatch.setenv("DINO_DESKTOP_HOME", str(tmp_path / "default-home"))
    monkeypatch.delenv("DINO_DESKTOP_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    # The system trash is chosen relative to HOME: keep tests out of the real one.
    (tmp_path / "home").mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(autouse=True)
def _no_host_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host CPU's features never decide a test: automatic precision sees a CPU
    without native bf16 (fp32) unless a test forces the detection itself. Tests
    that compare vectors closely still ask for precision="fp32" explicitly."""
    from dino_desktop.core import device

    monkeypatch.setattr(device, "cpu_bf16_feature", lambda: None)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """The session's PostgreSQL + pgvector server (tests/pg.py), started on first use."""
    import pg

    server = pg.Server()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """A fresh shared library's URL: an empty database of the current schema."""
    return str(pg_server.fresh())


@pytest.fixture(params=["sqlite", "postgresql"])
def library_at(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a core test opens its library, once per backend: a SQLite folder, or a
    fresh database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "lib"
    return str(request.getfixturevalue("pg_url"))
