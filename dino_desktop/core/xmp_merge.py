"""Nothing lost in a merge: what only the duplicate copies say goes into the keeper's XMP sidecar.

When the user removes duplicate copies, the date taken, GPS position, camera,
keywords, rating and colour label that only a copy has are carried over to the
photo that stays (the keeper). They are written to the keeper's XMP sidecar,
never into the keeper's image bytes:

* `read_metadata` reads what a photo has: its EXIF (through Pillow, as
  core/images.py opens files; a RAW's TIFF metadata as core/raw.py reads it),
  the XMP packet embedded in the file, and its ``.xmp`` sidecars, which win over
  the embedded values (editors write there). It never raises: an unreadable part
  is absent. Keywords are the union of all sources.
* `plan_merge` compares the keeper with its copies and lists only what the keeper
  lacks (it never changes a value the keeper has; keywords are a union) and
  which copy each value comes from; `MergePlan.lines` is the review's text.
* `apply_merge` writes the sidecar: the keeper's existing one (``name.ext.xmp``
  first, then ``name.xmp``) or a new ``name.ext.xmp`` (darktable's and
  digiKam's name, which core/companions.py pairs with the photo). A new one is
  created exclusively; an existing one is edited in place as bytes (new
  properties and namespace declarations spliced into its ``rdf:Description``,
  new ``rdf:li`` into its bags) so that everything else in it (other tools'
  namespaces, darktable's history, the formatting) stays byte for byte, and
  is then swapped in by a temporary file and os.replace. A sidecar that is not
  parseable XMP is refused (`MergeError`). The returned record goes into the
  journal; `undo_merge` puts things back if the sidecar is unchanged since.

XMP is parsed with expat (no DTDs, no entities: a DOCTYPE is refused), whose
byte offsets give the places to splice. No Qt here.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import math
import numbers
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import IO, Final
from xml.parsers import expat

from PIL import ExifTags, Image, ImageFile, IptcImagePlugin

from dino_desktop.core import images, placing, raw, trash
from dino_desktop.core.records import FileOpError

__all__ = [
    "FIELDS",
    "MergeError",
    "MergePlan",
    "PhotoMeta",
    "apply_merge",
    "plan_merge",
    "read_metadata",
    "undo_merge",
]

log = logging.getLogger(__name__)

NS_RDF: Final = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_EXIF: Final = "http://ns.adobe.com/exif/1.0/"
NS_TIFF: Final = "http://ns.adobe.com/tiff/1.0/"
NS_XMP: Final = "http://ns.adobe.com/xap/1.0/"
NS_DC: Final = "http://purl.org/dc/elements/1.1/"
NS_PS: Final = "http://ns.adobe.com/photoshop/1.0/"
NS_LR: Final = "http://ns.adobe.com/lightroom/1.0/"
_NS_XML: Final = "http://www.w3.org/XML/1998/namespace"
_PREFIXES: Final = {
    NS_EXIF: "exif",
    NS_TIFF: "tiff",
    NS_XMP: "xmp",
    NS_DC: "dc",
    NS_PS: "photoshop",
    NS_LR: "lr",
}

# The keys of MergePlan.adds, in the order the review lists them.
FIELDS: Final = (
    "taken_at",
    "gps",
    "altitude",
    "make",
    "model",
    "keywords",
    "hierarchical",
    "rating",
    "label",
)

# A new sidecar: the packet that `_merged` fills (as it fills an existing one).
_NEW_SIDECAR: Final = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
    b' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    b"  <rdf:Description\n"
    b'    rdf:about="">\n'
    b"  </rdf:Description>\n"
    b" </rdf:RDF>\n"
    b"</x:xmpmeta>\n"
)
# Sidecars bigger than this are not XMP anyone wrote by hand or by editor.
_MAX_SIDECAR: Final = 32 << 20
# Where a RAW keeps an XMP packet of its own, when it is not in IFD0's tag 700.
_RAW_XMP_SCAN: Final = 1 << 20

_EXIF_IFD: Final = int(ExifTags.IFD.Exif)
_GPS_IFD: Final = int(ExifTags.IFD.GPSInfo)
_MAKE: Final = int(ExifTags.Base.Make)
_MODEL: Final = int(ExifTags.Base.Model)
_RATING: Final = int(ExifTags.Base.Rating)
_XP_KEYWORDS: Final = int(ExifTags.Base.XPKeywords)
_XMP_TAG: Final = int(ExifTags.Base.XMLPacket)
# (date, sub-second, UTC offset) tags in the Exif IFD: the shutter's moment, then
# when it was digitised. DateTime (0x0132) is the file's last change, not a date taken.
_EXIF_DATES: Final = (
    (
        int(ExifTags.Base.DateTimeOriginal),
        int(ExifTags.Base.SubsecTimeOriginal),
        int(ExifTags.Base.OffsetTimeOriginal),
    ),
    (
        int(ExifTags.Base.DateTimeDigitized),
        int(ExifTags.Base.SubsecTimeDigitized),
        int(ExifTags.Base.OffsetTimeDigitized),
    ),
)
_IPTC_KEYWORDS: Final = (2, 25)

# XMP dates: ISO 8601 ("2021-06-01T12:00:03.25+02:00"), or EXIF's "2021:06:01 12:00:03"
# as darktable writes it. A date without its day is too vague to be a date taken.
_XMP_DATE = re.compile(
    r"^\s*(\d{4})[-:](\d{2})[-:](\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)
# XMP GPS coordinates: "DDD,MM.mmmmK" or "DDD,MM,SSK"; a bare decimal is accepted too.
_XMP_COORD = re.compile(
    r"^\s*(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?(?:,(\d+(?:\.\d+)?))?([NSEW])\s*$"
)
# The end of a start tag: attribute values may hold '>'.
_TAG_END = re.compile(rb"""<(?:[^>"']|"[^"]*"|'[^']*')*>""")
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")

# Properties whose presence means the sidecar already has the field (checked again at
# apply time, so that nothing is ever written over), and those written for it.
_DATE_PROPS: Final = ((NS_EXIF, "DateTimeOriginal"), (NS_XMP, "CreateDate"), (NS_PS, "DateCreated"))
_GPS_PROPS: Final = ((NS_EXIF, "GPSLatitude"), (NS_EXIF, "GPSLongitude"))
_ALTITUDE_PROPS: Final = ((NS_EXIF, "GPSAltitude"), (NS_EXIF, "GPSAltitudeRef"))


class MergeError(FileOpError):
    """The sidecar cannot be written (not parseable XMP, taken meanwhile, unwritable);
    the message is one line for the user, and no file was changed."""


# --- values ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhotoMeta:
    """What a photo says about itself, from its EXIF, embedded XMP and XMP sidecars."""

    taken_at: datetime | None
    """EXIF DateTimeOriginal (+SubSec, +OffsetTime: then aware), else XMP exif:DateTimeOriginal,
    xmp:CreateDate or photoshop:DateCreated."""
    gps: tuple[float, float] | None
    """(latitude, longitude) in decimal degrees."""
    make: str | None
    model: str | None
    keywords: tuple[str, ...]
    """dc:subject (and IPTC / Windows keywords embedded in the file), sorted, unique."""
    rating: int | None
    """xmp:Rating or EXIF Rating: -1 (rejected), 0 (unrated), 1..5."""
    label: str | None
    """xmp:Label, the colour label."""
    altitude: float | None = None
    """Metres above sea level (negative below), from the same source as `gps`."""
    hierarchical: tuple[str, ...] = ()
    """lr:hierarchicalSubject ("Places|France|Paris"), sorted, unique."""


@dataclass(frozen=True)
class MergePlan:
    """What merging the copies into the keeper writes, and where from."""

    keeper: str
    sidecar: str
    """The XMP file written: the keeper's own (`name.ext.xmp`, else `name.xmp`) or a new
    `name.ext.xmp`."""
    exists: bool
    """Whether `sidecar` existed when planned (a new one is created exclusively)."""
    adds: dict[str, object]
    """Field (`FIELDS`) → value, only for what the keeper lacks: "taken_at" datetime,
    "gps" (lat, lon), "altitude" float (only with "gps"), "make"/"model"/"label" str,
    "keywords"/"hierarchical" tuple of the new ones, "rating" int 1..5."""
    sources: dict[str, str]
    """Field → the copy it comes from (the first copy that has it, in the order given;
    for keywords the first that adds one: see `keyword_sources`)."""
    keyword_sources: dict[str, str] = field(default_factory=dict)
    """Each added keyword and hierarchical subject → the copy it comes from."""
    keeper_keywords: tuple[str, ...] = ()
    """The keeper's own keywords: written with the new ones when the sidecar gets its first
    dc:subject, so that a program reading the sidecar alone still sees them all."""
    keeper_hierarchical: tuple[str, ...] = ()
    """The same for lr:hierarchicalSubject."""

    def lines(self) -> list[str]:
        """The review's lines, e.g. "date taken 2021-06-01 12:00:03 (from /x/copy.jpg)"."""
        out: list[str] = []
        adds = self.adds
        for key in FIELDS:
            value = adds.get(key)
            if value is None or key == "altitude":
                continue
            if key in ("keywords", "hierarchical") and isinstance(value, tuple):
                what = "keywords" if key == "keywords" else "keyword paths"
                by_source: dict[str, list[str]] = {}
                for word in value:
                    source = self.keyword_sources.get(word, self.sources.get(key, "?"))
                    by_source.setdefault(source, []).append(f"+{word}")
                out.extend(f"{what} {', '.join(w)} (from {s})" for s, w in by_source.items())
                continue
            out.append(f"{_describe(key, value, adds.get('altitude'))} (from {self.sources[key]})")
        return out


def _describe(key: str, value: object, altitude: object) -> str:
    if key == "taken_at" and isinstance(value, datetime):
        return f"date taken {_show_date(value)}"
    if key == "gps" and isinstance(value, tuple):
        lat, lon = value
        text = f"GPS {lat:.5f}, {lon:.5f}"
        return text + (f", {altitude:.0f} m" if isinstance(altitude, float) else "")
    names = {"make": "camera make", "model": "camera model", "rating": "rating", "label": "label"}
    return f"{names.get(key, key)} {value}"


def _show_date(value: datetime) -> str:
    return _xmp_date(value).replace("T", " ", 1)


# --- reading ---------------------------------------------------------------------


@dataclass(slots=True)
class _Found:
    """One source's values (a sidecar, the embedded XMP, the EXIF)."""

    taken_at: datetime | None = None
    gps: tuple[float, float] | None = None
    altitude: float | None = None
    make: str | None = None
    model: str | None = None
    keywords: list[str] = field(default_factory=list)
    hierarchical: list[str] = field(default_factory=list)
    rating: int | None = None
    label: str | None = None


def read_metadata(path: str, sidecars: Sequence[str] = ()) -> PhotoMeta:
    """The metadata of the photo `path` and its XMP sidecars (names ending in .xmp; others
    are skipped). Sidecars win over the file's own values, the first given first, and the
    embedded XMP over the EXIF; keywords are the union of them all. Never raises."""
    found: list[_Found] = []
    for sidecar in sidecars:
        if not sidecar.lower().endswith(".xmp"):
            continue
        try:
            data, _ = _read_regular(sidecar, follow=True)
            found.append(_from_packet(_parse(data)))
        except (OSError, MergeError, _NotXmp) as e:
            log.debug("sidecar %s not read: %s", sidecar, e)
    found.extend(_read_embedded(path))
    return _combine(found)


def _combine(found: Sequence[_Found]) -> PhotoMeta:
    def first(name: str) -> object:
        return next((v for f in found if (v := getattr(f, name)) is not None), None)

    with_gps = next((f for f in found if f.gps is not None), None)
    taken, make, model, rating, label = (
        first(n) for n in ("taken_at", "make", "model", "rating", "label")
    )
    return PhotoMeta(
        taken_at=taken if isinstance(taken, datetime) else None,
        gps=with_gps.gps if with_gps else None,
        make=make if isinstance(make, str) else None,
        model=model if isinstance(model, str) else None,
        keywords=_unique(w for f in found for w in f.keywords),
        rating=rating if isinstance(rating, int) else None,
        label=label if isinstance(label, str) else None,
        altitude=with_gps.altitude if with_gps else None,
        hierarchical=_unique(w for f in found for w in f.hierarchical),
    )


def _unique(words: Iterable[str]) -> tuple[str, ...]:
    cleaned = {" ".join(w.split()) for w in words}
    return tuple(sorted((w for w in cleaned if w), key=lambda w: (w.casefold(), w)))


def _read_embedded(path: str) -> list[_Found]:
    """[embedded XMP, EXIF] of the photo itself, as far as they are readable."""
    ifd0: Mapping[int, object]
    exif_ifd: Mapping[int, object]
    gps: Mapping[int, object]
    try:
        if raw.is_raw_path(path):
            with open(path, "rb") as fp:
                ifd0, exif_ifd = raw.read_metadata(fp)
                gps = _raw_gps(fp, ifd0)
                packet = _xmp_bytes(ifd0.get(_XMP_TAG)) or _scan_xmp(fp)
            keywords: list[str] = []
        else:
            with images._open_file(path) as fp:
                img = images._identify(fp)
                exif = images._read_exif(img)
                ifd0, exif_ifd, gps = exif, _ifd(exif, _EXIF_IFD), _ifd(exif, _GPS_IFD)
                packet = _xmp_bytes(img.info.get("xmp") or img.info.get("XML:com.adobe.xmp"))
                if packet is None and img.format == "TIFF":
                    packet = _xmp_bytes(getattr(img, "tag_v2", {}).get(_XMP_TAG))
                keywords = _iptc_keywords(img)
    except Exception as e:  # a photo's metadata is a bonus: any failure means "absent"
        log.debug("metadata of %s not read: %s", path, e)
        return []
    out: list[_Found] = []
    if packet:
        try:
            out.append(_from_packet(_parse(packet.rstrip(b"\x00 \t\r\n"))))
        except _NotXmp as e:
            log.debug("embedded XMP of %s not read: %s", path, e)
    try:
        out.append(_from_exif(ifd0, exif_ifd, gps, keywords))
    except Exception as e:
        log.debug("EXIF of %s not read: %s", path, e)
    return out


def _ifd(exif: Image.Exif, tag: int) -> Mapping[int, object]:
    try:
        return exif.get_ifd(tag)
    except Exception:
        return {}


def _raw_gps(fp: IO[bytes], ifd0: Mapping[int, object]) -> Mapping[int, object]:
    """The GPS IFD of a TIFF-based RAW (its offset is in IFD0), or of a CR3 (box CMT4)."""
    fp.seek(0)
    head = fp.read(raw._HEAD_BYTES)
    if head[4:12] == b"ftypcrx ":
        return raw._cmt_box(head, b"CMT4")
    offset = ifd0.get(_GPS_IFD)
    if not isinstance(offset, int) or head[:2] not in (b"II", b"MM"):
        return {}
    gps = Image.Exif()
    gps.endian = "<" if head[:2] == b"II" else ">"
    gps.load_from_fp(fp, offset)
    return dict(gps)


def _scan_xmp(fp: IO[bytes]) -> bytes | None:
    """An XMP packet among a RAW's first bytes (CR3 and others keep it in a box of theirs)."""
    fp.seek(0)
    head = fp.read(_RAW_XMP_SCAN)
    start = head.find(b"<x:xmpmeta")
    end = head.find(b"</x:xmpmeta>", start)
    return head[start : end + len(b"</x:xmpmeta>")] if 0 <= start < end else None


def _xmp_bytes(value: object) -> bytes | None:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    if isinstance(value, tuple) and all(isinstance(b, int) for b in value):
        return bytes(value)
    return None


def _iptc_keywords(img: ImageFile.ImageFile) -> list[str]:
    try:
        info = IptcImagePlugin.getiptcinfo(img)
    except Exception:
        return []
    value = (info or {}).get(_IPTC_KEYWORDS)
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        if isinstance(item, bytes):
            try:
                out.append(item.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(item.decode("latin-1"))
    return out


def _from_exif(
    ifd0: Mapping[int, object],
    exif_ifd: Mapping[int, object],
    gps_ifd: Mapping[int, object],
    iptc_keywords: list[str],
) -> _Found:
    found = _Found(make=images._clean_text(ifd0.get(_MAKE)))
    found.model = images._clean_text(ifd0.get(_MODEL))
    for date_tag, subsec_tag, offset_tag in _EXIF_DATES:
        taken = images._parse_datetime(exif_ifd.get(date_tag), exif_ifd.get(subsec_tag))
        if taken is not None:
            tz = _parse_offset(images._clean_text(exif_ifd.get(offset_tag)) or "")
            found.taken_at = taken.replace(tzinfo=tz) if tz else taken
            break
    rating = ifd0.get(_RATING)
    if isinstance(rating, int) and -1 <= rating <= 5:
        found.rating = rating
    found.keywords = [*iptc_keywords, *_xp_keywords(ifd0.get(_XP_KEYWORDS))]
    found.gps, found.altitude = _exif_gps(gps_ifd)
    return found


def _xp_keywords(value: object) -> list[str]:
    """Windows' XPKeywords: UTF-16LE, ';'-separated."""
    data = _xmp_bytes(value)
    if not data:
        return []
    text = data.decode("utf-16-le", "replace").replace("\x00", "")
    return [w for w in text.split(";") if w.strip()]


def _exif_gps(gps: Mapping[int, object]) -> tuple[tuple[float, float] | None, float | None]:
    if images._clean_text(gps.get(9)) == "V":  # GPSStatus: measurement void
        return None, None
    lat = _dms(gps.get(2), gps.get(1), "S")
    lon = _dms(gps.get(4), gps.get(3), "W")
    position = _position(lat, lon)
    if position is None:
        return None, None
    altitude: float | None = None
    value, ref = gps.get(6), gps.get(5)
    with contextlib.suppress(TypeError, ValueError, ZeroDivisionError):
        if isinstance(value, numbers.Real):  # Pillow's IFDRational is a Rational
            altitude = float(value)
            if ref in (1, b"\x01", "1"):  # below sea level
                altitude = -altitude
    return position, altitude if altitude is not None and math.isfinite(altitude) else None


def _dms(value: object, ref: object, negative: str) -> float | None:
    """Degrees from EXIF's (degrees, minutes, seconds) rationals and N/S/E/W."""
    direction = images._clean_text(ref)
    if not isinstance(value, tuple) or not 1 <= len(value) <= 3 or not direction:
        return None
    try:
        parts = [float(v) for v in value]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    degrees = float(sum(p / 60**i for i, p in enumerate(parts)))
    return -degrees if direction.upper().startswith(negative) else degrees


def _position(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    if abs(lat) > 90 or abs(lon) > 180 or (lat == 0 and lon == 0):  # 0, 0: no fix
        return None
    return lat, lon


def _from_packet(packet: _Packet) -> _Found:
    found = _Found()
    for ns, name in _DATE_PROPS:
        found.taken_at = _parse_xmp_date(packet.text(ns, name))
        if found.taken_at is not None:
            break
    lat = _parse_coord(packet.text(NS_EXIF, "GPSLatitude"), "S")
    lon = _parse_coord(packet.text(NS_EXIF, "GPSLongitude"), "W")
    found.gps = _position(lat, lon)
    if found.gps is not None:
        found.altitude = _parse_altitude(
            packet.text(NS_EXIF, "GPSAltitude"), packet.text(NS_EXIF, "GPSAltitudeRef")
        )
    found.make = _clean(packet.text(NS_TIFF, "Make"))
    found.model = _clean(packet.text(NS_TIFF, "Model"))
    found.keywords = packet.items(NS_DC, "subject")
    found.hierarchical = packet.items(NS_LR, "hierarchicalSubject")
    found.rating = _parse_rating(packet.text(NS_XMP, "Rating"))
    found.label = _clean(packet.text(NS_XMP, "Label"))
    return found


def _clean(text: str | None) -> str | None:
    return " ".join(text.split()) or None if text else None


def _parse_rating(text: str | None) -> int | None:
    try:
        value = float(text) if text else math.nan
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and -1 <= value <= 5 else None


def _parse_offset(text: str) -> timezone | None:
    match = re.fullmatch(r"\s*(Z|([+-])(\d{2}):?(\d{2}))\s*", text)
    if match is None:
        return None
    if match.group(1) == "Z":
        return UTC
    minutes = int(match.group(3)) * 60 + int(match.group(4))
    if minutes >= 24 * 60:
        return None
    return timezone(timedelta(minutes=-minutes if match.group(2) == "-" else minutes))


def _parse_xmp_date(text: str | None) -> datetime | None:
    match = _XMP_DATE.match(text or "")
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, tz = match.groups()
    try:
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "")[:6].ljust(6, "0")),
        )
    except ValueError:
        return None
    if value.year < 1800:  # "0000-..." and such fillers
        return None
    offset = _parse_offset(tz) if tz else None
    return value.replace(tzinfo=offset) if offset else value


def _parse_coord(text: str | None, negative: str) -> float | None:
    if not text:
        return None
    match = _XMP_COORD.match(text)
    if match is None:
        try:
            return float(text)
        except ValueError:
            return None
    degrees, minutes, seconds, direction = match.groups()
    value = float(degrees) + float(minutes or 0) / 60 + float(seconds or 0) / 3600
    return -value if direction == negative else value


def _parse_altitude(text: str | None, ref: str | None) -> float | None:
    if not text:
        return None
    try:
        num, _, den = text.partition("/")
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    if not math.isfinite(value):
        return None
    return -value if (ref or "").strip() == "1" else value


# --- planning --------------------------------------------------------------------


def plan_merge(
    keeper: str, keeper_sidecars: Sequence[str], copies: Sequence[tuple[str, Sequence[str]]]
) -> MergePlan | None:
    """What the copies ((path, sidecars) each, in order of preference) add to the keeper;
    None when they add nothing. The keeper's sidecar on disk (`name.ext.xmp`, `name.xmp`)
    counts even when it is not in `keeper_sidecars`."""
    own = _keeper_sidecars(keeper, keeper_sidecars)
    mine = read_metadata(keeper, own)
    adds: dict[str, object] = {}
    sources: dict[str, str] = {}
    word_sources: dict[str, str] = {}
    known = {
        "keywords": {w.casefold() for w in mine.keywords},
        "hierarchical": {w.casefold() for w in mine.hierarchical},
    }
    new_words: dict[str, list[str]] = {"keywords": [], "hierarchical": []}
    lacks = {
        "taken_at": mine.taken_at is None,
        "gps": mine.gps is None,
        "make": mine.make is None,
        "model": mine.model is None,
        "rating": not mine.rating,  # 0 is "unrated" (cameras write it by default)
        "label": mine.label is None,
    }
    for path, sidecars in copies:
        if os.path.abspath(path) == os.path.abspath(keeper):
            continue
        theirs = read_metadata(path, sidecars)
        # A rejected (-1) or unrated copy has no rating worth carrying.
        rating = theirs.rating if theirs.rating and theirs.rating > 0 else None
        values = {
            "taken_at": theirs.taken_at,
            "gps": theirs.gps,
            "make": theirs.make,
            "model": theirs.model,
            "rating": rating,
            "label": theirs.label,
        }
        for key, value in values.items():
            if lacks[key] and key not in adds and value is not None:
                adds[key] = value
                sources[key] = path
                if key == "gps" and theirs.altitude is not None:
                    adds["altitude"], sources["altitude"] = theirs.altitude, path
        for key, words in (("keywords", theirs.keywords), ("hierarchical", theirs.hierarchical)):
            for word in words:
                if word.casefold() not in known[key]:
                    known[key].add(word.casefold())
                    new_words[key].append(word)
                    word_sources.setdefault(word, path)
                    sources.setdefault(key, path)
    for key, found in new_words.items():
        if found:
            adds[key] = _unique(found)
    if not adds:
        return None
    target, exists = _target_sidecar(keeper, own)
    return MergePlan(
        keeper=keeper,
        sidecar=target,
        exists=exists,
        adds={key: adds[key] for key in FIELDS if key in adds},
        sources=sources,
        keyword_sources=word_sources,
        keeper_keywords=mine.keywords,
        keeper_hierarchical=mine.hierarchical,
    )


def _keeper_sidecars(keeper: str, given: Sequence[str]) -> list[str]:
    """The keeper's XMP sidecars, the one to write first: `name.ext.xmp` (as given, or on
    disk: it can only be this file's), then `name.xmp` (as given: which photo of a stem it
    belongs to is core/companions.py's call), then the other ones given."""
    given_xmp = [s for s in given if s.lower().endswith(".xmp")]
    out = [s for s in given_xmp if _is_named(s, keeper + ".xmp")]
    if not out:
        out = [c for c in (keeper + ".xmp", keeper + ".XMP") if os.path.isfile(c)][:1]
    out += [s for s in given_xmp if _is_named(s, os.path.splitext(keeper)[0] + ".xmp")]
    return out + [s for s in given_xmp if s not in out]


def _is_named(path: str, name: str) -> bool:
    """Whether `path` is `name`, the extension in any case (IMG_1.JPG.XMP)."""
    a, b = os.path.abspath(path), os.path.abspath(name)
    return os.path.normcase(a[:-4]) == os.path.normcase(b[:-4]) and a[-4:].lower() == ".xmp"


def _target_sidecar(keeper: str, own: Sequence[str]) -> tuple[str, bool]:
    """The sidecar to write: the keeper's `name.ext.xmp` or `name.xmp` when one exists,
    else a new `name.ext.xmp` (never another file's sidecar, e.g. its RAW's)."""
    stem = os.path.splitext(keeper)[0]
    for sidecar in own:
        mine = _is_named(sidecar, keeper + ".xmp") or _is_named(sidecar, stem + ".xmp")
        if mine and os.path.lexists(sidecar):
            return sidecar, True
    return keeper + ".xmp", False


# --- applying and undoing ----------------------------------------------------------


def apply_merge(plan: MergePlan) -> dict[str, object]:
    """Write the plan's sidecar; return the journal's record of it: {"sidecar", "keeper",
    "created", "before" (the old bytes, base64; None for a new file), "after_sha256"}.

    Properties the sidecar has by now are never overwritten (an xmp:Rating of 0 aside).
    Raises `MergeError` (nothing written) for a sidecar that is not parseable XMP, a new
    sidecar's name taken meanwhile, or one changed while being merged."""
    path = plan.sidecar
    before: bytes | None = None
    try:
        if plan.exists:
            before, st = _read_regular(path, follow=False)
            after = _merged(before, plan)
            if after != before:
                _replace(path, after, stat.S_IMODE(st.st_mode), expect=before)
        else:
            after = _merged(_NEW_SIDECAR, plan)
            _create(path, after, _new_mode(plan.keeper))
    except FileNotFoundError as e:
        raise MergeError(f"{os.path.basename(path)}: {placing.short_reason(e)}") from e
    except OSError as e:
        raise MergeError(f"{path}: {placing.short_reason(e)}") from e
    return {
        "sidecar": path,
        "keeper": plan.keeper,
        "created": not plan.exists,
        "before": None if before is None else base64.b64encode(before).decode("ascii"),
        "after_sha256": hashlib.sha256(after).hexdigest(),
    }


def undo_merge(record: Mapping[str, object]) -> str | None:
    """Undo `apply_merge` if the sidecar is unchanged since: a created sidecar goes to the
    system trash, a rewritten one gets its old bytes back. None when done, else a one-line
    reason (and the file is left as it is)."""
    path, created = record.get("sidecar"), record.get("created")
    after, before = record.get("after_sha256"), record.get("before")
    if not (isinstance(path, str) and isinstance(created, bool) and isinstance(after, str)):
        return "not a record of a sidecar merge"
    name = os.path.basename(path)
    try:
        current, st = _read_regular(path, follow=False)
    except FileNotFoundError:
        return f"{name} is gone"
    except (OSError, MergeError) as e:
        return f"{name}: {placing.short_reason(e)}"
    if hashlib.sha256(current).hexdigest() != after:
        return f"{name} has changed since the merge; left as it is"
    if created:
        try:
            trash.send_to_trash(path)
        except OSError as e:
            return f"{name} could not be moved to the trash: {placing.short_reason(e)}"
        return (
            f"{name} is still there after moving it to the trash" if os.path.lexists(path) else None
        )
    try:
        old = base64.b64decode(before, validate=True) if isinstance(before, str) else None
    except (binascii.Error, ValueError):
        old = None
    if old is None:
        return "not a record of a sidecar merge (no earlier content)"
    if old != current:
        try:
            _replace(path, old, stat.S_IMODE(st.st_mode), expect=current)
        except (OSError, MergeError) as e:
            return f"{name}: {placing.short_reason(e)}"
    return None


def _read_regular(path: str, *, follow: bool) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file; `follow=False` refuses a symbolic link (an edit would
    replace the link with a file)."""
    st = os.stat(path) if follow else os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise MergeError(f"{os.path.basename(path)} is a symbolic link; it is not edited")
    if not stat.S_ISREG(st.st_mode):
        raise MergeError(f"{os.path.basename(path)} is not a regular file")
    if st.st_size > _MAX_SIDECAR:
        raise MergeError(f"{os.path.basename(path)} is too large to be an XMP sidecar")
    with open(path, "rb") as f:
        return f.read(_MAX_SIDECAR + 1), st


def _new_mode(keeper: str) -> int:
    """A new sidecar's permissions: the photo's read bits, writable by its owner."""
    try:
        return (stat.S_IMODE(os.stat(keeper).st_mode) & 0o666) | 0o600
    except OSError:
        return 0o644


def _write_temp(folder: str, data: bytes, mode: int) -> str:
    """A durable hidden temporary file in `folder` holding `data`."""
    fd, tmp = tempfile.mkstemp(prefix=".dino-xmp-", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _create(path: str, data: bytes, mode: int) -> None:
    """Create `path` exclusively, whole or not at all."""
    folder = os.path.dirname(path) or "."
    tmp = _write_temp(folder, data, mode)
    try:
        placing._link_or_reserve(tmp, path)
    except FileExistsError as e:
        raise MergeError(f"{os.path.basename(path)} appeared meanwhile; nothing written") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    placing._fsync_dir(folder)


def _replace(path: str, data: bytes, mode: int, *, expect: bytes) -> None:
    """Swap `data` in for `path` (a temporary file and os.replace, never a truncation),
    provided `path` still holds `expect`."""
    folder = os.path.dirname(path) or "."
    tmp = _write_temp(folder, data, mode)
    try:
        now, _ = _read_regular(path, follow=False)
        if now != expect:
            raise MergeError(f"{os.path.basename(path)} changed meanwhile; nothing written")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    placing._fsync_dir(folder)


# --- XMP: parsing ---------------------------------------------------------------


class _NotXmp(ValueError):
    """Bytes that are not an XMP packet (malformed XML, a DTD, no rdf:RDF)."""


@dataclass(slots=True, eq=False)
class _Desc:
    """One rdf:Description of the packet, with its byte positions."""

    start: int
    gt: int  # the '>' that ends its start tag
    empty: bool  # written as <rdf:Description .../>
    qname: str  # as written: "rdf:Description"
    scope: dict[str, str]  # prefix → namespace in scope at it ("" the default)
    end: int | None = None  # the '<' of its end tag
    props: list[_Prop] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Prop:
    """One property: an attribute of a Description or a child element of it."""

    ns: str
    name: str
    desc: _Desc
    attr: bool
    text: str | None = None  # a simple value
    items: list[str] | None = None  # the rdf:li of its rdf:Bag / Seq / Alt
    content: tuple[int, int] | None = None  # an element's text span
    container: tuple[int, int, bool] | None = None  # its Bag's (start, gt, empty)
    container_end: int | None = None  # the '<' of the Bag's end tag
    li_qname: str = "rdf:li"
    structured: bool = False


@dataclass(slots=True)
class _Packet:
    data: bytes
    descs: list[_Desc] = field(default_factory=list)
    rdf: tuple[int, int, bool, dict[str, str]] | None = None  # (start, gt, empty, scope)
    rdf_end: int | None = None

    def find(self, ns: str, name: str) -> _Prop | None:
        for desc in self.descs:
            for prop in desc.props:
                if prop.ns == ns and prop.name == name:
                    return prop
        return None

    def has_any(self, props: Iterable[tuple[str, str]]) -> bool:
        return any(self.find(ns, name) is not None for ns, name in props)

    def text(self, ns: str, name: str) -> str | None:
        prop = self.find(ns, name)
        if prop is None:
            return None
        if prop.text is not None:
            return prop.text.strip() or None
        # An rdf:Alt (dc:title's kind) or a one-element Seq holds the value in its first li.
        return prop.items[0].strip() or None if prop.items else None

    def items(self, ns: str, name: str) -> list[str]:
        prop = self.find(ns, name)
        if prop is None:
            return []
        if prop.items is not None:
            return [i.strip() for i in prop.items if i.strip()]
        return [prop.text.strip()] if prop.text and prop.text.strip() else []


@dataclass(slots=True, eq=False)
class _Frame:
    kind: str  # "rdf", "desc", "prop", "container", "li", "other"
    scope: dict[str, str]
    start: int
    gt: int
    empty: bool
    prop: _Prop | None = None
    desc: _Desc | None = None
    parts: list[str] = field(default_factory=list)


def _split_name(name: str) -> tuple[str, str]:
    ns, _, local = name.rpartition(" ")
    return ns, local


def _start_tag(data: bytes, start: int) -> tuple[int, bool]:
    """(index of the '>' ending the start tag at `start`, whether it is self-closing)."""
    match = _TAG_END.match(data, start)
    if match is None:  # expat accepted it, so this cannot happen
        raise _NotXmp("unexpected markup")
    gt = match.end() - 1
    return gt, data[gt - 1 : gt] == b"/"


def _qname(data: bytes, start: int) -> str:
    match = re.match(rb"<([^\s/>]+)", data[start : start + 300])
    return match.group(1).decode("utf-8", "replace") if match else "rdf:Description"


def _parse(data: bytes) -> _Packet:
    """Parse an XMP packet (raises `_NotXmp`)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:64]:
        raise _NotXmp("not UTF-8 XML")
    packet = _Packet(data)
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    stack: list[_Frame] = []
    pending: dict[str, str] = {}

    def refuse(*_: object) -> None:
        raise _NotXmp("a DOCTYPE or entity declaration (XMP has none)")

    def start_ns(prefix: str | None, uri: str) -> None:
        pending[prefix or ""] = uri

    def start(name: str, attrs: dict[str, str]) -> None:
        at = parser.CurrentByteIndex
        gt, empty = _start_tag(data, at)
        parent = stack[-1] if stack else None
        scope = dict(parent.scope) if parent else {"xml": _NS_XML}
        scope.update(pending)
        pending.clear()
        ns, local = _split_name(name)
        frame = _Frame("other", scope, at, gt, empty)
        kind = parent.kind if parent else None
        if ns == NS_RDF and local == "RDF" and packet.rdf is None:
            frame.kind = "rdf"
            packet.rdf = (at, gt, empty, scope)
        elif kind == "rdf" and ns == NS_RDF and local == "Description":
            frame.kind = "desc"
            desc = frame.desc = _Desc(at, gt, empty, _qname(data, at), scope)
            packet.descs.append(desc)
            for key, value in attrs.items():
                a_ns, a_local = _split_name(key)
                if a_ns and a_ns not in (NS_RDF, _NS_XML):
                    desc.props.append(_Prop(a_ns, a_local, desc, attr=True, text=value))
        elif kind == "desc" and parent is not None and parent.desc is not None:
            frame.kind = "prop"
            frame.prop = _Prop(ns, local, parent.desc, attr=False)
            if any(_split_name(k)[0] not in ("", NS_RDF, _NS_XML) for k in attrs) or any(
                k in (f"{NS_RDF} resource", f"{NS_RDF} parseType") for k in attrs
            ):
                frame.prop.structured = True  # a struct or a resource, not a value
            parent.desc.props.append(frame.prop)
        elif (
            kind == "prop"
            and parent is not None
            and parent.prop is not None
            and ns == NS_RDF
            and local in ("Bag", "Seq", "Alt")
            and parent.prop.items is None
        ):
            frame.kind = "container"
            frame.prop = parent.prop
            frame.prop.items = []
            frame.prop.container = (at, gt, empty)
            prefix = next((p for p, u in scope.items() if u == NS_RDF and p), None)
            frame.prop.li_qname = f"{prefix}:li" if prefix else "li"
        elif kind == "container" and ns == NS_RDF and local == "li":
            frame.kind = "li"
        else:
            if parent is not None and parent.kind in ("prop", "li"):
                parent.kind = "structured-" + parent.kind
                if parent.prop is not None:
                    parent.prop.structured = True
            if kind == "container" and parent is not None and parent.prop is not None:
                parent.prop.structured = True
        stack.append(frame)

    def chars(text: str) -> None:
        if stack and stack[-1].kind in ("prop", "li"):
            stack[-1].parts.append(text)

    def end(name: str) -> None:
        at = parser.CurrentByteIndex
        frame = stack.pop()
        text = "".join(frame.parts)
        if frame.kind == "prop" and frame.prop is not None:
            if frame.prop.items is None and not frame.prop.structured:
                frame.prop.text = text
                frame.prop.content = None if frame.empty else (frame.gt + 1, at)
        elif frame.kind == "li" and stack and stack[-1].prop is not None:
            items = stack[-1].prop.items
            if items is not None:
                items.append(text)
        elif frame.kind == "container" and frame.prop is not None and not frame.empty:
            frame.prop.container_end = at
        elif frame.kind == "desc" and frame.desc is not None and not frame.empty:
            frame.desc.end = at
        elif frame.kind == "rdf" and not frame.empty:
            packet.rdf_end = at

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartNamespaceDeclHandler = start_ns
    parser.StartElementHandler = start
    parser.CharacterDataHandler = chars
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise _NotXmp(f"not well-formed XML ({expat.ErrorString(e.code)}, line {e.lineno})") from e
    if packet.rdf is None:
        raise _NotXmp("no rdf:RDF element")
    return packet


