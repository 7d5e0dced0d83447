"""Security: booby-trapped weights, hostile names, bombs, no network, bound SQL only.

* A weights file whose pickle would run code is refused with a clear message,
  through the CLI too (`model import`, `--weights`), and the code never runs.
  Every torch.load in the package passes weights_only=True (checked in the source).
* Exported folder names are sanitised: every planned file stays inside DEST.
* Decompression bombs are refused from the header: no decoder ever runs.
* With sockets blocked, scanning, embedding, search, duplicates, clustering and
  the status commands all work: only `model download` touches the network.
* SQL is built with bound parameters only (checked in the source), and SQL-like
  file and folder names are just names.
"""

from __future__ import annotations

import ast
import json
import os
import socket
from pathlib import Path
from typing import Any

import imagegen
import pytest
import torch
import weightsgen
from PIL import ImageFile

from dino_desktop.cli import main
from dino_desktop.core import images
from dino_desktop.core.export_plan import plan_export
from dino_desktop.core.images import ImageError

PACKAGE = Path(__file__).resolve().parents[2] / "dino_desktop"


class _RunsCode:
    """Unpickling this calls os.system (or open): what a booby-trapped .pth does."""

    def __init__(self, marker: Path, how: str) -> None:
        self.marker, self.how = marker, how

    def __reduce__(self) -> tuple[Any, ...]:
        if self.how == "system":
            return (os.system, (f"touch {self.marker}",))
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("how", ["system", "open"])
def test_a_booby_trapped_weights_file_is_refused_without_running_its_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    weightsgen.register_tiny_model()
    marker = tmp_path / "pwned"
    evil = tmp_path / "dinov2_vits14_pretrain.pth"
    sd = torch.load(
        weightsgen.write_meta_checkpoint(tmp_path / "ok.pth", weightsgen.TINY), weights_only=True
    )
    sd["payload"] = _RunsCode(marker, how)  # real tensors, plus the trap
    torch.save(sd, evil)
    lib = str(tmp_path / "lib")
    photos = tmp_path / "p"
    imagegen.save_jpeg(photos / "a.jpg", seed=1, size=(64, 48))

    code = main(["--library", lib, "--model", weightsgen.TINY, "model", "import", str(evil)])
    err = capsys.readouterr().err
    assert code == 1 and "never unpickled" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "lib" / "models" / f"{weightsgen.TINY}.pth").exists()

    args = ["--library", lib, "--model", weightsgen.TINY, "--weights", str(evil)]
    code = main([*args, "scan", str(photos), "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 1) and "never unpickled" in err + out
    code = main([*args, "search", str(photos / "a.jpg")])
    assert code == 1 and "never unpickled" in capsys.readouterr().err
    assert not marker.exists(), "the weights file ran code"


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    calls = 0
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            assert "load_state_dict_from_url" not in name, f"{path}: unsafe by default"
            assert name not in ("pickle.load", "pickle.loads"), f"{path}: a raw unpickle"
            if name == "torch.load":
                calls += 1
                kwargs = {k.arg: k.value for k in node.keywords}
                assert "weights_only" in kwargs, f"{path}:{node.lineno}"
                value = kwargs["weights_only"]
                assert isinstance(value, ast.Constant) and value.value is True
    assert calls >= 1


@pytest.mark.parametrize(
    "name",
    [
        "../../etc",
        "/abs/path",
        "..",
        ".",
        ".hidden",
        "con",
        "COM1.txt",
        "a\\b",
        "a/b",
        "nul\x00x",
        "tab\there",
        "x" * 300,
        "trailing. ",
        "  ",
        "",
    ],
)
def test_export_folder_names_are_sanitised(tmp_path: Path, name: str) -> None:
    src = imagegen.save_jpeg(tmp_path / "src" / "a.jpg", seed=1, size=(32, 24))
    dest = tmp_path / "dest"
    [(_s, d)] = plan_export([(name, [str(src)])], str(dest))
    folder = os.path.dirname(d)
    assert os.path.dirname(folder) == str(dest)  # exactly one level below DEST
    leaf = os.path.basename(folder)
    assert leaf and not leaf.startswith(".") and "\x00" not in leaf and len(leaf) <= 100
    assert leaf.split(".")[0].casefold() not in {"con", "com1", "nul"}
    assert os.path.realpath(d).startswith(os.path.realpath(dest) + os.sep)


def test_bombs_are_refused_before_any_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[tuple[int, int]] = []
    real = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> Any:
        decoded.append(self.size)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    side = int(images.MAX_PIXELS**0.5) + 1  # just over the limit
    for size in [(side, side), (30_000, 30_000), (1_000_000, 1_000)]:
        bomb = imagegen.huge_png(tmp_path / f"bomb-{size[0]}x{size[1]}.png", *size)
        for read in (images.read_info, images.open_image):
            with pytest.raises(ImageError, match="too large"):
                read(bomb)
    assert decoded == []


class _NoNetwork(OSError):
    pass


def test_nothing_but_model_download_touches_the_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[Any] = []

    def refuse(*args: Any, **_kw: Any) -> Any:
        attempts.append(args)
        raise _NoNetwork("network access blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: refuse(*a))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, *a: refuse(*a))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    weightsgen.register_tiny_model()
    weights = weightsgen.write_meta_checkpoint(tmp_path / "tiny.pth", weightsgen.TINY)
    photos = tmp_path / "p"
    for i in range(6):
        imagegen.save_jpeg(photos / f"{i}.jpg", seed=i % 3, size=(96, 72))
    base = ["--library", str(tmp_path / "lib"), "--model", weightsgen.TINY]
    with_w = [*base, "--weights", str(weights)]
    for args in (
        [*with_w, "scan", str(photos), "--json"],
        [*with_w, "status", "--json"],
        [*with_w, "list", "--json"],
        [*with_w, "search", str(photos / "0.jpg"), "--json"],
        [*with_w, "duplicates", "--method", "dino", "--json"],
        [*with_w, "duplicates", "--method", "phash", "--json"],
        [*with_w, "cluster", "--k", "2", "--json"],
        [*with_w, "model", "status", "--json"],
        [*with_w, "overlay", str(photos / "0.jpg"), str(tmp_path / "o.png")],
    ):
        code = main(args)
        _out, err = capsys.readouterr()
        assert code == 0, (args, err)
        assert "Traceback" not in err
    assert attempts == []
    # The explicit download is the one thing that reaches out; offline, it says so.
    code = main(["--library", str(tmp_path / "lib2"), "model", "download"])
    err = capsys.readouterr().err
    assert code != 0 and attempts, "model download never tried the network"
    assert "Traceback" not in err and err.strip()


# What may be formatted into SQL text: ints, and fragments that are made of ints and
# literal SQL only. Everything else is a bound parameter.
_SQL_FRAGMENTS = {
    "marks",  # the scanner's IN list: "?" placeholders only (the values are bound)
    "sql",  # a search scope (core/search.py Scope.sql): literal SQL, values bound
    "where",  # the same scope inside server_search
    "table",  # revision 0003's frozen list of table names
}
_SQL_FRAGMENT_CALLS = {
    "int",
    "_cast",  # server_search: the halfvec cast of an int dimension
    "index_name",  # server_search: an index name from an int model id
}


def _safe_in_sql(value: ast.expr) -> bool:
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return value.func.id in _SQL_FRAGMENT_CALLS
    if isinstance(value, ast.Name):  # a fragment above, or a module constant
        return value.id in _SQL_FRAGMENTS or value.id.isupper()
    return False


def test_sql_is_built_with_bound_parameters_only() -> None:
    """No SQL text is assembled from values: an f-string given to execute() or
    text() formats only ints and literal fragments; concatenation and str.format
    are not used at all."""
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = ast.unparse(node.func)
            if not (
                func.endswith(("exec_driver_sql", ".execute", "executescript"))
                or func in ("text", "sqlalchemy.text", "sa.text")
            ):
                continue
            first = node.args[0]
            where = f"{path}:{node.lineno}: {ast.unparse(first)}"
            assert not isinstance(first, ast.BinOp), where
            assert not (
                isinstance(first, ast.Call) and ast.unparse(first.func).endswith(".format")
            ), where
            if isinstance(first, ast.JoinedStr):
                for part in first.values:
                    if isinstance(part, ast.FormattedValue):
                        assert _safe_in_sql(part.value), where


def test_the_sql_check_catches_a_formatted_value() -> None:
    """The rule above fails on what it is there to catch."""
    bad = ast.parse("f'SELECT * FROM images WHERE relpath = {name}'", mode="eval").body
    good = ast.parse("f'SET x = {int(n)} LIMIT {TOP}'", mode="eval").body
    assert isinstance(bad, ast.JoinedStr) and isinstance(good, ast.JoinedStr)
    assert not all(_safe_in_sql(p.value) for p in bad.values if isinstance(p, ast.FormattedValue))
    assert all(_safe_in_sql(p.value) for p in good.values if isinstance(p, ast.FormattedValue))


def test_sql_like_names_are_only_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "x'; DROP TABLE images; --"
    imagegen.save_jpeg(root / "a' OR '1'='1.jpg", seed=1, size=(64, 48))
    imagegen.save_jpeg(root / 'b"); DELETE FROM folders; --.jpg', seed=2, size=(64, 48))
    lib = str(tmp_path / "lib")
    assert main(["--library", lib, "scan", str(root), "--no-embed", "--json"]) == 0
    capsys.readouterr()
    assert main(["--library", lib, "list", "--json"]) == 0
    paths = sorted(os.path.basename(it["path"]) for it in json.loads(capsys.readouterr().out))
    assert paths == ["a' OR '1'='1.jpg", 'b"); DELETE FROM folders; --.jpg']
