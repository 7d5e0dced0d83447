"""What a photo says about itself: EXIF, the embedded XMP packet, and its XMP sidecars.

`read_metadata` reads a photo's date taken, GPS position, camera, keywords,
rating and colour label: its EXIF (through Pillow, as core/images.py opens
files; a RAW's TIFF metadata as core/raw.py reads it), the XMP packet embedded
in the file, and its ``.xmp`` sidecars, which win over the embedded values
(editors write there). It never raises: an unreadable part is absent. Keywords
are the union of all sources.

`parse_packet` parses an XMP packet with expat (no DTDs, no entities: a
DOCTYPE is refused) into a `Packet` that keeps the byte offsets of its
descriptions and properties, so core/xmp_merge.py can splice into the file
without rewriting the rest. No Qt here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import IO, Final
from xml.parsers import expat

from PIL import ExifTags, Image, ImageFile, IptcImagePlugin

from dino_desktop.core import images, raw
from dino_desktop.core.records import FileOpError

__all__ = [
    "DATE_PROPS",
    "MAX_SIDECAR",
    "NS_DC",
    "NS_EXIF",
    "NS_LR",
    "NS_PS",
    "NS_RDF",
    "NS_TIFF",
    "NS_XMP",
    "MergeError",
    "NotXmp",
    "Packet",
    "PhotoMeta",
    "parse_packet",
    "parse_rating",
    "read_metadata",
    "read_regular",
    "unique_words",
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
# Sidecars bigger than this are not XMP anyone wrote by hand or by editor.
MAX_SIDECAR: Final = 32 << 20
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

# Properties whose presence means the sidecar already has the field (checked again at
# apply time, so that nothing is ever written over), and those written for it.
DATE_PROPS: Final = ((NS_EXIF, "DateTimeOriginal"), (NS_XMP, "CreateDate"), (NS_PS, "DateCreated"))


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
            data, _ = read_regular(sidecar, follow=True)
            found.append(_from_packet(parse_packet(data)))
        except (OSError, MergeError, NotXmp) as e:
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
        keywords=unique_words(w for f in found for w in f.keywords),
        rating=rating if isinstance(rating, int) else None,
        label=label if isinstance(label, str) else None,
        altitude=with_gps.altitude if with_gps else None,
        hierarchical=unique_words(w for f in found for w in f.hierarchical),
    )


def unique_words(words: Iterable[str]) -> tuple[str, ...]:
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
            out.append(_from_packet(parse_packet(packet.rstrip(b"\x00 \t\r\n"))))
        except NotXmp as e:
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


def _from_packet(packet: Packet) -> _Found:
    found = _Found()
    for ns, name in DATE_PROPS:
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
    found.rating = parse_rating(packet.text(NS_XMP, "Rating"))
    found.label = _clean(packet.text(NS_XMP, "Label"))
    return found


def _clean(text: str | None) -> str | None:
    return " ".join(text.split()) or None if text else None


def parse_rating(text: str | None) -> int | None:
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


def read_regular(path: str, *, follow: bool) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file; `follow=False` refuses a symbolic link (an edit would
    replace the link with a file)."""
    st = os.stat(path) if follow else os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise MergeError(f"{os.path.basename(path)} is a symbolic link; it is not edited")
    if not stat.S_ISREG(st.st_mode):
        raise MergeError(f"{os.path.basename(path)} is not a regular file")
    if st.st_size > MAX_SIDECAR:
        raise MergeError(f"{os.path.basename(path)} is too large to be an XMP sidecar")
    with open(path, "rb") as f:
        return f.read(MAX_SIDECAR + 1), st


# --- XMP: parsing ---------------------------------------------------------------


class NotXmp(ValueError):
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
class Packet:
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
        raise NotXmp("unexpected markup")
    gt = match.end() - 1
    return gt, data[gt - 1 : gt] == b"/"


def _qname(data: bytes, start: int) -> str:
    match = re.match(rb"<([^\s/>]+)", data[start : start + 300])
    return match.group(1).decode("utf-8", "replace") if match else "rdf:Description"


def parse_packet(data: bytes) -> Packet:
    """Parse an XMP packet (raises `NotXmp`)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:64]:
        raise NotXmp("not UTF-8 XML")
    packet = Packet(data)
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    stack: list[_Frame] = []
    pending: dict[str, str] = {}

    def refuse(*_: object) -> None:
        raise NotXmp("a DOCTYPE or entity declaration (XMP has none)")

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
        raise NotXmp(f"not well-formed XML ({expat.ErrorString(e.code)}, line {e.lineno})") from e
    if packet.rdf is None:
        raise NotXmp("no rdf:RDF element")
    return packet