# --- XMP: merging ----------------------------------------------------------------


@dataclass(slots=True)
class _Wanted:
    """What to add to a packet: simple properties, a rating to replace, list items."""

    simple: list[tuple[str, str, str]] = field(default_factory=list)  # (ns, name, value)
    rating_over_zero: str | None = None
    new_bags: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    more_items: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)


def _merged(data: bytes, plan: MergePlan) -> bytes:
    """`data` (an XMP packet) with the plan's values spliced in; everything else as it was."""
    name = os.path.basename(plan.sidecar)
    try:
        packet = _parse(data)
        wanted = _wanted(packet, plan)
        packet = _normalized(packet, wanted)
        merged = _splice(packet.data, _edits(packet, wanted))
        _parse(merged)  # what we wrote must parse again
    except _NotXmp as e:
        raise MergeError(f"{name} is not a readable XMP sidecar: {e}; it is left as it is") from e
    return merged


def _wanted(packet: _Packet, plan: MergePlan) -> _Wanted:
    adds = plan.adds
    wanted = _Wanted()
    taken_at = adds.get("taken_at")
    if isinstance(taken_at, datetime) and not packet.has_any(_DATE_PROPS):
        text = _xmp_date(taken_at)
        wanted.simple += [(NS_EXIF, "DateTimeOriginal", text), (NS_PS, "DateCreated", text)]
    gps = adds.get("gps")
    if isinstance(gps, tuple) and not packet.has_any(_GPS_PROPS):
        lat, lon = gps
        wanted.simple.append((NS_EXIF, "GPSLatitude", _xmp_coord(lat, "N", "S")))
        wanted.simple.append((NS_EXIF, "GPSLongitude", _xmp_coord(lon, "E", "W")))
        altitude = adds.get("altitude")
        if isinstance(altitude, float) and not packet.has_any(_ALTITUDE_PROPS):
            wanted.simple.append((NS_EXIF, "GPSAltitude", f"{round(abs(altitude) * 1000)}/1000"))
            wanted.simple.append((NS_EXIF, "GPSAltitudeRef", "1" if altitude < 0 else "0"))
    for key, ns, prop_name in (
        ("make", NS_TIFF, "Make"),
        ("model", NS_TIFF, "Model"),
        ("label", NS_XMP, "Label"),
    ):
        value = adds.get(key)
        if isinstance(value, str) and packet.find(ns, prop_name) is None:
            wanted.simple.append((ns, prop_name, value))
    rating = adds.get("rating")
    if isinstance(rating, int):
        existing = packet.find(NS_XMP, "Rating")
        if existing is None:
            wanted.simple.append((NS_XMP, "Rating", str(rating)))
        elif _parse_rating(packet.text(NS_XMP, "Rating")) == 0:
            wanted.rating_over_zero = str(rating)
    for key, base, ns, prop_name in (
        ("keywords", plan.keeper_keywords, NS_DC, "subject"),
        ("hierarchical", plan.keeper_hierarchical, NS_LR, "hierarchicalSubject"),
    ):
        words = adds.get(key)
        if not isinstance(words, tuple) or not words:
            continue
        existing = packet.find(ns, prop_name)
        if existing is None:
            wanted.new_bags.append((ns, prop_name, _unique([*base, *map(str, words)])))
            continue
        if existing.items is None or existing.structured:
            raise _NotXmp(f"its {_PREFIXES[ns]}:{prop_name} is not a list")
        have = {w.casefold() for w in packet.items(ns, prop_name)}
        missing = tuple(w for w in map(str, words) if w.casefold() not in have)
        if missing:
            wanted.more_items.append((ns, prop_name, missing))
    return wanted


