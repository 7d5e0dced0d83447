"""Keeper rules in the user's order: every rule decides, `why` names it with figures."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

import pytest

from dino_desktop.core.keeper import DEFAULT_RULES, RULES, KeeperRules, parse_rules

T0 = datetime(2020, 5, 1, 12, 0, 0)


@dataclass(frozen=True)
class C:
    path: str
    size: int = 1000
    mtime_ns: int = 0
    width: int = 640
    height: int = 480
    format: str | None = "JPEG"
    taken_at: datetime | None = None
    camera: str | None = None
    is_reference: bool = False
    companions: tuple[str, ...] = ()
    gps: bool = False


def _rules(*order: str, **kw: object) -> KeeperRules:
    gps = {c.path for c in kw.pop("with_gps", ())}  # type: ignore[attr-defined]
    return KeeperRules(order=order or DEFAULT_RULES, gps_of=lambda p: p in gps, **kw)  # type: ignore[arg-type]


def keeper(rules: KeeperRules, *cands: C) -> str:
    return cands[rules.rank(cands)[0]].path


def test_each_rule_decides_between_two_photos_that_differ_only_there() -> None:
    pairs: dict[str, tuple[C, C]] = {
        "preferred": (C("/keep/x.jpg"), C("/other/x.jpg")),
        "raw": (C("/a/x.jpg", companions=("/a/x.CR3",)), C("/b/x.jpg")),
        "companions": (C("/a/x.jpg", companions=("/a/x.MOV",)), C("/b/x.jpg")),
        "pixels": (C("/a/x.jpg", width=4032, height=3024), C("/b/x.jpg", width=2016, height=1512)),
        "format": (C("/a/x.heic", format="HEIF"), C("/b/x.jpg")),
        "file-size": (C("/a/x.jpg", size=9000), C("/b/x.jpg", size=4000)),
        "metadata": (C("/a/x.jpg", taken_at=T0, camera="Cam"), C("/b/x.jpg")),
        "oldest": (C("/a/x.jpg", taken_at=T0), C("/b/x.jpg", taken_at=T0.replace(year=2021))),
        "newest": (C("/a/x.jpg", taken_at=T0.replace(year=2021)), C("/b/x.jpg", taken_at=T0)),
        "shorter-path": (C("/a/x.jpg"), C("/a/deeper/x.jpg")),
    }
    assert set(pairs) == set(RULES) - {"reference"}
    for rule, (good, bad) in pairs.items():
        rules = _rules(rule, preferred_folders=("/keep",))
        # Whatever the input order, the rule picks the same photo...
        assert keeper(rules, good, bad) == keeper(rules, bad, good) == good.path, rule
        # ...and says so, naming the rule's evidence.
        why = rules.why(good, bad, [good, bad])
        assert why and not why.startswith("same on every rule"), rule


def test_the_users_order_changes_the_keeper_and_the_reason() -> None:
    big_jpeg = C("/a/big.jpg", width=4032, height=3024, size=3_000_000)
    small_heic = C("/b/small.heic", width=2016, height=1512, size=900_000, format="HEIF")
    dated = C("/c/dated.jpg", width=2016, height=1512, size=800_000, taken_at=T0, camera="Cam")
    cands = (big_jpeg, small_heic, dated)
    expected = {
        "pixels": ("/a/big.jpg", "more pixels (4032×3024 vs 2016×1512)"),
        "format": ("/b/small.heic", "better format (HEIF over JPEG)"),
        "metadata": ("/c/dated.jpg", "more metadata"),
    }
    for first, (path, reason) in expected.items():
        rest = [r for r in ("pixels", "format", "metadata") if r != first]
        for order in itertools.permutations(rest):
            rules = _rules(first, *order)
            assert keeper(rules, *cands) == path, (first, order)
            won = next(c for c in cands if c.path == path)
            runner = next(c for c in cands if c.path != path)
            assert rules.why(won, runner, cands).startswith(reason)


def test_reference_is_always_first_and_warned_when_smaller() -> None:
    ref = C("/ref/x.jpg", width=1024, height=768, is_reference=True)
    big = C("/photos/x.jpg", width=4032, height=3024)
    for order in (("pixels",), ("shorter-path", "pixels"), ("pixels", "reference")):
        rules = _rules(*order)
        assert rules.order[0] == "reference"
        assert keeper(rules, big, ref) == "/ref/x.jpg"
    rules = _rules()
    assert rules.why(ref, big, [ref, big]) == "in a reference folder"
    warning = rules.warning(ref, [big])
    assert warning and "1024×768" in warning and "4032×3024" in warning
    assert rules.warning(big, [ref]) is None  # not a reference keeper: nothing to warn of
    # As many pixels, but a recompressed (much smaller) reference file: warned too.
    same = C("/photos/y.jpg", width=1024, height=768, size=5000)
    assert "smaller file" in (rules.warning(ref, [same]) or "")


def test_gps_is_read_only_for_members_still_tied() -> None:
    asked: list[str] = []

    def gps(path: str) -> bool:
        asked.append(path)
        return path == "/b/gps.jpg"

    big = C("/a/big.jpg", width=4000, height=3000)
    tied_a = C("/b/gps.jpg")
    tied_b = C("/b/nogps.jpg")
    rules = KeeperRules(order=("metadata",), gps_of=gps)
    assert keeper(rules, tied_a, tied_b) == "/b/gps.jpg"
    asked.clear()
    assert keeper(KeeperRules(order=("pixels", "metadata"), gps_of=gps), big, tied_a) == big.path
    assert asked == []  # pixels decided: no file was opened


def test_format_order_is_editable_and_aliases_are_understood() -> None:
    png = C("/a/x.png", format="PNG")
    jpeg = C("/b/x.jpg", format="JPEG")
    assert keeper(_rules("format"), png, jpeg) == png.path
    assert keeper(_rules("format", format_order=("jpg", "png")), png, jpeg) == jpeg.path
    raw = C("/c/x.dng", format="DNG")
    assert keeper(_rules("format", format_order=("jpg",)), jpeg, raw) == raw.path


def test_parse_rules_checks_words() -> None:
    assert parse_rules("pixels, format") == ("reference", "pixels", "format")
    assert parse_rules(["format", "format"]) == ("reference", "format")
    with pytest.raises(ValueError, match=r"unknown keeper rule.*pixel"):
        parse_rules("pixel")
    with pytest.raises(ValueError, match="oldest and newest"):
        parse_rules("oldest,newest")
