"""The catalog's path questions: which registered folder holds a path, and what is inside."""

from __future__ import annotations

import os
from pathlib import Path

from dino_desktop.core import catalog
from dino_desktop.core.catalog import Owner
from dino_desktop.core.db import open_engine, session_factory

SEP = os.sep
A = f"{SEP}photos"
NESTED = f"{SEP}photos{SEP}2024"
SIBLING = f"{SEP}photos-old"
FOLDERS = [(1, A), (2, NESTED), (3, SIBLING)]


def test_owner_is_the_innermost_folder_holding_the_path() -> None:
    assert catalog.owner_of(f"{NESTED}{SEP}a.jpg", FOLDERS) == Owner(2, NESTED, "a.jpg")
    assert catalog.owner_of(f"{A}{SEP}x{SEP}b.jpg", FOLDERS) == Owner(1, A, f"x{SEP}b.jpg")
    # In any order of the folders.
    assert catalog.owner_of(f"{NESTED}{SEP}a.jpg", FOLDERS[::-1]) == Owner(2, NESTED, "a.jpg")


def test_a_folder_owns_itself_but_not_a_sibling_with_the_same_prefix() -> None:
    assert catalog.owner_of(A, FOLDERS) == Owner(1, A, "")
    assert catalog.owner_of(f"{SIBLING}{SEP}c.jpg", FOLDERS) == Owner(3, SIBLING, "c.jpg")
    assert catalog.owner_of(f"{SEP}photo.jpg", FOLDERS) is None
    assert catalog.owner_of(f"{SEP}elsewhere{SEP}d.jpg", FOLDERS) is None


def test_the_root_folder_holds_everything() -> None:
    assert catalog.owner_of(f"{SEP}x{SEP}e.jpg", [(9, SEP)]) == Owner(9, SEP, f"x{SEP}e.jpg")


def test_is_inside_means_strictly_below() -> None:
    assert catalog.is_inside(f"{A}{SEP}a.jpg", A)
    assert catalog.is_inside(f"{A}{SEP}a.jpg", A + SEP)
    assert not catalog.is_inside(A, A)
    assert not catalog.is_inside(f"{SIBLING}{SEP}a.jpg", A)


def test_scan_targets_rescan_the_holding_folder_or_add_the_new_one(tmp_path: Path) -> None:
    root = (tmp_path / "lib").resolve()
    inner = root / "cats"
    outside = (tmp_path / "outside").resolve()
    for d in (inner, outside):
        d.mkdir(parents=True)
    engine = open_engine(tmp_path / "db.sqlite3")
    sessions = session_factory(engine)
    catalog.add_folder(sessions, root, reference=False)
    got = catalog.scan_targets(sessions, [inner, outside, root])
    engine.dispose()
    assert got == [str(root), str(outside)]
