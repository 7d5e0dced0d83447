"""A hostile library: every kind of bad or odd input the tests can generate, in one scan.

Each kind is either indexed or recorded as failed with a readable reason; the
scan finishes; no image is decoded at full size when it is large (JPEGs are
drafted, bombs are refused from the header). Names that are not valid UTF-8,
hold a newline or emoji, or are 240 characters long survive the round trip
through the database and the CLI's JSON.

`KINDS` lists every kind with what must happen to it; RELIABILITY.md counts them.
DINO_LONG_TESTS=1 makes the folder of tiny files 10,000 strong (2,000 otherwise).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagegen
import pytest
from PIL import Image, ImageFile

from dino_desktop.cli import main
from dino_desktop.core import ingest
from dino_desktop.core.images import MAX_PIXELS

LONG = os.environ.get("DINO_LONG_TESTS") == "1"
N_TINY = 10_000 if LONG else 2_000
TESTS = Path(__file__).resolve().parents[1]

OK, FAILED = "ok", "failed"
BAD_UTF8 = os.fsdecode(b"caf\xe9 \xff\xfe.jpg")  # Latin-1 bytes: not UTF-8
LONG_NAME = "L" * 236 + ".jpg"

# name -> (expected status, words the reason must contain; None: either status is fine)
KINDS: dict[str, tuple[str | None, str]] = {
    "empty.jpg": (FAILED, "empty"),
    "truncated.jpg": (FAILED, "truncated"),
    "text.jpg": (FAILED, "not an image"),
    "garbage.png": (FAILED, "damaged"),
    "bomb.png": (FAILED, "too large"),
    "badcrc.png": (FAILED, "damaged"),
    "dangling.jpg": (FAILED, "symbolic link"),
    "loop.jpg": (FAILED, "symbolic link"),
    "huffman.jpg": (None, ""),  # a corrupt Huffman table: refused, or decoded as noise
    "zero-width.png": (FAILED, "damaged"),
    "zero-height.gif": (FAILED, ""),
    "strip-100000.png": (OK, ""),
    "giant-header.png": (FAILED, "too large"),
    "big-exif.jpg": (OK, ""),
    "orientation-0.jpg": (OK, ""),
    "orientation-9.jpg": (OK, ""),
    "frames-1000.gif": (OK, ""),
    "pages-200.tif": (OK, ""),
    "large-24mp.jpg": (OK, ""),
    "grows.jpg": (None, ""),  # appended to while it is read: the next scan catches up
    "vanishes.jpg": (FAILED, "no such file"),
    "line\nbreak.jpg": (OK, ""),
    "emoji 😀🦖.jpg": (OK, ""),
    BAD_UTF8: (OK, ""),
    LONG_NAME: (OK, ""),
    "dir.jpg/inside.jpg": (OK, ""),  # a folder named like a photo: walked into
}
# Also: a FIFO named fifo.jpg (never opened: it would block) and a folder of
# N_TINY tiny photos; the permission-denied file runs as another user below.
N_KINDS = len(KINDS) + 2 + 1


def _huffman(path: Path) -> None:
    data = bytearray(imagegen.save_jpeg(path, seed=7, size=(160, 120)).read_bytes())
    at = data.index(b"\xff\xc4")  # the first DHT segment
    length = struct.unpack(">H", data[at + 2 : at + 4])[0]
    for i in range(at + 5, at + 2 + length):  # the code counts and symbols
        data[i] = 0xFF
    path.write_bytes(bytes(data))


def _zero_png(path: Path) -> None:
    ihdr = struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
    path.write_bytes(raw + _chunk(b"IEND", b""))


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def _zero_gif(path: Path) -> None:
    buf = io.BytesIO()
    Image.new("P", (8, 8)).save(buf, "GIF")
    data = bytearray(buf.getvalue())
    data[8:10] = b"\x00\x00"  # logical screen height 0
    at = data.index(b"\x2c")  # image descriptor: left, top, width, height
    data[at + 7 : at + 9] = b"\x00\x00"
    path.write_bytes(bytes(data))


def _big_exif(path: Path) -> None:
    # An APP1 segment near its 64 KB limit (a maker note full of junk).
    imagegen.save_jpeg(path, seed=8, size=(160, 120), exif={0x927C: b"\x07" * 60_000})


def _frames_gif(path: Path) -> None:
    frames = [Image.new("P", (16, 16), i % 256) for i in range(1000)]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=10)


def build(root: Path) -> None:
    """Write the hostile folder (everything but the timing-dependent kinds)."""
    imagegen.bad_files(root)
    imagegen.bad_links(root)
    _huffman(root / "huffman.jpg")
    _zero_png(root / "zero-width.png")
    _zero_gif(root / "zero-height.gif")
    imagegen.save_as(root / "strip-100000.png", "PNG", Image.new("L", (100_000, 2), 128))
    imagegen.huge_png(root / "giant-header.png", 100_000, 100_000)
    _big_exif(root / "big-exif.jpg")
    for bad in (0, 9):
        imagegen.save_jpeg(root / f"orientation-{bad}.jpg", seed=bad, orientation=bad)
    _frames_gif(root / "frames-1000.gif")
    imagegen.multipage_tiff(root / "pages-200.tif", pages=200, size=(64, 48))
    imagegen.save_jpeg(root / "large-24mp.jpg", seed=3, size=(6000, 4000), quality=70)
    imagegen.save_jpeg(root / "grows.jpg", seed=4, size=(160, 120))
    imagegen.save_jpeg(root / "vanishes.jpg", seed=5, size=(160, 120))
    for i, name in enumerate(["line\nbreak.jpg", "emoji 😀🦖.jpg", BAD_UTF8, LONG_NAME]):
        imagegen.save_jpeg(root / name, seed=20 + i, size=(160, 120))
    imagegen.save_jpeg(root / "dir.jpg" / "inside.jpg", seed=30, size=(160, 120))
    os.mkfifo(root / "fifo.jpg")
    tiny = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 30, 30)).save(tiny, "PNG")
    (root / "tiny").mkdir()
    for i in range(N_TINY):
        (root / "tiny" / f"{i:05}.png").write_bytes(tiny.getvalue())


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The folder, scanned once through the CLI (--json), with what Pillow decoded."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "Hostile library"
    build(root)
    loaded: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load
    real_read = ingest._read_bytes

    def spy_load(self: ImageFile.ImageFile) -> Any:
        loaded.append(self.size)
        return real_load(self)

    def hooked_read(path: str) -> Any:
        name = os.path.basename(path)
        if name == "grows.jpg":
            with open(path, "ab") as f:  # a camera still writing it
                f.write(b"\0" * 100_000)
        elif name == "vanishes.jpg":
            os.unlink(path)  # deleted between the walk and the read
        return real_read(path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ImageFile.ImageFile, "load", spy_load)
        # The scan's one-pass read of each new file (core/ingest.py).
        mp.setattr(ingest, "_read_bytes", hooked_read)
        lib = str(base / "lib")
        code = main(["--library", lib, "scan", str(root), "--no-embed", "--json"])
    yield {"root": root, "lib": lib, "code": code, "loaded": loaded}


def _cli_json(*args: str, capsys: pytest.CaptureFixture[str]) -> Any:
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _listing(hostile: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    items = _cli_json("--library", hostile["lib"], "list", capsys=capsys)
    root = str(hostile["root"]) + os.sep
    return {it["path"][len(root) :]: it for it in items if it["path"].startswith(root)}


def test_the_scan_finishes(hostile: dict[str, Any]) -> None:
    assert hostile["code"] == 0


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kind_is_indexed_or_recorded_with_a_reason(
    hostile: dict[str, Any], capsys: pytest.CaptureFixture[str], name: str
) -> None:
    listing = _listing(hostile, capsys)
    assert name in listing, f"{name!r} is neither indexed nor recorded"
    item = listing[name]
    status, words = KINDS[name]
    if status is not None:
        assert item["status"] == status, (name, item)
    if item["status"] == FAILED:
        assert item["error"] and "\n" not in item["error"], item
        assert words.lower() in item["error"].lower(), item
    else:
        assert item["error"] is None and item["width"] and item["height"]


def test_no_large_image_is_decoded_at_full_size(hostile: dict[str, Any]) -> None:
    # The 24 MP JPEG is drafted (1/8 scale); bombs never reach a decoder.
    assert hostile["loaded"], "the spy saw no decodes"
    biggest = max(w * h for w, h in hostile["loaded"])
    assert biggest <= 1_000_000, biggest
    assert biggest < MAX_PIXELS


def test_the_fifo_is_never_opened_and_tiny_files_are_all_indexed(
    hostile: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    listing = _listing(hostile, capsys)
    assert "fifo.jpg" not in listing  # not a regular file: not a photo, never opened
    tiny = [k for k in listing if k.startswith("tiny" + os.sep)]
    assert len(tiny) == N_TINY
    assert all(listing[k]["status"] == OK for k in tiny)


def test_odd_names_round_trip_through_the_db_and_json(
    hostile: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    root = hostile["root"]
    listing = _listing(hostile, capsys)
    for name in ["line\nbreak.jpg", "emoji 😀🦖.jpg", BAD_UTF8, LONG_NAME]:
        path = listing[name]["path"]
        assert path == os.path.join(str(root), name)
        # The JSON string maps back to the very bytes of the file name.
        assert os.path.exists(os.fsencode(path))
    # Search by a file whose name is not UTF-8 finds its own row (DB -> path -> file).
    from dino_desktop.core.library import Library

    with Library(hostile["lib"]) as lib:
        assert lib.find_image(os.path.join(str(root), BAD_UTF8)) is not None
        assert {r.path for r in lib.photos()} >= {os.path.join(str(root), BAD_UTF8)}


def test_a_rescan_catches_up_with_grown_and_vanished_files(
    hostile: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = _cli_json("--library", hostile["lib"], "scan", capsys=capsys)
    assert out["removed"] == 1  # vanishes.jpg
    listing = _listing(hostile, capsys)
    assert "vanishes.jpg" not in listing
    grown = listing["grows.jpg"]
    size = os.path.getsize(hostile["root"] / "grows.jpg")
    from dino_desktop.core.library import Library

    with Library(hostile["lib"]) as lib:
        found = lib.find_image(hostile["root"] / "grows.jpg")
    assert found is not None and found[1] == size
    assert grown["status"] in (OK, FAILED)
    again = _cli_json("--library", hostile["lib"], "scan", capsys=capsys)
    assert (again["added"], again["updated"], again["removed"]) == (0, 0, 0)


def _can_drop_privileges() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("true") is not None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_permission_denied_file_is_recorded(tmp_path: Path) -> None:
    """Root reads everything, so as root the scan runs as `nobody` in a subprocess."""
    if os.geteuid() != 0:
        root = tmp_path / "perm"
        imagegen.save_jpeg(root / "ok.jpg", seed=1, size=(64, 48))
        secret = imagegen.save_jpeg(root / "secret.jpg", seed=2, size=(64, 48))
        secret.chmod(0)
        try:
            main(["--library", str(tmp_path / "lib"), "scan", str(root), "--no-embed"])
            from dino_desktop.core.library import Library

            with Library(tmp_path / "lib") as lib:
                rows = {os.path.basename(r.path): r for r in lib.images()}
        finally:
            secret.chmod(0o644)
        assert rows["secret.jpg"].status == FAILED
        assert "permission denied" in (rows["secret.jpg"].error or "")
        return
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root and there is no 'nobody' user to drop privileges to")
    # A world-writable place outside root's private pytest dirs.
    base = Path(tempfile.mkdtemp(prefix="dino-perm-"))
    try:
        base.chmod(0o777)
        root = base / "photos"
        imagegen.save_jpeg(root / "ok.jpg", seed=1, size=(64, 48))
        secret = imagegen.save_jpeg(root / "secret.jpg", seed=2, size=(64, 48))
        root.chmod(0o755)
        (root / "ok.jpg").chmod(0o644)
        secret.chmod(0o600)  # root's own: nobody may not read it
        lib = base / "lib"

        def drop() -> None:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

        env = {
            **os.environ,
            "PYTHONPATH": str(TESTS.parent),
            "HOME": str(base),
            "XDG_DATA_HOME": str(base),
        }
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dino_desktop",
                    "--library",
                    str(lib),
                    "scan",
                    str(root),
                    "--no-embed",
                    "--json",
                ],
                capture_output=True,
                text=True,
                env=env,
                preexec_fn=drop,
                timeout=120,
                cwd=base,
            )
        except (PermissionError, subprocess.SubprocessError) as exc:
            pytest.skip(f"cannot run a process as nobody here: {exc}")
        if (
            proc.returncode != 0
            and "Permission denied" in proc.stderr
            and "secret" not in proc.stderr
        ):
            pytest.skip(f"nobody cannot run the app from here: {proc.stderr.strip()[-200:]}")
        assert proc.returncode == 0, proc.stderr
        failed = {
            os.path.basename(f["path"]): f["error"] for f in json.loads(proc.stdout)["failed"]
        }
        assert failed == {"secret.jpg": "cannot read file: permission denied"}
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600  # untouched
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_count_of_kinds() -> None:
    """RELIABILITY.md quotes this number."""
    assert N_KINDS >= 20
