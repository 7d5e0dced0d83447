"""xmp_merge: metadata only the duplicate copies have goes into the keeper's XMP sidecar.

Every file is made in tmp_path. What is written is read back by a standard XMP
parser (exiv2, through python-exiv2) as well as by `read_metadata`. The system
trash is the one under tmp_path (tests/conftest.py points XDG_DATA_HOME and
HOME there).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import exiv2
import imagegen
import pytest
import rawgen
from PIL import Image

from dino_desktop.core import trash
from dino_desktop.core.records import FileOpError
from dino_desktop.core.xmp_merge import (
    MergeError,
    MergePlan,
    apply_merge,
    plan_merge,
    read_metadata,
    undo_merge,
)

freedesktop_only = pytest.mark.skipif(
    sys.platform in ("darwin", "win32"), reason="exercises the freedesktop.org trash"
)

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_TOUR_EIFFEL = (48.8582, 2.2945)  # 48°51'29.52"N 2°17'40.2"E

_RDF = 'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'


def _xmp(body: str, attrs: str = "", ns: str = "") -> str:
    """A sidecar: one rdf:Description with these attributes, namespaces and content."""
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f" <rdf:RDF {_RDF}>\n"
        f'  <rdf:Description rdf:about=""\n    {ns}\n    {attrs}>\n'
        f"{body}"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
    )


_NS_XMP_DC = 'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"'


def _keywords(*words: str) -> str:
    items = "".join(f"     <rdf:li>{w}</rdf:li>\n" for w in words)
    return f"   <dc:subject>\n    <rdf:Bag>\n{items}    </rdf:Bag>\n   </dc:subject>\n"


# darktable's sidecar of a JPEG: its own namespace, an edit history, a tag.
_DARKTABLE = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmp:Rating="2"
    xmpMM:DerivedFrom="IMG_1.JPG"
    darktable:xmp_version="5"
    darktable:history_end="1">
   <darktable:history>
    <rdf:Seq>
     <rdf:li
      darktable:num="0"
      darktable:operation="exposure"
      darktable:enabled="1"
      darktable:params="0000000000000040"/>
    </rdf:Seq>
   </darktable:history>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>darktable|format|jpg</rdf:li>
     <rdf:li>Beach</rdf:li>
    </rdf:Bag>
   </dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_with_exif(
    path: Path,
    *,
    taken: str = "2021:06:01 12:00:03",
    gps: tuple[float, float] | None = _TOUR_EIFFEL,
    make: str = "Canon",
    model: str = "Canon EOS R5",
) -> Path:
    """A JPEG with EXIF DateTimeOriginal, GPS (as degrees, minutes, seconds) and camera."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    exif.get_ifd(_EXIF_IFD)[0x9003] = taken
    if gps is not None:
        lat, lon = gps
        exif.get_ifd(_GPS_IFD).update(
            {1: "N", 2: _dms(lat), 3: "E", 4: _dms(lon), 5: b"\x00", 6: 35.0}
        )
    imagegen.photo(64, 48, seed=1).save(path, "JPEG", exif=exif.tobytes())
    return path


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return float(degrees), float(minutes), round((value - degrees - minutes / 60) * 3600, 4)


def _exiv2(path: Path, *keys: str) -> dict[str, str | None]:
    """What exiv2 reads from an XMP file: key → value as text (None when absent)."""
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    found = {datum.key(): datum.toString() for datum in image.xmpData()}
    return {key: found.get(key) for key in keys}


# What exiv2 reads from the sidecar written from `copy` (the fixture) into a bare keeper.
_WRITTEN = {
    "Xmp.exif.GPSLatitude": "48,51.492000N",
    "Xmp.exif.GPSLongitude": "2,17.670000E",
    "Xmp.exif.DateTimeOriginal": "2021-06-01T12:00:03",
    "Xmp.tiff.Make": "Canon",
    "Xmp.tiff.Model": "Canon EOS R5",
    "Xmp.dc.subject": "beach, family",
    "Xmp.xmp.Rating": "4",
}


@pytest.fixture
def keeper(tmp_path: Path) -> Path:
    """A JPEG without any EXIF."""
    path = tmp_path / "p" / "IMG_1.JPG"
    path.parent.mkdir()
    imagegen.photo(64, 48, seed=1).save(path, "JPEG", quality=92)
    return path


