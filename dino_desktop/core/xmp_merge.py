"""Nothing lost in a merge: what only the duplicate copies say goes into the keeper's XMP sidecar.

When the user removes duplicate copies, the date taken, GPS position, camera,
keywords, rating and colour label that only a copy has are carried over to the
photo that stays (the keeper). They are written to the keeper's XMP sidecar,
never into the keeper's image bytes:

* `read_metadata` (core/photo_meta.py, re-exported here) reads what a photo
  has: EXIF, the embedded XMP packet and its ``.xmp`` sidecars.
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

XMP is parsed by core/photo_meta.py (`parse_packet`, expat), whose byte
offsets give the places to splice. No Qt here.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from dino_desktop.core import placing, trash
from dino_desktop.core.photo_meta import (
    DATE_PROPS,
    NS_DC,
    NS_EXIF,
    NS_LR,
    NS_PS,
    NS_RDF,
    NS_TIFF,
    NS_XMP,
    MergeError,
    NotXmp,
    Packet,
    PhotoMeta,
    parse_packet,
    parse_rating,
    read_metadata,
    read_regular,
    unique_words,
)

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
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_GPS_PROPS: Final = ((NS_EXIF, "GPSLatitude"), (NS_EXIF, "GPSLongitude"))
_ALTITUDE_PROPS: Final = ((NS_EXIF, "GPSAltitude"), (NS_EXIF, "GPSAltitudeRef"))


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
            adds[key] = unique_words(found)
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
            before, st = read_regular(path, follow=False)
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
        current, st = read_regular(path, follow=False)
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
        now, _ = read_regular(path, follow=False)
        if now != expect:
            raise MergeError(f"{os.path.basename(path)} changed meanwhile; nothing written")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    placing._fsync_dir(folder)


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
        packet = parse_packet(data)
        wanted = _wanted(packet, plan)
        packet = _normalized(packet, wanted)
        merged = _splice(packet.data, _edits(packet, wanted))
        parse_packet(merged)  # what we wrote must parse again
    except NotXmp as e:
        raise MergeError(f"{name} is not a readable XMP sidecar: {e}; it is left as it is") from e
    return merged


def _wanted(packet: Packet, plan: MergePlan) -> _Wanted:
    adds = plan.adds
    wanted = _Wanted()
    taken_at = adds.get("taken_at")
    if isinstance(taken_at, datetime) and not packet.has_any(DATE_PROPS):
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
        elif parse_rating(packet.text(NS_XMP, "Rating")) == 0:
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
            wanted.new_bags.append((ns, prop_name, unique_words([*base, *map(str, words)])))
            continue
        if existing.items is None or existing.structured:
            raise NotXmp(f"its {_PREFIXES[ns]}:{prop_name} is not a list")
        have = {w.casefold() for w in packet.items(ns, prop_name)}
        missing = tuple(w for w in map(str, words) if w.casefold() not in have)
        if missing:
            wanted.more_items.append((ns, prop_name, missing))
    return wanted


def _normalized(packet: Packet, wanted: _Wanted) -> Packet:
    """The packet with the elements that new content goes into written open (a
    Description where there was none; <x/> as <x></x>), re-parsed."""
    data = packet.data
    if not packet.descs:
        if packet.rdf_end is None:
            raise NotXmp("its rdf:RDF is empty")
        assert packet.rdf is not None
        rdf = _prefix_of(packet.rdf[3], NS_RDF) or "rdf"
        new = f'<{rdf}:Description {rdf}:about=""></{rdf}:Description>'.encode()
        packet = parse_packet(_splice(data, [(packet.rdf_end, packet.rdf_end, new)]))
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
    return parse_packet(_splice(data, edits)) if edits else packet


def _edits(packet: Packet, wanted: _Wanted) -> list[tuple[int, int, bytes]]:
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


def _rating_edit(packet: Packet, value: bytes) -> tuple[int, int, bytes]:
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
    raise NotXmp("its xmp:Rating cannot be read")


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
            raise NotXmp("overlapping edits")  # a bug of ours: refuse rather than damage
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
