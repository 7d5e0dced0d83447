"""Duplicate finding on generated photos scanned into a real library.

The photo distances the constructions rely on were measured on `imagegen`
pictures (phash bits to the original): resized, recompressed and EXIF-rotated
copies 0; seed 105 with a white rectangle 6 ("edited"); seed 109 cropped to a
wider aspect 6; seed 107 shifted by (4, 2) px 2; seed 106 brightened 2.
Distinct seeds sit 20+ bits apart.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import imagegen
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance

from dino_desktop.core import dupe_pairs as pairs
from dino_desktop.core import duplicates as dup
from dino_desktop.core.duplicates import Group, find_duplicates
from dino_desktop.core.keeper import KeeperRules
from dino_desktop.core.library import Library
from dino_desktop.core.progress import Cancelled, CancelToken, Progress, drive

T0 = datetime(2023, 5, 1, 12, 0, 0)
DISTINCT = range(120, 126)


def _touch(path: Path, age_s: int) -> None:
    """Make a file `age_s` seconds old, so "the oldest" rule has a known answer."""
    t = 1_700_000_000 - age_s
    os.utime(path, (t, t))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folders `photos` and `backup` with every construction of the module docstring."""
    root = tmp_path_factory.mktemp("corpus")
    photos, backup = root / "photos", root / "backup"

    a = imagegen.save_jpeg(photos / "a.jpg", seed=100, taken_at=T0, make="Cam", model="X")
    _touch(a, 1000)
    backup.mkdir()
    shutil.copyfile(a, backup / "a.jpg")  # byte copy, newer

    b = imagegen.photo(640, 480, 101)
    imagegen.save_jpeg(photos / "b.jpg", b)
    imagegen.save_jpeg(photos / "b_half.jpg", b.resize((320, 240), Image.Resampling.LANCZOS))

    imagegen.save_jpeg(photos / "c.jpg", seed=102, size=(640, 480), quality=92)
    imagegen.save_jpeg(photos / "c_q60.jpg", seed=102, size=(640, 480), quality=60)

    imagegen.oriented_pair(photos, 6, seed=103, size=(320, 240))

    d = imagegen.photo(640, 480, 104)
    imagegen.save_as(photos / "d.png", "PNG", d)
    imagegen.save_jpeg(photos / "d_small.jpg", d.resize((480, 360), Image.Resampling.LANCZOS))
    imagegen.save_jpeg(photos / "d_same.jpg", d)

    e = imagegen.photo(640, 480, 105)
    imagegen.save_jpeg(photos / "e.jpg", e)
    edited = e.copy()
    ImageDraw.Draw(edited).rectangle((40, 40, 260, 200), fill=(250, 250, 250))
    imagegen.save_jpeg(photos / "e_edit.jpg", edited)

    f = imagegen.photo(640, 480, 109)
    imagegen.save_jpeg(photos / "f.jpg", f)
    imagegen.save_jpeg(photos / "f_crop.jpg", f.crop((48, 0, 640, 480)))

    g = imagegen.photo(640, 480, 107)
    imagegen.save_jpeg(photos / "g1.jpg", g, taken_at=T0 + timedelta(hours=1))
    imagegen.save_jpeg(
        photos / "g2.jpg",
        g.rotate(0, translate=(4, 2)),
        taken_at=T0 + timedelta(hours=1, seconds=1),
    )

    k = imagegen.photo(640, 480, 106)
    imagegen.save_jpeg(photos / "k.jpg", k)
    imagegen.save_jpeg(photos / "k_bright.jpg", ImageEnhance.Brightness(k).enhance(1.3))

    for s in DISTINCT:
        imagegen.save_jpeg(photos / f"distinct{s}.jpg", seed=s)

    # One file, several paths: never a duplicate of itself.
    hard = imagegen.save_jpeg(photos / "hard.jpg", seed=130)
    os.link(hard, photos / "hard_link.jpg")
    imagegen.save_jpeg(photos / "sym.jpg", seed=131)
    (photos / "sym_alias.jpg").symlink_to(photos / "sym.jpg")
    return root


def _scan(tmp_path: Path, folders: list[Path], reference: list[Path] = ()) -> Library:  # type: ignore[assignment]
    lib = Library(tmp_path / "lib")
    drive(lib.scan([str(f) for f in folders], embed=False))
    if reference:
        drive(lib.scan([str(f) for f in reference], reference=True, embed=False))
    return lib


