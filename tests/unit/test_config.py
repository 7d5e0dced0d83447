"""settings.toml: round trip, and a damaged file never costs the user the app or the file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from dino_desktop import cli
from dino_desktop.config import Settings


def test_settings_round_trip_through_tomli_w(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    settings = Settings(
        model='odd "name" \\ é', device="cuda:1", batch_size=64, precision="bf16",
        watch_folders=False, keeper_rules=["reference", "format", "pixels"],
        format_order=["HEIF", "JPEG", "PNG"], preferred_folders=["/photos/originals"],
        roots={"/mnt/nas/photos": "/Volumes/photos", "P:\\photos": "/mnt/p"},
    )  # fmt: skip
    settings.save(path)
    assert tomllib.loads(path.read_text(encoding="utf-8")) == {
        "model": 'odd "name" \\ é',
        "device": "cuda:1",
        "batch_size": 64,
        "precision": "bf16",
        "watch_folders": False,
        "keeper_rules": ["reference", "format", "pixels"],
        "format_order": ["HEIF", "JPEG", "PNG"],
        "preferred_folders": ["/photos/originals"],
        "roots": {"/mnt/nas/photos": "/Volumes/photos", "P:\\photos": "/mnt/p"},
    }
    loaded = Settings.load(path)
    assert loaded == settings
    assert loaded.problem is None
    assert "problem" not in path.read_text(encoding="utf-8")


def test_missing_file_is_the_defaults_without_a_problem(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path / "settings.toml")
    assert settings == Settings()
    assert settings.problem is None


@pytest.mark.parametrize(
    "content",
    [
        b"model = vit_small_patch14_dinov2\n",
        b"[[[",
        b"batch_size = 16\nbatch_size = 8\n",
        b"\xff\xfe",
    ],
    ids=["unquoted", "garbage", "duplicate-key", "not-utf8"],
)
def test_damaged_file_is_kept_aside_and_defaults_are_used(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "settings.toml"
    path.write_bytes(content)
    settings = Settings.load(path)
    assert settings == Settings()
    assert not path.exists()
    (aside,) = tmp_path.glob("settings.toml.bad-*")
    assert aside.read_bytes() == content  # kept for the user, byte for byte
    assert aside.name[len("settings.toml.bad-") :].replace("-", "").isdigit()
    assert settings.problem is not None
    assert str(aside) in settings.problem
    # Saving afterwards writes a good file and leaves the damaged copy alone.
    settings.save(path)
    assert Settings.load(path).problem is None
    assert aside.read_bytes() == content


def test_two_damaged_files_in_the_same_second_are_both_kept(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    for content in ("first [", "second ["):
        path.write_text(content, encoding="utf-8")
        Settings.load(path)
    kept = sorted(p.read_text(encoding="utf-8") for p in tmp_path.glob("settings.toml.bad-*"))
    assert kept == ["first [", "second ["]


def test_a_bad_value_falls_back_alone_and_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        'model = "vit_base_patch14_dinov2"\n'
        'device = "gpu"\n'
        "batch_size = true\n"
        'precision = "bf16"\n'
        'future_key = "kept quiet"\n',
        encoding="utf-8",
    )
    settings = Settings.load(path)
    assert settings.model == "vit_base_patch14_dinov2"
    assert settings.precision == "bf16"
    assert settings.device == Settings().device
    assert settings.batch_size == Settings().batch_size
    assert settings.problem is not None
    assert "device" in settings.problem and "batch_size" in settings.problem
    assert "future_key" not in settings.problem  # newer apps' keys are not errors
    # The file as it was is kept; the rewritten one has no bad values, so the
    # user is told once, and a newer app's key survives.
    (aside,) = tmp_path.glob("settings.toml.bad-*")
    assert 'device = "gpu"' in aside.read_text(encoding="utf-8")
    assert str(aside) in settings.problem
    again = Settings.load(path)
    assert again.problem is None and again == settings
    assert tomllib.loads(path.read_text(encoding="utf-8"))["future_key"] == "kept quiet"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("batch_size = 0", "batch_size"),
        ('batch_size = "16"', "batch_size"),
        ("batch_size = 16.0", "batch_size"),
        ('precision = "fp16"', "precision"),
        ("model = 3", "model"),
        ('model = ""', "model"),
        ('device = ["cpu"]', "device"),
        ('keeper_rules = ["pixels", "biggest"]', "keeper_rules"),
        ('keeper_rules = "pixels"', "keeper_rules"),
        ('keeper_rules = ["oldest", "newest"]', "keeper_rules"),
        ("format_order = [1, 2]", "format_order"),
        ('preferred_folders = [""]', "preferred_folders"),
        ('roots = ["/mnt/nas"]', "roots"),
        ('roots = {"/mnt/nas" = 3}', "roots"),
        ('roots = {"/mnt/nas" = ""}', "roots"),
    ],
)
def test_wrong_types_and_values_are_rejected(tmp_path: Path, line: str, key: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(line + "\n", encoding="utf-8")
    settings = Settings.load(path)
    assert getattr(settings, key) == getattr(Settings(), key)
    assert settings.problem is not None and key in settings.problem


def test_cli_warns_on_stderr_and_keeps_json_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DINO_DESKTOP_LOG_DIR", str(tmp_path / "logs"))
    home = tmp_path / "lib"
    home.mkdir()
    (home / "settings.toml").write_text("this is not toml", encoding="utf-8")
    assert cli.main(["--library", str(home), "status", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "dino-desktop: warning:" in err and "settings.toml.bad-" in err
    assert out.lstrip().startswith("{")  # stdout is still just the JSON
    assert list(home.glob("settings.toml.bad-*"))
    assert err.count("settings.toml.bad-") == 1  # one line, not one per handler
    # Reported once: the next run reads the defaults it was left with, quietly.
    assert cli.main(["--library", str(home), "status", "--json"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert "settings.toml.bad-" in (tmp_path / "logs" / "dino-desktop.log").read_text("utf-8")


def test_keys_of_a_newer_release_survive_a_save(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('batch_size = 8\nthumbnail_size = 320\n[viewer]\nzoom = "fit"\n', "utf-8")
    settings = Settings.load(path)
    assert settings.problem is None
    settings.batch_size = 32
    settings.save(path)
    assert tomllib.loads(path.read_text(encoding="utf-8")) == {
        **Settings(batch_size=32).to_dict(),
        "thumbnail_size": 320,
        "viewer": {"zoom": "fit"},
    }