@pytest.fixture
def copy(tmp_path: Path) -> tuple[str, list[str]]:
    """A copy with EXIF date, GPS and camera, and a sidecar with keywords and a rating."""
    path = _copy_with_exif(tmp_path / "copy.jpg")
    sidecar = tmp_path / "copy.jpg.xmp"
    sidecar.write_text(_xmp(_keywords("family", "beach"), 'xmp:Rating="4"', _NS_XMP_DC))
    return str(path), [str(sidecar)]


def _plan(
    keeper: Path, copies: Sequence[tuple[str, Sequence[str]]], own: Sequence[Path] = ()
) -> MergePlan:
    plan = plan_merge(str(keeper), [str(p) for p in own], copies)
    assert plan is not None
    return plan


# ---- planning and writing a new sidecar ---------------------------------------------


def test_plan_lists_exactly_what_the_keeper_lacks_and_apply_writes_its_sidecar(
    keeper: Path, copy: tuple[str, list[str]]
) -> None:
    before = _sha(keeper)
    plan = _plan(keeper, [copy])
    source = copy[0]

    assert set(plan.adds) == {"taken_at", "gps", "altitude", "make", "model", "keywords", "rating"}
    assert plan.adds["taken_at"] == datetime(2021, 6, 1, 12, 0, 3)
    gps = plan.adds["gps"]
    assert isinstance(gps, tuple)
    lat, lon = gps
    assert lat == pytest.approx(_TOUR_EIFFEL[0], abs=1e-6)
    assert lon == pytest.approx(_TOUR_EIFFEL[1], abs=1e-6)
    assert plan.adds["make"] == "Canon" and plan.adds["model"] == "Canon EOS R5"
    assert plan.adds["keywords"] == ("beach", "family")
    assert plan.adds["rating"] == 4
    assert set(plan.sources.values()) == {source}
    assert plan.sidecar == str(keeper) + ".xmp" and not plan.exists
    assert plan.lines() == [
        f"date taken 2021-06-01 12:00:03 (from {source})",
        f"GPS 48.85820, 2.29450, 35 m (from {source})",
        f"camera make Canon (from {source})",
        f"camera model Canon EOS R5 (from {source})",
        f"keywords +beach, +family (from {source})",
        f"rating 4 (from {source})",
    ]

    record = apply_merge(plan)

    sidecar = Path(str(keeper) + ".xmp")
    assert sidecar.is_file()
    assert _sha(keeper) == before  # the keeper's own bytes are never touched
    assert record["sidecar"] == str(sidecar) and record["created"] is True
    assert record["before"] is None
    assert record["after_sha256"] == _sha(sidecar)
    assert json.loads(json.dumps(record)) == record  # it goes into the journal


def test_the_written_sidecar_is_standard_xmp_and_reads_back(
    keeper: Path, copy: tuple[str, list[str]]
) -> None:
    apply_merge(_plan(keeper, [copy]))
    sidecar = Path(str(keeper) + ".xmp")

    assert _exiv2(sidecar, *_WRITTEN) == _WRITTEN

    merged = read_metadata(str(keeper), [str(sidecar)])
    assert merged.taken_at == datetime(2021, 6, 1, 12, 0, 3)
    assert merged.gps == pytest.approx(_TOUR_EIFFEL, abs=1e-6)
    assert merged.altitude == pytest.approx(35.0)
    assert (merged.make, merged.model) == ("Canon", "Canon EOS R5")
    assert merged.keywords == ("beach", "family")
    assert merged.rating == 4
    # Nothing left to carry: a second plan is empty.
    assert plan_merge(str(keeper), [str(sidecar)], [copy]) is None


def test_read_metadata_reads_exif_and_sidecars_sidecar_first(tmp_path: Path) -> None:
    photo = _copy_with_exif(tmp_path / "a.jpg", make="Nikon", model="D750")
    sidecar = tmp_path / "a.jpg.xmp"
    sidecar.write_text(
        _xmp(
            "   <tiff:Model>D750 (edited)</tiff:Model>\n",
            'xmp:Label="Red" exif:DateTimeOriginal="2020-01-02T03:04:05.5+02:00"',
            'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
            ' xmlns:exif="http://ns.adobe.com/exif/1.0/"',
        )
    )

    alone = read_metadata(str(photo))
    assert (alone.make, alone.model, alone.label) == ("Nikon", "D750", None)
    assert alone.taken_at == datetime(2021, 6, 1, 12, 0, 3)

    meta = read_metadata(str(photo), [str(sidecar)])
    assert meta.model == "D750 (edited)" and meta.make == "Nikon"
    assert meta.label == "Red"
    assert (
        meta.taken_at is not None
        and meta.taken_at.isoformat() == "2020-01-02T03:04:05.500000+02:00"
    )