def _normalized(packet: _Packet, wanted: _Wanted) -> _Packet:
    """The packet with the elements that new content goes into written open (a
    Description where there was none; <x/> as <x></x>), re-parsed."""
    data = packet.data
    if not packet.descs:
        if packet.rdf_end is None:
            raise _NotXmp("its rdf:RDF is empty")
        assert packet.rdf is not None
        rdf = _prefix_of(packet.rdf[3], NS_RDF) or "rdf"
        new = f'<{rdf}:Description {rdf}:about=""></{rdf}:Description>'.encode()
        packet = _parse(_splice(data, [(packet.rdf_end, packet.rdf_end, new)]))
        data = packet.data
    edits: list[tuple[int, int, bytes]] = []
    desc = packet.descs[0]
    if desc.empty and wanted.new_bags:
        # On a line of its own, indented as the start tag, when that starts its line.
        newline = data.rfind(b"\n", 0, desc.start)
        indent = data[newline + 1 : desc.start]
        close = f"</{desc.qname}>".encode()
        if newline >= 0 and not indent.strip():
            close = b"\n" + indent + close
        edits.append((desc.gt - 1, desc.gt + 1, b">" + close))
    for ns, name, _ in wanted.more_items:
        prop = packet.find(ns, name)
        if prop is not None and prop.container is not None and prop.container_end is None:
            start, gt, _empty = prop.container
            edits.append((gt - 1, gt + 1, b"></" + data[start + 1 : gt - 1].split()[0] + b">"))
    return _parse(_splice(data, edits)) if edits else packet


