"""The public CLI contract: commands, JSON shapes, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import imagegen
import pytest
import weightsgen

from dino_desktop.cli import main

TESTS = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    try:
        data = json.loads(out) if "--json" in args else out
    except json.JSONDecodeError:
        data = out
    return code, data, err


@pytest.fixture(scope="module")
def vits_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weights ViT-S/14 checkpoint in Meta's .pth format (no semantic quality)."""
    return weightsgen.write_meta_checkpoint(
        tmp_path_factory.mktemp("w") / "dinov2_vits14_pretrain.pth", "vit_small_patch14_dinov2"
    )


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Photos of mixed formats, EXIF orientations and odd names, plus bad files."""
    root = tmp_path_factory.mktemp("mixed") / "Photos 2024"
    (root / "été").mkdir(parents=True)
    for i in range(8):
        imagegen.save_jpeg(root / f"IMG_{i:04}.jpg", seed=i, orientation=i + 1, size=(360, 240))
    for i, fmt in enumerate(["PNG", "WEBP", "TIFF", "GIF", "BMP"]):
        imagegen.save_as(root / "été" / f"pic {i}.{fmt.lower()}", fmt, seed=100 + i)
    imagegen.cmyk_jpeg(root / "cmyk.jpg", seed=200)
    imagegen.png16(root / "deep.png", seed=201)
    imagegen.rgba_png(root / "alpha.png", seed=202)
    imagegen.animated_gif(root / "anim.gif", seed=203)
    imagegen.multipage_tiff(root / "pages.tif", seed=204)
    imagegen.save_as(root / "one.png", "PNG", size=(1, 1))
    imagegen.save_jpeg(root / "pano.jpg", seed=205, size=(6000, 300))
    BAD_NAMES.update(p.name for p in imagegen.bad_files(root).values())
    return root


BAD_NAMES: set[str] = set()  # filled by the `mixed` fixture


N_GOOD = 8 + 5 + 3 + 2 + 1 + 1


def test_scan_search_status_list_with_real_vits_architecture(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mixed: Path, vits_weights: Path
) -> None:
    lib = str(tmp_path / "lib")
    base = ["--library", lib, "--model", "vit_small_patch14_dinov2", "--weights", str(vits_weights)]
    code, first, _ = run(capsys, *base, "scan", str(mixed), "--json")
    assert code == 0
    bad = BAD_NAMES
    failed = {Path(f["path"]).name for f in first["failed"]}
    assert failed == bad
    assert all(f["error"] for f in first["failed"])
    assert (first["added"], first["embedded"], first["pending"]) == (N_GOOD + len(bad), N_GOOD, 0)

    code, second, _ = run(capsys, *base, "scan", str(mixed), "--json")
    assert code == 0
    assert (second["added"], second["updated"], second["embedded"]) == (0, 0, 0)
    assert second["unchanged"] == N_GOOD + len(bad)

    code, hits, _ = run(capsys, *base, "search", str(mixed / "IMG_0003.jpg"), "--json")
    assert code == 0 and len(hits) == 10
    assert hits[0]["path"] == str(mixed / "IMG_0003.jpg") and hits[0]["score"] >= 0.999

    outside = tmp_path / "outside.png"
    imagegen.save_as(outside, "PNG", seed=55)
    code, hits, _ = run(capsys, *base, "search", str(outside), "--top", "3", "--json")
    assert code == 0 and len(hits) == 3 and all(Path(h["path"]).is_absolute() for h in hits)

    code, status, _ = run(capsys, *base, "status", "--json")
    assert (status["images"], status["embedded"], status["pending"]) == (N_GOOD, N_GOOD, 0)
    assert status["failed"] == len(bad) and status["weights"] == str(vits_weights)
    assert status["folders"][0]["path"] == str(mixed)

    code, rows, _ = run(capsys, *base, "list", "--json")
    assert len(rows) == N_GOOD + len(bad)
    assert {r["status"] for r in rows} == {"ok", "failed"}
    assert all(r["error"] for r in rows if r["status"] == "failed")
    assert set(rows[0]) == {"path", "status", "width", "height", "taken_at", "error", "companions"}


def test_offline_without_weights(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mixed: Path
) -> None:
    lib = str(tmp_path / "lib")
    code, result, err = run(capsys, "--library", lib, "scan", str(mixed), "--json")
    assert code == 0
    assert result["embedded"] == 0 and result["pending"] == N_GOOD
    assert "model import" in err
    code, _, err = run(capsys, "--library", lib, "search", str(mixed / "IMG_0001.jpg"))
    assert code == 3
    assert "dinov2_vits14" in err and "dino-desktop model import" in err
    assert "Traceback" not in err
    code, status, _ = run(capsys, "--library", lib, "model", "status", "--json")
    assert code == 0 and status["weights"] is None and status["pending"] == N_GOOD


def test_model_import_then_scan_embeds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, vits_weights: Path
) -> None:
    lib = str(tmp_path / "lib")
    photos = tmp_path / "p"
    photos.mkdir()
    imagegen.save_jpeg(photos / "a.jpg", seed=1)
    run(capsys, "--library", lib, "scan", str(photos))
    code, out, _ = run(capsys, "--library", lib, "model", "import", str(vits_weights), "--json")
    assert code == 0 and Path(out["weights"]).parent == Path(lib) / "models"
    code, result, _ = run(capsys, "--library", lib, "scan", "--json")
    assert code == 0 and result["embedded"] == 1 and result["pending"] == 0
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"nope")
    code, _, err = run(capsys, "--library", lib, "model", "import", str(bad))
    assert code == 1 and "Traceback" not in err


def test_model_download_installs_verified_weights_and_offline_exits_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`model download` runs the same weights job as the GUI, here from a file://
    "Meta" URL; a download that cannot start exits 3 and leaves the cache empty."""
    import dataclasses

    from dino_desktop.core.weights import MODELS

    weightsgen.register_tiny_model()
    remote = weightsgen.write_meta_checkpoint(tmp_path / "remote" / "tiny.pth", weightsgen.TINY)
    name = "dinov2_tiny_download_test"
    spec = dataclasses.replace(MODELS[weightsgen.TINY], name=name, meta_url=remote.as_uri())
    monkeypatch.setitem(MODELS, name, spec)
    lib = tmp_path / "lib"
    base = ["--library", str(lib), "--model", name, "model"]
    code, out, err = run(capsys, *base, "download", "--source", "meta", "--json")
    assert code == 0, err
    assert out == {"model": name, "weights": str(lib / "models" / f"{name}.pth")}
    assert Path(out["weights"]).read_bytes() == remote.read_bytes()
    code, status, _ = run(capsys, *base, "status", "--json")
    assert status["weights"] == out["weights"] and status["source"] == "cache"

    Path(out["weights"]).unlink()
    gone = dataclasses.replace(spec, meta_url=(tmp_path / "gone.pth").as_uri())
    monkeypatch.setitem(MODELS, name, gone)
    code, _, err = run(capsys, *base, "download", "--source", "meta")
    assert code == 3 and "model import" in err and "Traceback" not in err
    assert [p.name for p in (lib / "models").iterdir() if not p.name.endswith(".json")] == []
    code, _, err = run(capsys, *base, "download")  # the test model has no timm download
    assert code == 2 and "has no timm download" in err and "Traceback" not in err