def test_read_metadata_never_raises(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff not really a jpeg")
    bad_sidecar = tmp_path / "junk.jpg.xmp"
    bad_sidecar.write_text("<x:xmpmeta><unclosed>")
    for path, sidecars in (
        (junk, [bad_sidecar]),
        (tmp_path / "missing.jpg", [tmp_path / "missing.jpg.xmp"]),
        (tmp_path, []),
    ):
        meta = read_metadata(str(path), [str(s) for s in sidecars])
        assert meta.taken_at is None and meta.keywords == () and meta.gps is None


def test_embedded_xmp_counts_as_the_photos_own(keeper: Path, tmp_path: Path) -> None:
    packet = _xmp(_keywords("beach"), 'xmp:Rating="5" xmp:Label="Green"', _NS_XMP_DC)
    photo = tmp_path / "embedded.jpg"
    imagegen.photo(64, 48, seed=2).save(photo, "JPEG", xmp=packet.encode())

    meta = read_metadata(str(photo))
    assert (meta.keywords, meta.rating, meta.label) == (("beach",), 5, "Green")


# ---- never changing what the keeper has -----------------------------------------


def test_the_keepers_own_values_are_never_replaced(tmp_path: Path) -> None:
    keeper = imagegen.save_jpeg(
        tmp_path / "k" / "IMG_2.JPG", taken_at=datetime(2019, 5, 5, 10, 0, 0), make="Sony"
    )
    own = tmp_path / "k" / "IMG_2.JPG.xmp"
    own.write_text(_xmp(_keywords("Beach"), 'xmp:Rating="3"', _NS_XMP_DC))
    copy = _copy_with_exif(tmp_path / "c.jpg", taken="2021:06:01 12:00:03", make="Canon")
    copy_xmp = tmp_path / "c.jpg.xmp"
    copy_xmp.write_text(_xmp(_keywords("beach", "dog"), 'xmp:Rating="5"', _NS_XMP_DC))

    plan = _plan(keeper, [(str(copy), [str(copy_xmp)])], [own])

    assert "taken_at" not in plan.adds and "make" not in plan.adds and "rating" not in plan.adds
    assert plan.adds["keywords"] == ("dog",)  # "beach" is the keeper's "Beach"
    assert plan.adds["model"] == "Canon EOS R5"
    assert plan.sidecar == str(own) and plan.exists


def test_a_raw_keepers_own_exif_counts(tmp_path: Path) -> None:
    keeper = rawgen.write_dng(
        tmp_path / "IMG_3.DNG",
        32,
        24,
        taken_at=datetime(2018, 1, 2, 3, 4, 5),
        camera=("Leica", "M11"),
    )
    copy = _copy_with_exif(tmp_path / "IMG_3.jpg")

    plan = _plan(keeper, [(str(copy), [])])

    assert set(plan.adds) == {"gps", "altitude"}
    assert plan.sidecar == str(keeper) + ".xmp"


def test_a_raw_keepers_gps_is_read_from_its_gps_ifd(tmp_path: Path) -> None:
    # A TIFF-based RAW's IFD0 points at its GPS IFD: 33°51'54"S 151°12'36"E.
    gps = rawgen._Ifd(
        {
            1: (rawgen._ASCII, "S"),
            2: (rawgen._RATIONAL, [(33, 1), (51, 1), (5400, 100)]),
            3: (rawgen._ASCII, "E"),
            4: (rawgen._RATIONAL, [(151, 1), (12, 1), (36, 1)]),
        },
        None,
    )
    ifd0 = rawgen._Ifd({271: (rawgen._ASCII, "Leica")}, None)
    ifd0.children[_GPS_IFD] = [gps]
    keeper = rawgen._write_tiff(tmp_path / "IMG_5.DNG", [ifd0, gps])

    meta = read_metadata(str(keeper))

    assert meta.make == "Leica"
    assert meta.gps == pytest.approx((-33.865, 151.21), abs=1e-9)
    plan = _plan(keeper, [(str(_copy_with_exif(tmp_path / "c.jpg")), [])])
    assert set(plan.adds) == {"taken_at", "model"}  # the keeper has its position and make


def test_the_first_copy_that_has_a_value_gives_it(keeper: Path, tmp_path: Path) -> None:
    first = _copy_with_exif(tmp_path / "first.jpg", gps=None, make="Fuji")
    second = _copy_with_exif(tmp_path / "second.jpg", taken="2022:02:02 02:02:02")

    plan = _plan(keeper, [(str(first), []), (str(second), [])])

    assert plan.adds["taken_at"] == datetime(2021, 6, 1, 12, 0, 3)
    assert plan.sources["taken_at"] == str(first) and plan.sources["make"] == str(first)
    assert plan.sources["gps"] == str(second)


def test_nothing_to_carry_is_no_plan(keeper: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.jpg"
    imagegen.photo(64, 48, seed=1).save(bare, "JPEG")
    assert plan_merge(str(keeper), [], [(str(bare), [])]) is None
    assert plan_merge(str(keeper), [], []) is None
    assert not Path(str(keeper) + ".xmp").exists()


# ---- merging into an existing sidecar ----------------------------------------------


def test_an_existing_sidecar_keeps_its_foreign_content(
    keeper: Path, copy: tuple[str, list[str]]
) -> None:
    own = Path(str(keeper) + ".xmp")
    own.write_text(_DARKTABLE)
    history = _DARKTABLE[
        _DARKTABLE.index("   <darktable:history>") : _DARKTABLE.index("   <dc:subject>")
    ]

    plan = _plan(keeper, [copy], [own])
    assert plan.exists and plan.sidecar == str(own)
    assert "rating" not in plan.adds  # darktable's 2 stars stay
    assert plan.adds["keywords"] == ("family",)  # "beach" is its "Beach"
    record = apply_merge(plan)

    text = own.read_text()
    assert history in text  # darktable's edit history, byte for byte
    assert text.startswith(_DARKTABLE[: _DARKTABLE.index("darktable:history_end")])
    expected = {
        **_WRITTEN,
        "Xmp.darktable.history[1]/darktable:operation": "exposure",
        "Xmp.darktable.xmp_version": "5",
        "Xmp.xmpMM.DerivedFrom": "IMG_1.JPG",
        "Xmp.xmp.Rating": "2",
        "Xmp.dc.subject": "darktable|format|jpg, Beach, family",
    }
    assert _exiv2(own, *expected) == expected
    assert record["created"] is False
    assert record["before"] is not None


def test_a_self_closing_description_and_a_name_xmp_sidecar(
    keeper: Path, copy: tuple[str, list[str]]
) -> None:
    # exiv2 writes a Description of attributes alone as <rdf:Description .../>.
    own = keeper.with_suffix(".xmp")
    own.write_text(
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f" <rdf:RDF {_RDF}>\n"
        '  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmp:Label="Blue"/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )

    plan = _plan(keeper, [copy], [own])
    assert plan.sidecar == str(own)
    apply_merge(plan)

    assert _exiv2(own, *_WRITTEN, "Xmp.xmp.Label") == {**_WRITTEN, "Xmp.xmp.Label": "Blue"}
    assert own.read_text().endswith('</x:xmpmeta>\n<?xpacket end="w"?>')


def test_an_unrated_zero_is_not_a_rating(keeper: Path, copy: tuple[str, list[str]]) -> None:
    own = Path(str(keeper) + ".xmp")
    own.write_text(_xmp("", 'xmp:Rating="0"', _NS_XMP_DC))

    plan = _plan(keeper, [copy], [own])
    assert plan.adds["rating"] == 4
    apply_merge(plan)

    assert _exiv2(own, "Xmp.xmp.Rating") == {"Xmp.xmp.Rating": "4"}
    assert own.read_text().count("Rating") == 1


def test_new_keywords_bring_the_keepers_own_along(
    tmp_path: Path, copy: tuple[str, list[str]]
) -> None:
    # The keeper's keywords are embedded: a new dc:subject in its sidecar lists them too,
    # since programs that read the sidecar take its list for the whole one.
    keeper = tmp_path / "IMG_4.JPG"
    packet = _xmp(_keywords("sunset"), "", _NS_XMP_DC)
    imagegen.photo(64, 48, seed=1).save(keeper, "JPEG", xmp=packet.encode())

    plan = _plan(keeper, [copy])
    assert plan.adds["keywords"] == ("beach", "family")
    apply_merge(plan)

    assert _exiv2(Path(plan.sidecar), "Xmp.dc.subject") == {
        "Xmp.dc.subject": "beach, family, sunset"
    }


# ---- refusing --------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF",  # cut short
        b"\x00\x01 binary",
        b"<?xml version='1.0'?><notes>not XMP</notes>",
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/"/>',
    ],
)
def test_a_corrupt_sidecar_is_refused_and_left_alone(
    keeper: Path, copy: tuple[str, list[str]], content: bytes
) -> None:
    own = Path(str(keeper) + ".xmp")
    own.write_bytes(content)
    plan = _plan(keeper, [copy], [own])
    assert plan.exists

    with pytest.raises(MergeError) as raised:
        apply_merge(plan)

    assert isinstance(raised.value, FileOpError)
    assert "not a readable XMP sidecar" in str(raised.value)
    assert own.read_bytes() == content
    assert sorted(p.name for p in keeper.parent.iterdir()) == ["IMG_1.JPG", "IMG_1.JPG.xmp"]


def test_a_new_sidecars_name_taken_meanwhile_is_not_overwritten(
    keeper: Path, copy: tuple[str, list[str]]
) -> None:
    plan = _plan(keeper, [copy])
    assert not plan.exists
    Path(plan.sidecar).write_text("written by someone else")

    with pytest.raises(MergeError):
        apply_merge(plan)

    assert Path(plan.sidecar).read_text() == "written by someone else"
    assert sorted(p.name for p in keeper.parent.iterdir()) == ["IMG_1.JPG", "IMG_1.JPG.xmp"]


# ---- undo ------------------------------------------------------------------------


@freedesktop_only
def test_undo_sends_a_created_sidecar_to_the_trash(
    keeper: Path, copy: tuple[str, list[str]], tmp_path: Path
) -> None:
    record = apply_merge(_plan(keeper, [copy]))
    sidecar = Path(str(keeper) + ".xmp")
    written = sidecar.read_bytes()

    assert undo_merge(json.loads(json.dumps(record))) is None

    assert not sidecar.exists()
    trashed = tmp_path / "xdg-data" / "Trash" / "files" / sidecar.name
    assert trashed.read_bytes() == written


def test_undo_uses_the_system_trash_for_a_created_sidecar(
    keeper: Path, copy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    trashed: list[str] = []

    def fake_trash(path: str) -> None:
        trashed.append(path)
        Path(path).unlink()

    monkeypatch.setattr(trash, "send_to_trash", fake_trash)
    record = apply_merge(_plan(keeper, [copy]))

    assert undo_merge(record) is None
    assert trashed == [str(keeper) + ".xmp"]


def test_undo_gives_a_rewritten_sidecar_its_old_bytes(
    keeper: Path, copy: tuple[str, list[str]]
) -> None:
    own = Path(str(keeper) + ".xmp")
    own.write_text(_DARKTABLE)
    record = apply_merge(_plan(keeper, [copy], [own]))
    assert own.read_text() != _DARKTABLE

    assert undo_merge(record) is None

    assert own.read_bytes() == _DARKTABLE.encode()
    assert sorted(p.name for p in keeper.parent.iterdir()) == ["IMG_1.JPG", "IMG_1.JPG.xmp"]


def test_undo_leaves_a_sidecar_changed_since_alone(
    keeper: Path, copy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    own = Path(str(keeper) + ".xmp")
    own.write_text(_DARKTABLE)
    record = apply_merge(_plan(keeper, [copy], [own]))
    edited = own.read_text().replace('darktable:history_end="1"', 'darktable:history_end="2"')
    own.write_text(edited)

    reason = undo_merge(record)

    assert reason is not None and "changed since" in reason
    assert own.read_text() == edited

    created = apply_merge(_new(keeper, copy))
    Path(str(created["sidecar"])).write_text("edited meanwhile")
    monkeypatch.setattr(trash, "send_to_trash", lambda path: pytest.fail("trashed"))
    assert "changed since" in (undo_merge(created) or "")
    assert Path(str(created["sidecar"])).read_text() == "edited meanwhile"


def _new(keeper: Path, copy: tuple[str, list[str]]) -> MergePlan:
    """A plan for a second keeper beside `keeper`, with no sidecar yet."""
    other = keeper.with_name("IMG_9.JPG")
    other.write_bytes(keeper.read_bytes())
    return _plan(other, [copy])


def test_undo_of_a_sidecar_gone_since_says_so(keeper: Path, copy: tuple[str, list[str]]) -> None:
    record = apply_merge(_plan(keeper, [copy]))
    Path(str(record["sidecar"])).unlink()

    assert "gone" in (undo_merge(record) or "")
    assert undo_merge({"sidecar": 3}) is not None