def _edits(packet: _Packet, wanted: _Wanted) -> list[tuple[int, int, bytes]]:
    data = packet.data
    enc = _encoder(data)
    desc = packet.descs[0]
    edits: list[tuple[int, int, bytes]] = []
    declared: dict[str, str] = {}  # prefix → namespace, declared on `desc` by us

    def prefix(ns: str) -> str:
        known = _prefix_of({**desc.scope, **declared}, ns)
        if known:
            return known
        base = _PREFIXES[ns]
        candidate, n = base, 1
        while candidate in desc.scope or candidate in declared:
            candidate, n = f"{base}{n}", n + 1
        declared[candidate] = ns
        return candidate

    attributes = [
        f'{prefix(ns)}:{name}="{_escape(value, attr=True)}"' for ns, name, value in wanted.simple
    ]
    bags = []
    for ns, name, words in wanted.new_bags:
        bags.append((f"{prefix(ns)}:{name}", words))
    declarations = [f'xmlns:{p}="{_escape(ns, attr=True)}"' for p, ns in declared.items()]
    if declarations or attributes:
        pos = desc.gt - 1 if desc.empty else desc.gt
        tag = data[desc.start : pos]
        if b"\n" in tag:
            last = tag.rsplit(b"\n", 1)[1].decode("utf-8", "replace")
            sep = "\n" + last[: len(last) - len(last.lstrip())]
        else:
            sep = " "
        edits.append((pos, pos, enc("".join(sep + a for a in declarations + attributes))))
    if wanted.rating_over_zero is not None:
        edits.append(_rating_edit(packet, enc(wanted.rating_over_zero)))
    if bags:
        assert desc.end is not None  # opened by _normalized
        rdf = _prefix_of(desc.scope, NS_RDF) or "rdf"
        edits.append(_insert_children(data, desc.end, enc, [_bag(q, rdf, w) for q, w in bags]))
    for ns, name, words in wanted.more_items:
        prop = packet.find(ns, name)
        assert prop is not None and prop.container_end is not None
        li = [[f"<{prop.li_qname}>{_escape(w)}</{prop.li_qname}>"] for w in words]
        edits.append(_insert_children(data, prop.container_end, enc, li))
    return edits


