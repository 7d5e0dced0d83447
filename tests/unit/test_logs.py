"""The log file: where it is, rotation, third-party noise, stderr warnings for the CLI."""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path

import pytest

from dino_desktop import cli, logs


@pytest.fixture
def log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "logs"
    monkeypatch.setenv(logs.LOG_DIR_ENV, str(folder))
    root = logging.getLogger()
    before_level = root.level
    yield folder
    # Leave the process's logging as we found it for the other tests.
    for handler in [h for h in root.handlers if getattr(h, logs._OURS, False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(before_level)


def _ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, logs._OURS, False)]


def test_records_go_to_the_file_in_the_log_dir(log_dir: Path) -> None:
    path = logs.setup_logging(console=False)
    assert path == log_dir / "dino-desktop.log" == logs.log_file()
    logging.getLogger("dino_desktop.test").info("scanned %d photos", 12)
    for handler in _ours():
        handler.flush()
    assert "scanned 12 photos" in path.read_text(encoding="utf-8")


def test_default_location_is_the_platform_log_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv(logs.LOG_DIR_ENV, raising=False)
    assert logs.log_dir() == platformdirs.user_log_path("dino-desktop", appauthor=False)


def test_setting_up_twice_does_not_duplicate_lines(log_dir: Path) -> None:
    logs.setup_logging()
    path = logs.setup_logging()
    assert path is not None
    assert len(_ours()) == 2  # one file, one stderr
    logging.getLogger("dino_desktop.test").warning("only once")
    for handler in _ours():
        handler.flush()
    assert path.read_text(encoding="utf-8").count("only once") == 1


def test_the_file_rotates_and_keeps_a_few(log_dir: Path) -> None:
    logs.setup_logging(console=False)
    (handler,) = [h for h in _ours() if isinstance(h, logging.handlers.RotatingFileHandler)]
    assert handler.maxBytes == logs.MAX_BYTES and handler.backupCount == logs.BACKUP_COUNT
    handler.maxBytes = 2_000  # rotate quickly in the test
    line = "x" * 500
    for _ in range(100):
        logging.getLogger("dino_desktop.test").info(line)
    names = sorted(p.name for p in log_dir.iterdir())
    assert names == [
        "dino-desktop.log",
        *(f"dino-desktop.log.{n}" for n in range(1, logs.BACKUP_COUNT + 1)),
    ]


def test_pil_debug_noise_stays_out(log_dir: Path) -> None:
    path = logs.setup_logging(console=False, level=logging.DEBUG)
    assert path is not None
    logging.getLogger("PIL.PngImagePlugin").debug("STREAM b'IHDR' 16 13")
    logging.getLogger("dino_desktop.test").debug("our debug line")
    for handler in _ours():
        handler.flush()
    text = path.read_text(encoding="utf-8")
    assert "our debug line" in text and "IHDR" not in text


def test_warnings_reach_stderr_in_the_cli_style(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.setup_logging(console=True)
    logging.getLogger("dino_desktop.test").info("only in the file")
    logging.getLogger("dino_desktop.test").warning("something to know")
    err = capsys.readouterr().err
    assert err == "dino-desktop: warning: something to know\n"


def test_an_unwritable_log_dir_does_not_stop_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_dir: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv(logs.LOG_DIR_ENV, str(blocker / "logs"))
    assert logs.setup_logging(console=False) is None
    logging.getLogger("dino_desktop.test").warning("nowhere to go, and no crash")


def test_cli_help_names_the_log_file(log_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert f"Log file: {log_dir / 'dino-desktop.log'}" in capsys.readouterr().out


def test_cli_commands_log_to_the_file(
    log_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--library", str(tmp_path / "lib"), "status", "--json"]) == 0
    assert (log_dir / "dino-desktop.log").exists()
    assert capsys.readouterr().err == ""  # nothing new on stderr for a clean run