def _copy_corpus(corpus: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "corpus"
    shutil.copytree(corpus, dest, symlinks=True, copy_function=shutil.copy2)
    # copytree copies hard links as two files: link them again.
    (dest / "photos" / "hard_link.jpg").unlink()
    os.link(dest / "photos" / "hard.jpg", dest / "photos" / "hard_link.jpg")
    (dest / "photos" / "sym_alias.jpg").unlink()
    (dest / "photos" / "sym_alias.jpg").symlink_to(dest / "photos" / "sym.jpg")
    return dest


@pytest.fixture(scope="module")
def scanned(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Library, Path]:
    lib = Library(tmp_path_factory.mktemp("lib"))
    drive(lib.scan([str(corpus / "photos"), str(corpus / "backup")], embed=False))
    return lib, corpus


def _names(group: Group, root: Path) -> frozenset[str]:
    return frozenset(os.path.relpath(m.path, root) for m in group.members)


def _by_name(groups: list[Group], root: Path) -> dict[str, dup.Member]:
    return {os.path.relpath(m.path, root): m for g in groups for m in g.members}


# ---- exact ----------------------------------------------------------------------


def test_exact_groups_only_byte_copies(scanned: tuple[Library, Path]) -> None:
    lib, root = scanned
    groups = drive(lib.duplicates("exact"))
    assert [_names(g, root) for g in groups] == [frozenset({"photos/a.jpg", "backup/a.jpg"})]
    (group,) = groups
    assert os.path.relpath(group.keeper.path, root) == "photos/a.jpg"  # the older file
    assert [m.relation for m in group.others] == ["identical"]
    assert group.keeper.relation == "keeper" and group.keeper.score == 1.0
    assert group.reclaimable == os.path.getsize(root / "backup" / "a.jpg")
    assert group.members[0] == group.keeper


# ---- phash ----------------------------------------------------------------------

EXPECTED_PHASH = {
    frozenset({"photos/a.jpg", "backup/a.jpg"}),
    frozenset({"photos/b.jpg", "photos/b_half.jpg"}),
    frozenset({"photos/c.jpg", "photos/c_q60.jpg"}),
    frozenset({"photos/upright-6-103.jpg", "photos/oriented-6-103.jpg"}),
    frozenset({"photos/d.png", "photos/d_small.jpg", "photos/d_same.jpg"}),
    frozenset({"photos/e.jpg", "photos/e_edit.jpg"}),
    frozenset({"photos/f.jpg", "photos/f_crop.jpg"}),
    frozenset({"photos/g1.jpg", "photos/g2.jpg"}),
    frozenset({"photos/k.jpg", "photos/k_bright.jpg"}),
}


def test_phash_groups_match_the_construction(scanned: tuple[Library, Path]) -> None:
    lib, root = scanned
    groups = drive(lib.duplicates("phash"))
    assert {_names(g, root) for g in groups} == EXPECTED_PHASH
    grouped = {n for g in groups for n in _names(g, root)}
    # Distinct photos, hard links and symlinked paths are offered nowhere.
    for name in ("hard.jpg", "hard_link.jpg", "sym.jpg", "sym_alias.jpg"):
        assert f"photos/{name}" not in grouped
    assert not any(f"photos/distinct{s}.jpg" in grouped for s in DISTINCT)
    assert [g.reclaimable for g in groups] == sorted((g.reclaimable for g in groups), reverse=True)
    for g in groups:
        assert all(0.0 < m.score <= 1.0 for m in g.members)
        assert g.reclaimable == sum(m.size for m in g.others)


def test_phash_relations_and_keepers(scanned: tuple[Library, Path]) -> None:
    lib, root = scanned
    groups = drive(lib.duplicates("phash"))
    members = _by_name(groups, root)
    relation = {name: m.relation for name, m in members.items()}
    keepers = {os.path.relpath(g.keeper.path, root) for g in groups}
    assert relation["backup/a.jpg"] == "identical"
    assert relation["photos/b_half.jpg"] == "resized"
    assert relation["photos/c_q60.jpg"] == "re-encoded"
    # Pixels stored turned with an EXIF orientation tag display the same picture.
    assert {relation["photos/upright-6-103.jpg"], relation["photos/oriented-6-103.jpg"]} == {
        "keeper",
        "re-encoded",
    }
    assert relation["photos/d_small.jpg"] == "resized"
    assert relation["photos/d_same.jpg"] == "re-encoded"
    assert relation["photos/e_edit.jpg"] == "edited"
    assert relation["photos/f_crop.jpg"] == "cropped"
    # A burst has no original: either shot may keep; the other, 1 s apart, is a burst.
    assert {relation["photos/g1.jpg"], relation["photos/g2.jpg"]} == {"keeper", "burst"}
    # Originals keep: the PNG over JPEGs of it, most pixels, the older byte copy.
    assert {
        "photos/a.jpg",
        "photos/b.jpg",
        "photos/c.jpg",
        "photos/d.png",
        "photos/e.jpg",
        "photos/f.jpg",
    } <= keepers
    assert members["photos/c_q60.jpg"].score == 1.0  # 0 bits apart


def test_rotated_pixels_match_only_with_rotations(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    img = imagegen.photo(640, 480, 110)
    imagegen.save_jpeg(folder / "land.jpg", img)
    imagegen.save_jpeg(folder / "turned.jpg", img.transpose(Image.Transpose.ROTATE_90))
    imagegen.save_jpeg(folder / "mirror.jpg", img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    imagegen.save_jpeg(folder / "other.jpg", seed=111)
    lib = _scan(tmp_path, [folder])
    assert drive(lib.duplicates("phash")) == []
    reports: list[Progress] = []
    groups = drive(lib.duplicates("phash", rotations=True), reports.append)
    assert [_names(g, folder) for g in groups] == [
        frozenset({"land.jpg", "turned.jpg", "mirror.jpg"})
    ]
    relation = {os.path.basename(m.path): m.relation for m in groups[0].others}
    assert relation == {"turned.jpg": "rotated", "mirror.jpg": "mirrored"}
    assert all(m.transform for m in groups[0].others)
    assert os.path.basename(groups[0].keeper.path) == "land.jpg"  # the oldest of equals
    assert any("turned" in r.message for r in reports)


# ---- reference folders and the keeper policy -----------------------------------


def test_reference_member_is_keeper_and_never_a_candidate(corpus: Path, tmp_path: Path) -> None:
    root = _copy_corpus(corpus, tmp_path)
    lib = _scan(tmp_path, [root / "photos"], reference=[root / "backup"])
    groups = drive(lib.duplicates("exact"))
    (group,) = groups
    assert group.keeper.is_reference and group.keeper.path == str(root / "backup" / "a.jpg")
    assert [m.path for m in group.candidates] == [str(root / "photos" / "a.jpg")]

    # Rules that leave "reference" out still put it first: a rule list cannot make a
    # protected file a removal candidate.
    groups = drive(find_duplicates(lib.sessions, "exact", rules=KeeperRules(("shorter-path",))))
    (group,) = groups
    assert group.keeper.is_reference
    assert [m.path for m in group.candidates] == [str(root / "photos" / "a.jpg")]
    for g in drive(lib.duplicates("phash")):
        assert not any(m.is_reference for m in g.candidates)


def test_a_smaller_reference_keeper_is_warned_and_every_member_says_why(tmp_path: Path) -> None:
    img = imagegen.photo(800, 600, 140)
    imagegen.save_jpeg(tmp_path / "ref" / "x.jpg", img.resize((400, 300)))
    imagegen.save_jpeg(tmp_path / "photos" / "x.jpg", img)
    lib = _scan(tmp_path, [tmp_path / "photos"], reference=[tmp_path / "ref"])
    (group,) = drive(lib.duplicates("phash"))
    assert group.keeper.is_reference
    assert group.why == "kept: in a reference folder" == group.keeper.why
    assert group.warning and "400×300" in group.warning and "800×600" in group.warning
    (other,) = group.others
    assert other.why == "not kept; the keeper: in a reference folder"
    assert other.relation == "resized" and "800×600" in other.evidence
    # The dry run counts the group as warned (the dialog and `--dry-run --json` say so).
    plan = drive(lib.plan_removal([group]))
    assert plan.paths == (other.path,) and plan.warned == 1


def test_groups_only_in_reference_folders_are_dropped(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    imagegen.save_jpeg(ref / "x.jpg", seed=1)
    shutil.copyfile(ref / "x.jpg", ref / "x copy.jpg")
    lib = _scan(tmp_path, [], reference=[ref])
    assert drive(lib.duplicates("exact")) == []
    assert drive(lib.duplicates("phash")) == []


# ---- dino -----------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)
    return out


def _near(rng: np.random.Generator, v: np.ndarray, cosine: float) -> np.ndarray:
    """A unit vector at exactly `cosine` from unit vector v."""
    noise = rng.standard_normal(v.shape)
    noise -= noise.dot(v) * v
    return _unit(cosine * v + np.sqrt(1 - cosine**2) * _unit(noise))


@pytest.fixture
def twelve(tmp_path: Path) -> tuple[Library, list[int], list[str]]:
    folder = tmp_path / "photos"
    for s in range(12):
        imagegen.save_jpeg(folder / f"p{s:02}.jpg", seed=200 + s, size=(160, 120))
    lib = _scan(tmp_path, [folder])
    ids = sorted(r.id for r in lib.photos(sort="name"))
    paths = lib.paths_of(ids)
    return lib, ids, [paths[i] for i in ids]


def test_dino_groups_planted_pairs_and_upper_separates(
    twelve: tuple[Library, list[int], list[str]],
) -> None:
    lib, ids, paths = twelve
    rng = np.random.default_rng(0)
    vecs = _unit(rng.standard_normal((12, 384)))  # random: cosine ~0 ± 0.05
    vecs[1] = _near(rng, vecs[0], 0.97)
    vecs[3] = _near(rng, vecs[2], 0.97)
    vecs[5] = _near(rng, vecs[4], 0.995)
    # A chain: 6~7 and 7~8 at 0.96, but 6 and 8 only ~0.85 apart: still one group.
    vecs[7] = _near(rng, vecs[6], 0.96)
    vecs[8] = _near(rng, vecs[7], 0.96)
    assert float(vecs[6] @ vecs[8]) < 0.95
    vectors = (np.array(ids, dtype=np.int64), vecs)

    def groups(**kw: float) -> set[frozenset[int]]:
        found = drive(find_duplicates(lib.sessions, "dino", vectors=vectors, **kw))  # type: ignore[arg-type]
        return {frozenset(paths.index(m.path) for m in g.members) for g in found}

    assert groups() == {
        frozenset({0, 1}), frozenset({2, 3}), frozenset({4, 5}), frozenset({6, 7, 8})
    }  # fmt: skip
    assert groups(upper=0.99) == {frozenset({0, 1}), frozenset({2, 3}), frozenset({6, 7, 8})}
    assert groups(threshold=0.965) == {frozenset({0, 1}), frozenset({2, 3}), frozenset({4, 5})}
    assert groups(threshold=0.98) == {frozenset({4, 5})}

    found = drive(find_duplicates(lib.sessions, "dino", vectors=vectors))
    scores = {paths.index(m.path): (m.score, m.relation) for g in found for m in g.others}
    assert scores[1][0] == pytest.approx(0.97, abs=1e-4) or scores.get(0)
    relations = {paths.index(m.path): m.relation for g in found for m in g.members}
    # Distinct pictures grouped only by (planted) vectors: the pixels decide nothing.
    assert "similar" in (relations[0], relations[1])
    # A cosine says nothing about the pixels: 4 and 5 (0.995) are distinct pictures.
    assert {relations[4], relations[5]} == {"keeper", "similar"}


def test_dino_ignores_vectors_of_unknown_or_aliased_rows(
    twelve: tuple[Library, list[int], list[str]],
) -> None:
    lib, ids, _ = twelve
    rng = np.random.default_rng(1)
    vecs = _unit(rng.standard_normal((3, 64)))
    vecs[1] = vecs[0]
    # id 10**9 is not in the library: its twin vector must not make a group.
    vectors = (np.array([ids[0], 10**9, ids[1]], dtype=np.int64), vecs)
    assert drive(find_duplicates(lib.sessions, "dino", vectors=vectors)) == []


def test_approximate_dino_search_finds_planted_pairs() -> None:
    rng = np.random.default_rng(3)
    centres = _unit(rng.standard_normal((30, 64)))
    x = _unit(centres[rng.integers(0, 30, 6000)] + 0.6 * rng.standard_normal((6000, 64)) / 8)
    planted = [(i, i + 1) for i in range(0, 400, 2)]
    for i, j in planted:
        x[j] = _near(rng, x[i], float(rng.uniform(0.96, 0.99)))
    exact = drive(pairs.dino_pairs(x, 0.95))
    approx = drive(pairs.dino_pairs(x, 0.95, exact_limit=100))
    exact_set = set(zip(*(a.tolist() for a in exact), strict=True))
    approx_set = set(zip(*(a.tolist() for a in approx), strict=True))
    assert set(planted) <= exact_set
    assert approx_set <= exact_set  # nothing below the threshold, nothing twice
    assert len(set(planted) & approx_set) >= 0.95 * len(planted)
    assert all(i < j for i, j in approx_set)


# ---- building blocks ------------------------------------------------------------


def test_union_find_is_transitive() -> None:
    uf = dup._UnionFind(7)
    for a, b in [(0, 1), (2, 3), (1, 2), (5, 6)]:
        uf.union(a, b)
    assert sorted(sorted(c) for c in uf.components()) == [[0, 1, 2, 3], [5, 6]]


@pytest.mark.parametrize(("max_bits", "min_bits"), [(0, 0), (3, 0), (8, 0), (10, 0), (12, 2)])
def test_hamming_pairs_match_brute_force(max_bits: int, min_bits: int) -> None:
    rng = np.random.default_rng(max_bits)
    h = rng.integers(0, 2**64, 1500, dtype=np.uint64)
    for k in range(0, 400, 2):  # planted pairs at 0..14 bits
        flips = rng.choice(64, int(rng.integers(0, 15)), replace=False)
        h[k + 1] = h[k] ^ np.uint64(sum(1 << int(b) for b in flips))
    h[500:510] = h[499]  # a run of equal hashes
    i, j = drive(pairs.hamming_pairs(h, max_bits, min_bits))
    dist = pairs.popcount64((h[:, None] ^ h[None, :]).reshape(-1)).reshape(len(h), len(h))
    bi, bj = np.nonzero(np.triu((dist <= max_bits) & (dist >= min_bits), 1))
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == sorted(
        zip(bi.tolist(), bj.tolist(), strict=True)
    )


def test_phash_upper_keeps_identical_copies_apart(scanned: tuple[Library, Path]) -> None:
    lib, root = scanned
    # Similarity 1 - bits/64 <= 0.99 means at least 1 bit apart: 0-bit copies don't link.
    names = {_names(g, root) for g in drive(lib.duplicates("phash", upper=0.99))}
    assert frozenset({"photos/a.jpg", "backup/a.jpg"}) not in names
    assert frozenset({"photos/e.jpg", "photos/e_edit.jpg"}) in names


# ---- progress, cancel, arguments -------------------------------------------------


def test_progress_and_cancel(scanned: tuple[Library, Path]) -> None:
    lib, _ = scanned
    reports: list[Progress] = []
    drive(lib.duplicates("phash"), reports.append)
    assert reports and all(r.phase == "duplicates" for r in reports)
    assert all(r.total is None or 0 <= r.done <= r.total for r in reports)

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        drive(lib.duplicates("exact", cancel=token))

    token = CancelToken()
    job = lib.duplicates("phash", rotations=True, cancel=token)
    next(job)
    token.cancel()
    with pytest.raises(Cancelled):
        drive(job)


def test_bad_arguments_fail_at_the_call(scanned: tuple[Library, Path]) -> None:
    lib, _ = scanned
    with pytest.raises(ValueError, match="unknown duplicate method"):
        find_duplicates(lib.sessions, "md5")
    with pytest.raises(ValueError, match="phash threshold"):
        find_duplicates(lib.sessions, "phash", 40)
    with pytest.raises(ValueError, match="no threshold"):
        find_duplicates(lib.sessions, "exact", 3)
    with pytest.raises(ValueError, match="needs the photos' embeddings"):
        find_duplicates(lib.sessions, "dino")
    with pytest.raises(ValueError, match="rotations"):
        find_duplicates(lib.sessions, "exact", rotations=True)
    with pytest.raises(ValueError, match="upper"):
        find_duplicates(lib.sessions, "phash", upper=1.5)


# ---- acting on the result -------------------------------------------------------


def test_trash_every_candidate_then_undo_restores_bytes(corpus: Path, tmp_path: Path) -> None:
    root = _copy_corpus(corpus, tmp_path)
    lib = _scan(tmp_path, [root / "photos"], reference=[root / "backup"])
    before = {p: p.read_bytes() for p in root.rglob("*.*") if p.is_file()}
    groups = drive(lib.duplicates("phash"))
    doomed = [m.path for g in groups for m in g.candidates]
    assert doomed and not any(p.startswith(str(root / "backup")) for p in doomed)
    assert not {g.keeper.path for g in groups} & set(doomed)
    result = lib.trash(doomed)
    assert sorted(result.done) == sorted(doomed) and not result.failed
    assert not any(os.path.exists(p) for p in doomed)
    assert all(os.path.exists(g.keeper.path) for g in groups)
    undone = lib.undo()
    assert not undone.failed
    after = {p: p.read_bytes() for p in root.rglob("*.*") if p.is_file()}
    assert after == before