def _bag(qname: str, rdf: str, words: Sequence[str]) -> list[str]:
    """A bag property's lines, one level of indentation (one space) per element."""
    items = [f"  <{rdf}:li>{_escape(w)}</{rdf}:li>" for w in words]
    return [f"<{qname}>", f" <{rdf}:Bag>", *items, f" </{rdf}:Bag>", f"</{qname}>"]


def _insert_children(
    data: bytes, end_tag: int, enc: _Encoder, elements: Sequence[Sequence[str]]
) -> tuple[int, int, bytes]:
    """Insert elements (each a list of lines) before the end tag at `end_tag`: on lines of
    their own, one space deeper than the end tag, when it is on a line of its own."""
    line_start = data.rfind(b"\n", 0, end_tag) + 1
    before = data[line_start:end_tag]
    if line_start > 0 and not before.strip():
        indent = before.decode("ascii", "replace") + " "
        text = "".join(indent + line + "\n" for lines in elements for line in lines)
        return line_start, line_start, enc(text)
    return end_tag, end_tag, enc("".join(line.strip() for lines in elements for line in lines))


def _rating_edit(packet: _Packet, value: bytes) -> tuple[int, int, bytes]:
    """Replace an xmp:Rating of 0 ("unrated"): an element's text or an attribute's value."""
    prop = packet.find(NS_XMP, "Rating")
    assert prop is not None
    if prop.content is not None:
        return prop.content[0], prop.content[1], value
    if prop.attr:
        desc = prop.desc
        tag = packet.data[desc.start : desc.gt]
        for p, ns in desc.scope.items():
            if ns != NS_XMP or not p:
                continue
            pattern = (
                rb"(?<![\w.:-])" + re.escape(p.encode()) + rb""":Rating\s*=\s*(["'])([^"']*)\1"""
            )
            match = re.search(pattern, tag)
            if match is not None:
                return desc.start + match.start(2), desc.start + match.end(2), value
    raise _NotXmp("its xmp:Rating cannot be read")


