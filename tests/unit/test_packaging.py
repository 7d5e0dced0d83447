"""Packaging: the sdist and the wheel build, carry the resources and the entry points,
install into a fresh venv and run.

Fast on purpose: setuptools' build hooks run in this environment (a recent
enough setuptools is fetched only if this one is too old), and the
fresh venv reaches torch, PySide6 & co. through a .pth file pointing at this
environment's site-packages, so only the wheel itself is installed (--no-deps).
Plain paths in a .pth are not scanned for .pth files of their own, so an
editable install of dino_desktop here can't shadow the wheel's copy; the test
checks that too.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import site
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]
# The repository's resources/ installs as the package dino_desktop.resources.
RESOURCES = ROOT / "resources"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _build_env(tmp: Path) -> dict[str, str]:
    """The environment for running setuptools' build hooks: this one's setuptools
    when it is recent enough (PEP 639 licence fields), else one fetched for the test."""
    try:
        recent = int(importlib.metadata.version("setuptools").split(".")[0]) >= 77
    except importlib.metadata.PackageNotFoundError:
        recent = False
    if recent:
        return dict(os.environ)
    target = tmp / "setuptools"
    _run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "setuptools>=77"],
        tmp,
    )
    return {**os.environ, "PYTHONPATH": str(target)}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel): the sdist from a copy of the source, the wheel from the sdist,
    as `python -m build` does."""
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".venv", "venv"
        ),
    )
    out = tmp / "out"
    env = _build_env(tmp)
    hook = "from setuptools import build_meta as b; import sys; print(b.build_{}(sys.argv[1]))"
    name = _run([sys.executable, "-c", hook.format("sdist"), str(out)], src, env).split()[-1]
    sdist = out / name
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = (tmp / "unpacked").iterdir()
    _run([sys.executable, "-c", hook.format("wheel"), str(out)], unpacked, env)
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def test_the_wheel_carries_every_resource_and_both_entry_points(built: tuple[Path, Path]) -> None:
    _, wheel = built
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = zf.read(entry_points).decode()
        (metadata,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        meta = zf.read(metadata).decode()
    expected = {
        "dino_desktop/resources/" + path.relative_to(RESOURCES).as_posix()
        for path in RESOURCES.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "dino_desktop/resources/dino-desktop.svg" in expected
    assert len(expected) >= 10  # svg, PNG renders, view icons, palettes
    assert expected - names == set()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "[console_scripts]\ndino-desktop = dino_desktop.__main__:main" in scripts
    assert "[gui_scripts]\ndino-desktop-gui = dino_desktop.gui.app:main" in scripts
    assert "License-Expression: MIT" in meta
    assert "Classifier: Intended Audience :: End Users/Desktop" in meta
    assert "Project-URL: " in meta


def test_the_sdist_carries_the_desktop_files(built: tuple[Path, Path]) -> None:
    sdist, _ = built
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for path in (
        "LICENSE",
        "resources/dino-desktop.svg",
        "packaging/linux/io.github.dino_desktop.DinoDesktop.desktop",
        "packaging/linux/io.github.dino_desktop.DinoDesktop.metainfo.xml",
        "packaging/pyinstaller/dino-desktop.spec",
    ):
        assert path in names


def test_the_wheel_installs_into_a_fresh_venv_and_runs(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    _, wheel = built
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path
    ).strip()
    # This environment's packages (torch, PySide6, ...) after the venv's own.
    (Path(purelib) / "zz-test-deps.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n", encoding="utf-8"
    )
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    _run([*pip, "--no-deps", "--no-index", str(wheel)], cwd=tmp_path)
    exe = ".exe" if os.name == "nt" else ""
    cli, gui = bindir / f"dino-desktop{exe}", bindir / f"dino-desktop-gui{exe}"
    assert cli.exists() and gui.exists()

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "DINO_DESKTOP_HOME": str(tmp_path / "h")}
    assert "scan" in _run([str(cli), "--help"], tmp_path, env)
    version = _run([str(cli), "--version"], tmp_path, env).strip()
    assert version == "dino-desktop " + importlib.metadata.version("dino-desktop")
    assert _run([str(gui), "--version"], tmp_path, env).strip() == version
    assert "scan" in _run([str(python), "-m", "dino_desktop", "--help"], tmp_path, env)

    # The installed copy, not this checkout, and its icon loads through importlib.resources.
    check = (
        "import dino_desktop, sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from dino_desktop.gui.app import app_icon\n"
        "from dino_desktop.gui.theme import VIEW_ICONS, dark_palette, view_icon\n"
        "app = QApplication([])\n"
        "assert not app_icon().pixmap(64, 64).isNull()\n"
        "assert all(not view_icon(n).pixmap(16, 16).isNull() for n in VIEW_ICONS)\n"
        "assert dark_palette().window().color().name() == '#252629'\n"
        "print(dino_desktop.__file__)\n"
    )
    where = Path(_run([str(python), "-c", check], tmp_path, env).strip())
    assert where.is_relative_to(venv)


def test_every_package_is_listed_in_pyproject() -> None:
    """pyproject lists the packages (find cannot see the mapped resources/): a new
    subpackage left out of the list would be missing from every install."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set(find_packages(str(ROOT), include=["dino_desktop*"]))
    assert listed == found | {"dino_desktop.resources"}
    assert config["tool"]["setuptools"]["package-dir"] == {"dino_desktop.resources": "resources"}
    # The old in-package folder is gone: a leftover one (say, with only a
    # __pycache__ in it) would shadow the mapped package in an editable install.
    leftover = ROOT / "dino_desktop" / "resources"
    assert not leftover.exists(), (
        f"remove {leftover} (left by the move to resources/, e.g. a __pycache__): it "
        "shadows resources/ in an editable install, and re-run `pip install -e .`"
    )


def test_an_editable_install_finds_the_resources(tmp_path: Path) -> None:
    """`pip install -e .` (what CI and developers do) maps dino_desktop.resources
    to resources/ in the checkout."""
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".venv", "venv"
        ),
    )
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path
    ).strip()
    # After the venv's own packages, so the editable finder is installed first.
    (Path(purelib) / "zz-test-deps.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n", encoding="utf-8"
    )
    env = _build_env(tmp_path)
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    _run([*pip, "--no-deps", "--no-build-isolation", "-e", str(src)], tmp_path, env)
    check = (
        "import dino_desktop, dino_desktop.resources as r\n"
        "from importlib.resources import files\n"
        "res = files('dino_desktop.resources')\n"
        "names = sorted(p.name for p in res.iterdir())\n"
        "assert (res / 'dino-desktop.svg').is_file(), names\n"
        "assert (res / 'themes' / 'dark.toml').is_file(), names\n"
        "print(dino_desktop.__file__); print(r.__file__)\n"
    )
    run_env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    package, resources = _run([str(python), "-c", check], tmp_path, run_env).split()
    # The copy's files, not this checkout's nor an older install's.
    assert Path(package).is_relative_to(src / "dino_desktop")
    assert Path(resources) == src / "resources" / "__init__.py"