def test_expected_errors_are_one_line_with_exit_codes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lib = str(tmp_path / "lib")
    code, _, err = run(capsys, "--library", lib, "scan", str(tmp_path / "nope"))
    assert code == 1 and "not a folder" in err and "Traceback" not in err
    code, _, err = run(capsys, "--library", lib, "--model", "resnet50", "status")
    assert code == 2 and "vit_small_patch14_dinov2" in err
    with pytest.raises(SystemExit) as exc:
        main(["--library", lib, "search"])
    assert exc.value.code == 2
    # Global options are accepted after the subcommand too.
    code, status, _ = run(capsys, "status", "--json", "--library", lib)
    assert code == 0 and status["images"] == 0


def _cli(*args: str, **kw: Any) -> subprocess.Popen[str]:
    """The CLI in a subprocess, with the tiny test model registered."""
    code = (
        "import sys, weightsgen; weightsgen.register_tiny_model(); "
        # as tests/conftest.py does in-process: the host's bf16 support decides nothing
        "from dino_desktop.core import device; device.cpu_bf16_feature = lambda: None; "
        "from dino_desktop.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def test_entry_point_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dino_desktop", "--help"], capture_output=True, text=True, check=True
    )
    assert "scan" in out.stdout and "search" in out.stdout


def test_sigkill_mid_scan_leaves_a_sound_db_and_the_rescan_finishes(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    # More than one commit of the one-pass scan (rows and vectors land together,
    # ~200 photos a transaction), so the kill can fall between two.
    n = 500
    for i in range(n):
        imagegen.save_jpeg(photos / f"{i:03}.jpg", seed=i, size=(320, 240))
    weightsgen.register_tiny_model()
    weights = weightsgen.write_meta_checkpoint(tmp_path / "tiny.pth", weightsgen.TINY)
    lib = tmp_path / "lib"
    args = ["--library", str(lib), "--model", weightsgen.TINY, "--weights", str(weights)]
    proc = _cli(*args, "scan", str(photos), "--json")
    db_path = lib / "library.sqlite3"
    deadline = time.monotonic() + 120
    # Kill once some rows are committed but before the job is done.
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)
            rows = con.execute("SELECT count(*) FROM images").fetchone()[0]
            con.close()
        except sqlite3.Error:
            rows = 0
        if rows >= 1:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the scan finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    con = sqlite3.connect(db_path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done = con.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    con.close()
    assert done < n
    if done:
        # Every vector stored belongs to a row of a photo that was read.
        con = sqlite3.connect(db_path)
        orphans = con.execute(
            "SELECT count(*) FROM embeddings e WHERE NOT EXISTS"
            " (SELECT 1 FROM images i WHERE i.id = e.image_id AND i.status = 'ok')"
        ).fetchone()[0]
        con.close()
        assert orphans == 0

    proc = _cli(*args, "scan", "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["pending"] == 0 and not result["failed"]
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT count(*) FROM images WHERE status='ok'").fetchone()[0] == n
    assert con.execute("SELECT count(*) FROM embeddings").fetchone()[0] == n
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_trash_and_undo_restore_the_bytes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lib = str(tmp_path / "lib")
    photos = tmp_path / "p"
    photos.mkdir()
    a = imagegen.save_jpeg(photos / "a.jpg", seed=1)
    original = a.read_bytes()
    run(capsys, "--library", lib, "scan", str(photos), "--no-embed")
    code, out, _ = run(capsys, "--library", lib, "trash", str(a), "--json")
    assert code == 0 and out["trashed"] == [str(a)] and isinstance(out["journal"], int)
    assert not a.exists()
    trashed = list((tmp_path / "xdg-data" / "Trash" / "files").iterdir())
    assert [p.read_bytes() for p in trashed] == [original]
    code, status, _ = run(capsys, "--library", lib, "status", "--json")
    assert status["images"] == 0
    code, out, _ = run(capsys, "--library", lib, "undo", "--json")
    assert code == 0 and out["undone"] == [str(a)]
    assert a.read_bytes() == original
    code, _, err = run(capsys, "--library", lib, "undo", str(out["journal"]))
    assert code == 1 and "already undone" in err


def test_prune_thumbnails_removes_a_trashed_photos_thumbnail(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from dino_desktop.core.thumbnails import thumbnail_file

    lib = str(tmp_path / "lib")
    photos = tmp_path / "p"
    a = imagegen.save_jpeg(photos / "a.jpg", seed=1)
    b = imagegen.save_jpeg(photos / "b.jpg", seed=2)
    run(capsys, "--library", lib, "scan", str(photos), "--no-embed")
    thumbs = {p: thumbnail_file(tmp_path / "lib" / "cache", *_stamp(p)) for p in (a, b)}
    run(capsys, "--library", lib, "trash", str(a))
    code, out, _ = run(capsys, "--library", lib, "prune-thumbnails", "--json")
    assert code == 0 and (out["removed"], out["kept"]) == (1, 1) and out["freed_bytes"] > 0
    assert not thumbs[a].exists() and thumbs[b].is_file() and b.is_file()
    code, out, _ = run(capsys, "--library", lib, "prune-thumbnails")
    assert code == 0 and "Removed 0 stale thumbnail(s)" in out


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


def test_trash_refuses_reference_folders(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lib = str(tmp_path / "lib")
    ref = tmp_path / "ref"
    ref.mkdir()
    a = imagegen.save_jpeg(ref / "a.jpg", seed=1)
    run(capsys, "--library", lib, "scan", str(ref), "--reference", "--no-embed")
    code, _, err = run(capsys, "--library", lib, "trash", str(a))
    assert code == 1 and "reference" in err and a.exists()


def test_overlay_pngs_for_every_mode(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from PIL import Image

    weightsgen.register_tiny_model()
    weights = weightsgen.write_meta_checkpoint(tmp_path / "tiny.pth", weightsgen.TINY)
    base = [
        "--library",
        str(tmp_path / "lib"),
        "--model",
        weightsgen.TINY,
        "--weights",
        str(weights),
    ]
    rotated = imagegen.save_jpeg(tmp_path / "rot.jpg", seed=1, orientation=6, size=(400, 300))
    wide = imagegen.save_jpeg(tmp_path / "wide.jpg", seed=2, size=(640, 360))
    other = imagegen.save_as(tmp_path / "other.png", "PNG", seed=3, size=(200, 300))

    code, out, _ = run(capsys, *base, "overlay", str(rotated), str(tmp_path / "a.png"), "--json")
    assert code == 0
    with Image.open(tmp_path / "a.png") as png:
        assert png.size == (300, 400)  # the photo's display size, after EXIF rotation
    assert (out["width"], out["height"]) == (300, 400)

    fg = tmp_path / "fg.png"
    code, _, _ = run(capsys, *base, "overlay", str(wide), str(fg), "--mode", "foreground")
    assert code == 0
    with Image.open(fg) as png:
        assert png.size == (640, 360) and png.mode == "RGBA"
        alpha = png.getchannel("A")
        assert alpha.getextrema() == (0, 255)  # a background and a foreground

    joint = tmp_path / "joint.png"
    code, out, _ = run(
        capsys,
        *base,
        "overlay",
        str(wide),
        str(joint),
        "--with",
        str(rotated),
        str(other),
        "--json",
    )
    assert code == 0 and out["height"] == 360 and out["width"] > 640 + 270 + 120

    code, _, err = run(capsys, *base, "overlay", str(wide), str(joint))
    assert code == 1 and "--overwrite" in err  # never replaces a file unasked
    code, _, _ = run(capsys, *base, "overlay", str(wide), str(joint), "--overwrite")
    assert code == 0
    code, _, err = run(
        capsys, "--library", str(tmp_path / "lib2"), "overlay", str(wide), str(tmp_path / "x.png")
    )
    assert code == 3 and "model import" in err


def _library_with_copies(root: Path) -> dict[str, Any]:
    """Originals, a backup of byte copies, resized phone copies, EXIF-rotated copies, edits."""
    import shutil

    from PIL import Image, ImageEnhance

    originals = root / "Photos"
    backup = root / "Backup"
    phone = root / "Phone"
    edits = root / "Edits"
    for folder in (originals, backup, phone, edits):
        folder.mkdir(parents=True)
    expected_pairs: set[frozenset[str]] = set()
    exact_groups: list[set[str]] = []
    for i in range(10):
        img = imagegen.photo(800, 600, seed=300 + i)
        orig = imagegen.save_jpeg(originals / f"IMG_{i}.jpg", img, quality=95)
        group = {str(orig)}
        if i < 6:  # backed up byte for byte
            copy = backup / f"IMG_{i}.jpg"
            shutil.copyfile(orig, copy)
            group.add(str(copy))
            exact_groups.append(set(group))
        if i % 2 == 0:  # a resized, recompressed phone copy
            small = phone / f"small_{i}.jpg"
            img.resize((400, 300), Image.Resampling.LANCZOS).save(small, quality=70)
            group.add(str(small))
        if i % 3 == 0:  # stored rotated, displayed upright through EXIF
            stored = img.transpose(imagegen._STORE_TRANSPOSE[6])
            rotated = imagegen.save_jpeg(phone / f"rot_{i}.jpg", stored, orientation=6)
            group.add(str(rotated))
        if i == 4:  # an edit: much brighter; not a copy
            ImageEnhance.Brightness(img).enhance(1.8).save(edits / "bright_4.jpg", quality=90)
        members = sorted(group)
        expected_pairs |= {frozenset((a, b)) for a in members for b in members if a < b}
    return {"root": root, "pairs": expected_pairs, "exact": exact_groups, "originals": originals}


def _pairs(groups: list[dict[str, Any]]) -> set[frozenset[str]]:
    out: set[frozenset[str]] = set()
    for g in groups:
        paths = sorted(m["path"] for m in g["members"])
        out |= {frozenset((a, b)) for a in paths for b in paths if a < b}
    return out


def test_duplicates_exact_phash_keepers_and_safe_cleanup(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lib_args = ["--library", str(tmp_path / "lib")]
    built = _library_with_copies(tmp_path / "lib-photos")
    root = built["root"]
    # The originals are a reference folder: never removal candidates.
    run(capsys, *lib_args, "scan", str(built["originals"]), "--reference", "--no-embed")
    run(capsys, *lib_args, "scan", str(root), "--no-embed")

    code, groups, _ = run(capsys, *lib_args, "duplicates", "--method", "exact", "--json")
    assert code == 0
    assert [set(m["path"] for m in g["members"]) for g in groups] != []
    assert sorted(sorted(m["path"] for m in g["members"]) for g in groups) == sorted(
        sorted(g) for g in built["exact"]
    )
    originals = str(built["originals"])
    for g in groups:
        assert g["keep"].startswith(originals)  # the original, in the reference folder
        assert all(m["relation"] == "identical" for m in g["members"] if m["path"] != g["keep"])

    code, groups, _ = run(capsys, *lib_args, "duplicates", "--method", "phash", "--json")
    assert code == 0
    # The brightened edit may rightly be grouped ("edited"): it counts neither way.
    found = {p for p in _pairs(groups) if not any("bright_4" in x for x in p)}
    expected = built["pairs"]
    true_pos = len(found & expected)
    assert true_pos / max(1, len(found)) >= 0.95  # precision
    assert true_pos / len(expected) >= 0.9  # recall
    for g in groups:
        assert g["keep"].startswith(originals)
        assert not any(m["reference"] and m["path"] != g["keep"] for m in g["members"])

    # Trash every non-keeper (never a reference file), then undo: every byte back.
    doomed = [
        m["path"]
        for g in groups
        for m in g["members"]
        if m["path"] != g["keep"] and not m["reference"]
    ]
    before = {p: Path(p).read_bytes() for p in doomed}
    code, out, _ = run(capsys, *lib_args, "trash", *doomed, "--json")
    assert code == 0 and sorted(out["trashed"]) == sorted(doomed)
    assert not any(Path(p).exists() for p in doomed)
    assert all(Path(g["keep"]).exists() for g in groups)
    code, out, _ = run(capsys, *lib_args, "undo", "--json")
    assert code == 0
    assert {p: Path(p).read_bytes() for p in doomed} == before


def test_duplicates_options_that_do_not_fit_are_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lib = ["--library", str(tmp_path / "lib")]
    code, _, err = run(capsys, *lib, "duplicates", "--method", "phash", "--threshold", "40")
    assert code == 2 and "threshold" in err and "Traceback" not in err
    code, _, err = run(capsys, *lib, "duplicates", "--threshold", "3")
    assert code == 2 and "exact" in err
    code, _, err = run(capsys, *lib, "duplicates", "--method", "dino")
    assert code == 3 and "model import" in err
    code, groups, _ = run(capsys, *lib, "duplicates", "--json")
    assert code == 0 and groups == []


def test_cluster_needs_weights_and_validates_k(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lib = ["--library", str(tmp_path / "lib")]
    code, _, err = run(capsys, *lib, "cluster", "--json")
    assert code == 3 and "model import" in err and "Traceback" not in err
    code, _, err = run(capsys, *lib, "cluster", "--k", "zero")
    assert code == 2 and "--k" in err
    code, _, err = run(capsys, *lib, "export-clusters", str(tmp_path / "out"), "--json")
    assert code == 3 and "Traceback" not in err


def test_cluster_export_dry_run_copy_and_undo(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        imagegen.save_jpeg(photos / f"p{i}.jpg", seed=i, size=(200, 150))
    weightsgen.register_tiny_model()
    weights = weightsgen.write_meta_checkpoint(tmp_path / "tiny.pth", weightsgen.TINY)
    base = ["--library", str(tmp_path / "lib"), "--model", weightsgen.TINY]
    base += ["--weights", str(weights)]
    assert run(capsys, *base, "scan", str(photos), "--json")[0] == 0
    dest = tmp_path / "out"
    code, _, err = run(capsys, *base, "export-clusters", str(dest), "--json")
    assert code == 1 and "cluster" in err  # no run yet

    code, out, _ = run(capsys, *base, "cluster", "--k", "2", "--json")
    assert code == 0 and out["k"] == len(out["clusters"]) <= 2
    paths = [p for c in out["clusters"] for p in c["paths"]]
    assert sorted(paths) == sorted(str(p) for p in photos.iterdir())
    assert all(c["size"] == len(c["paths"]) and {"id", "name"} <= c.keys() for c in out["clusters"])

    code, plan, _ = run(capsys, *base, "export-clusters", str(dest), "--dry-run", "--json")
    assert code == 0 and plan["journal"] is None and len(plan["written"]) == 6
    assert not dest.exists()

    code, done, _ = run(capsys, *base, "export-clusters", str(dest), "--mode", "copy", "--json")
    assert code == 0 and sorted(done["written"]) == sorted(plan["written"])
    assert all(os.path.isabs(p) and Path(p).is_file() for p in done["written"])
    code, undone, _ = run(capsys, *base, "undo", str(done["journal"]), "--json")
    assert code == 0 and len(undone["undone"]) == 6
    assert not dest.exists()  # DEST was created by the export: removed again
    assert len(list(photos.iterdir())) == 6