def _prefix_of(scope: Mapping[str, str], ns: str) -> str | None:
    return next((p for p, u in scope.items() if u == ns and p), None)


_Encoder = Callable[[str], bytes]  # text as the file's encoding has it


def _encoder(data: bytes) -> _Encoder:
    """Text as the file's encoding has it: UTF-8, else ASCII with character references
    (right in every ASCII-compatible encoding a declaration can name)."""
    match = _XML_ENCODING.match(data)
    name = match.group(1).decode("ascii").lower() if match else "utf-8"
    if name in ("utf-8", "utf8"):
        return lambda text: text.encode("utf-8")
    return lambda text: text.encode("ascii", "xmlcharrefreplace")


def _splice(data: bytes, edits: Sequence[tuple[int, int, bytes]]) -> bytes:
    """Apply (start, end, replacement) edits, which must not overlap."""
    out = data
    last = len(data) + 1
    for start, end, text in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        if end > last:
            raise _NotXmp("overlapping edits")  # a bug of ours: refuse rather than damage
        out = out[:start] + text + out[end:]
        last = start
    return out


def _escape(text: str, *, attr: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if attr:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")
    return text


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _xmp_date(value: datetime) -> str:
    """ISO 8601 as XMP has it: "2021-06-01T12:00:03", ".25" for a fraction, "+02:00"."""
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += "." + f"{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset()
    return text + (_offset_text(offset) if offset is not None else "")


def _xmp_coord(value: float, positive: str, negative: str) -> str:
    """XMP's GPS coordinate "DDD,MM.mmmmmmK" (a millionth of a minute is ~2 mm)."""
    degrees = int(abs(value))
    minutes = round((abs(value) - degrees) * 60, 6)
    if minutes >= 60:
        degrees, minutes = degrees + 1, minutes - 60
    return f"{degrees},{minutes:.6f}{negative if value < 0 else positive}"
