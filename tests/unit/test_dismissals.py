"""'Not duplicates' and 'keep all' answers: remembered across rescans, void when a file changes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from dino_desktop.core.dismissals import Dismissed
from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import LibraryError
from tests import imagegen


def _groups(lib: Library, **kw: object) -> list[frozenset[str]]:
    found = drive(lib.duplicates("phash", **kw))  # type: ignore[arg-type]
    return [frozenset(os.path.basename(m.path) for m in g.members) for g in found]


@pytest.fixture
def library(tmp_path: Path) -> tuple[Library, Path]:
    folder = tmp_path / "photos"
    img = imagegen.photo(640, 480, 300)
    imagegen.save_jpeg(folder / "a.jpg", img)
    shutil.copyfile(folder / "a.jpg", folder / "a copy.jpg")
    imagegen.save_jpeg(folder / "a small.jpg", img.resize((320, 240), Image.Resampling.LANCZOS))
    imagegen.save_jpeg(folder / "b.jpg", seed=301)
    shutil.copyfile(folder / "b.jpg", folder / "b copy.jpg")
    lib = Library(tmp_path / "lib")
    drive(lib.scan([str(folder)], embed=False))
    return lib, folder


def _ids(lib: Library, folder: Path, *names: str) -> list[int]:
    out = []
    for n in names:
        found = lib.find_image(folder / n)
        assert found is not None, n
        out.append(found[0])
    return out


A = frozenset({"a.jpg", "a copy.jpg", "a small.jpg"})
B = frozenset({"b.jpg", "b copy.jpg"})


def test_a_dismissed_group_stays_dismissed_across_rescans_and_undo_brings_it_back(
    library: tuple[Library, Path],
) -> None:
    lib, folder = library
    assert sorted(_groups(lib), key=len) == [B, A]
    answer = lib.dismiss(_ids(lib, folder, *B))
    assert _groups(lib) == [A]
    drive(lib.scan(embed=False))  # a rescan changes nothing
    assert _groups(lib) == [A]
    # Asked for, it is listed, marked.
    found = drive(lib.duplicates("phash", include_dismissed=True))
    shown = {frozenset(os.path.basename(m.path) for m in g.members): g for g in found}
    assert shown[B].dismissed and shown[B].candidates == [] and shown[B].reclaimable == 0
    assert not shown[A].dismissed
    assert found[-1].dismissed  # dismissed groups last
    assert lib.undismiss() == answer
    assert sorted(_groups(lib), key=len) == [B, A]
    with pytest.raises(LibraryError, match="already undone"):
        lib.undismiss(answer)


def test_keep_all_is_remembered_the_same_way_and_listed(library: tuple[Library, Path]) -> None:
    lib, folder = library
    lib.dismiss(_ids(lib, folder, *A), keep_all=True)
    assert _groups(lib) == [B]
    (answer,) = lib.dismissals()
    assert answer.kind == "keep-all" and answer.valid
    assert {os.path.basename(p) for p in answer.paths} == A


def test_a_changed_file_makes_the_group_come_back(library: tuple[Library, Path]) -> None:
    lib, folder = library
    lib.dismiss(_ids(lib, folder, *B))
    assert _groups(lib) == [A]
    # The copy is replaced by another (near-identical) picture: a new question.
    imagegen.save_jpeg(folder / "b copy.jpg", Image.open(folder / "b.jpg"), quality=70)
    drive(lib.scan(embed=False))
    assert B in _groups(lib)
    assert not lib.dismissals()[0].valid


def test_a_rename_keeps_the_answer(library: tuple[Library, Path]) -> None:
    lib, folder = library
    lib.dismiss(_ids(lib, folder, *B))
    os.rename(folder / "b copy.jpg", folder / "b renamed.jpg")
    drive(lib.scan(embed=False))
    assert _groups(lib) == [A]


def test_a_new_copy_joining_a_dismissed_group_brings_it_back(
    library: tuple[Library, Path],
) -> None:
    lib, folder = library
    lib.dismiss(_ids(lib, folder, *B))
    shutil.copyfile(folder / "b.jpg", folder / "b third.jpg")
    drive(lib.scan(embed=False))
    assert B | {"b third.jpg"} in _groups(lib)


def test_one_member_taken_out_of_a_group(library: tuple[Library, Path]) -> None:
    lib, folder = library
    ids = _ids(lib, folder, *sorted(A))
    small = _ids(lib, folder, "a small.jpg")[0]
    lib.dismiss(ids, member=small)
    assert A - {"a small.jpg"} in _groups(lib)
    found = drive(lib.duplicates("phash", include_dismissed=True))
    (group,) = [g for g in found if any(m.image_id == small for m in g.members)]
    (out,) = [m for m in group.others if m.image_id == small]
    assert out.dismissed and out not in group.candidates
    assert not group.dismissed


def test_bad_answers_are_refused(library: tuple[Library, Path]) -> None:
    lib, folder = library
    (one,) = _ids(lib, folder, "a.jpg")
    with pytest.raises(LibraryError, match="at least two"):
        lib.dismiss([one])
    with pytest.raises(LibraryError, match="one of the group"):
        lib.dismiss(_ids(lib, folder, *B), member=one)
    with pytest.raises(LibraryError, match="not in the library"):
        lib.dismiss([one, 999_999])
    with pytest.raises(LibraryError, match="no duplicate answer"):
        lib.undismiss()


def test_filter_removes_members_until_stable() -> None:
    # 1-2 and 1-3 answered, 2-3 not: 1 goes, 2 and 3 stay a group.
    d = Dismissed({10: {1, 2}, 11: {1, 3}}, {})
    assert d.filter([1, 2, 3]) == ([2, 3], [1])
    # Every pair answered: nothing stays.
    d = Dismissed({10: {1, 2, 3}}, {})
    kept, gone = d.filter([1, 2, 3])
    assert kept == [] and sorted(gone) == [1, 2, 3]
    # A member answer covers only its subject's pairs.
    d = Dismissed({10: {1, 2, 3}}, {10: 3})
    assert d.filter([1, 2, 3]) == ([1, 2], [3])
    assert not d.covers(1, 2) and d.covers(2, 3)
