"""The command line: argparse subcommands over `Library`, progress on stderr.

A public interface (DESIGN.md §5): scripts depend on the commands, the `--json`
shapes and the exit codes (0 ok, 1 error, 2 usage, 3 model weights
unavailable), so changes here are additive only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from dino_desktop import __version__, cli_dupes, cli_live, cli_shared
from dino_desktop.config import HOME_ENV, WEIGHTS_ENV
from dino_desktop.logs import log_file, setup_logging

if TYPE_CHECKING:  # imported for real in main(), so `--help` stays instant
    from dino_desktop.core.library import Library
    from dino_desktop.core.progress import Progress

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_WEIGHTS = 0, 1, 2, 3


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # The same options are accepted before and after the subcommand; after it
    # they default to SUPPRESS so they don't overwrite what was given before.
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--library",
        metavar="DIR|URL",
        default=default,
        help=f"library folder, or postgresql://user@host/db for a shared library "
        f"(env {HOME_ENV}; default: the user data dir)",
    )
    parser.add_argument(
        "--model",
        metavar="NAME",
        default=default,
        help="timm model name, e.g. vit_small_patch14_dinov2 (default from settings)",
    )
    parser.add_argument(
        "--weights",
        metavar="FILE",
        default=default,
        help=f"weights file, Meta .pth or timm .safetensors (env {WEIGHTS_ENV})",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        default=default,
        help="where the model runs (default: auto = cuda, then mps, then cpu)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dino-desktop",
        description="A photo organizer that understands pictures.\n"
        "Without a command, opens the desktop app.",
        epilog=f"Log file: {log_file()}",
        # Unwrapped, so the log file's path is one line to copy.
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("scan", parents=[common], help="add folders, scan them and embed photos")
    p.add_argument("paths", nargs="*", metavar="PATH", help="folders (none: rescan all)")
    p.add_argument(
        "--reference",
        action="store_true",
        help="mark the folders as reference: protected, never a removal candidate",
    )
    p.add_argument("--no-embed", action="store_true", help="index files only, embed later")

    sub.add_parser("status", parents=[common], help="library summary")
    sub.add_parser("list", parents=[common], help="every indexed file, failed ones with errors")

    p = sub.add_parser("search", parents=[common], help="nearest photos to any image file")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--top", type=int, default=10, metavar="K", help="how many (default 10)")
    p.add_argument(
        "--folder", metavar="DIR", help="only photos under DIR (a library folder or inside one)"
    )
    p.add_argument("--label", metavar="NAME", help="only the examples of a sort label")

    p = sub.add_parser(
        "overlay", parents=[common], help="PCA overlay of DINOv2 patch features as a PNG"
    )
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("out", metavar="OUT.png")
    p.add_argument("--mode", choices=["rgb", "foreground"], default="rgb")
    p.add_argument(
        "--with",
        dest="others",
        nargs="+",
        default=[],
        metavar="IMAGE",
        help="more photos: one joint PCA, written side by side",
    )
    p.add_argument(
        "--opacity",
        type=float,
        default=1.0,
        help="1 = the feature map alone (default), below 1 = blended over the photo",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="foreground threshold in [0, 1] (default: automatic, Otsu)",
    )
    p.add_argument("--invert", action="store_true", help="swap foreground and background")
    p.add_argument(
        "--background",
        choices=["transparent", "dim"],
        default="transparent",
        help="foreground mode: what the background becomes",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT.png if it exists")

    p = sub.add_parser("cluster", parents=[common], help="k-means auto-folders of the photos")
    p.add_argument(
        "--k",
        default="auto",
        metavar="N|auto",
        help="number of folders, or auto (default: chosen by silhouette)",
    )
    p = sub.add_parser(
        "export-clusters",
        parents=[common],
        help="write the latest auto-folders into DEST (undoable)",
    )
    p.add_argument("dest", metavar="DEST")
    p.add_argument("--mode", choices=["copy", "hardlink", "symlink", "move"], default="copy")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")

    p = sub.add_parser(
        "sort-by-example",
        parents=[common],
        help="learn labels from example folders, sort every other photo",
        description="Each DIR is a label (its name) and its photos are the examples; every "
        "other embedded photo gets the most likely label and a confidence. Photos below "
        "--threshold are 'Unsure'. With --export, the sorted photos are written into DEST, "
        "a folder per label (undoable with 'undo').",
    )
    p.add_argument("--labels", nargs="+", required=True, metavar="DIR", help="example folders")
    p.add_argument(
        "--classifier",
        choices=["logreg", "mlp"],
        default="logreg",
        help="logistic regression (default) or a small MLP head",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="confidence below which a photo is Unsure, in [0, 1] (default 0.6)",
    )
    p.add_argument("--export", metavar="DEST", help="write the sorted photos into DEST")
    p.add_argument("--mode", choices=["copy", "hardlink", "symlink", "move"], default="copy")

    p = sub.add_parser("trash", parents=[common], help="move files to the system trash (undoable)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p = sub.add_parser("undo", parents=[common], help="undo the last (or given) file operation")
    p.add_argument("journal", nargs="?", type=int, metavar="JOURNAL")
    cli_live.add_parsers(sub, common)
    cli_dupes.add_parsers(sub, common)
    cli_shared.add_parsers(sub, common)
    sub.add_parser(
        "prune-thumbnails",
        parents=[common],
        help="delete cached thumbnails of photos that changed or are gone (never photos)",
    )

    p = sub.add_parser("model", parents=[common], help="model weights: status, import, download")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    msub.add_parser("status", parents=[common], help="which weights are in use")
    mi = msub.add_parser("import", parents=[common], help="install a weights file into the cache")
    mi.add_argument("file", metavar="FILE")
    md = msub.add_parser("download", parents=[common], help="download the weights (needs network)")
    md.add_argument("--source", choices=["timm", "meta"], default="timm")
    return parser


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=True)
    sys.stdout.write("\n")


# What each job phase is called on its progress bar.
PHASE_LABELS = {
    "walk": "Looking for photos",
    "index": "Reading photos",
    "embed": "Embedding",
    "export": "Exporting",
    "train": "Learning",
    "predict": "Sorting",
    "prune": "Cleaning up thumbnails",
    "download": "Downloading",
    "verify": "Checking",
    "import": "Checking",
}


def _progress_bar() -> tuple[Callable[[Progress], None], Callable[[], None]]:
    """A tqdm bar on stderr per phase (bytes while downloading weights, photos
    otherwise); silent when stderr is not a terminal."""
    from tqdm import tqdm

    state: dict[str, Any] = {"phase": None, "bar": None}

    def update(step: Progress) -> None:
        if step.phase != state["phase"]:
            close()
            state["phase"] = step.phase
            unit: dict[str, Any] = (
                {"unit": "B", "unit_scale": True} if step.phase == "download" else {"unit": "photo"}
            )
            state["bar"] = tqdm(
                total=step.total,
                desc=PHASE_LABELS.get(step.phase, step.phase),
                file=sys.stderr,
                disable=None,
                dynamic_ncols=True,
                **unit,
            )
        bar = state["bar"]
        bar.total = step.total
        bar.n = step.done
        bar.refresh()

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    return update, close


def _cmd_scan(lib: Library, args: argparse.Namespace) -> int:
    from dino_desktop.core.progress import drive

    update, close = _progress_bar()
    try:
        result = drive(
            lib.scan(args.paths, reference=args.reference, embed=not args.no_embed), update
        )
    finally:
        close()
    for warning in result.warnings:
        print(f"dino-desktop: warning: {warning}", file=sys.stderr)
    if result.weights_missing:
        print(f"dino-desktop: embeddings pending: {result.weights_missing}", file=sys.stderr)
    failed = [{"path": p, "error": e} for p, e in result.failed]
    if args.json:
        _print_json(
            {
                "added": result.added,
                "updated": result.updated,
                "removed": result.removed,
                "unchanged": result.unchanged,
                "embedded": result.embedded,
                "pending": result.pending,
                "failed": failed,
                "companions": result.companions,
                "videos": result.videos,
                "orphan_sidecars": result.orphan_sidecars,
                "moved": result.moved,
                "offline": result.offline,
                "queued": result.queued,
            }
        )
    else:
        moved = f"{result.moved} moved (kept their data), " if result.moved else ""
        print(
            f"{result.added} added, {result.updated} updated, {moved}{result.removed} removed, "
            f"{result.unchanged} unchanged; {result.embedded} embedded, "
            f"{result.pending} pending; {len(failed)} could not be read"
        )
        if result.queued:
            print(f"{result.queued} queued for the indexing workers (dino-desktop worker)")
        if result.companions:
            print(f"{result.companions} companion file(s) (RAW, Live Photo video, sidecars)")
        if result.videos:
            print(f"{len(result.videos)} video(s) not indexed")
        if result.orphan_sidecars:
            print(f"{len(result.orphan_sidecars)} sidecar(s) without a photo:")
            for path in result.orphan_sidecars:
                print(f"  {path}")
        for item in failed:
            print(f"  {item['path']}: {item['error']}")
    return EXIT_OK


def _cmd_status(lib: Library, args: argparse.Namespace) -> int:
    st = lib.status()
    queue = lib.workers.state() if lib.is_shared else None
    folders = [
        {
            "path": f.path,
            "reference": f.is_reference,
            "images": f.images,
            "failed": f.failed,
            "offline": f.offline,
            "same_drive_at": f.same_drive_at,
        }
        for f in st.folders
    ]
    if args.json:
        _print_json(
            {
                "images": st.images,
                "embedded": st.embedded,
                "pending": st.pending,
                "failed": st.failed,
                "folders": folders,
                "model": st.model,
                "weights": st.weights,
                "companions": st.companions,
                "videos_not_indexed": st.videos,
                "orphan_sidecars": st.orphan_sidecars,
                **(
                    {}
                    if queue is None
                    else {
                        "queue": {
                            "photos_left": queue.photos_left,
                            "jobs": queue.jobs,
                            "workers": queue.workers,
                        }
                    }
                ),
            }
        )
    else:
        print(f"Library: {lib.where}")
        print(
            f"Photos: {st.images} ({st.embedded} embedded, {st.pending} pending), "
            f"{st.failed} could not be read"
        )
        if st.companions or st.videos or st.orphan_sidecars:
            print(
                f"Companion files: {st.companions}; videos not indexed: {st.videos}; "
                f"sidecars without a photo: {st.orphan_sidecars}"
            )
        print(f"Model: {st.model}; weights: {st.weights or 'not installed'}")
        if queue is not None:
            print(f"Indexing workers: {queue.describe()}, {queue.jobs} job(s) queued")
        for f in folders:
            mark = " [reference]" if f["reference"] else ""
            print(f"  {f['path']}{mark}: {f['images']} photos, {f['failed']} unreadable")
            if f["offline"]:
                print(f"    offline: {f['offline']}")
            if f["same_drive_at"]:
                print(
                    f"    its drive is mounted at another place now: dino-desktop relocate "
                    f"'{f['path']}' '{f['same_drive_at']}'"
                )
    return EXIT_OK


def _cmd_list(lib: Library, args: argparse.Namespace) -> int:
    rows = [
        {
            "path": r.path,
            "status": r.status,
            "width": r.width,
            "height": r.height,
            "taken_at": r.taken_at.isoformat() if r.taken_at else None,
            "error": r.error,
            "companions": list(r.companions),
        }
        for r in lib.images()
    ]
    if args.json:
        _print_json(rows)
    else:
        for r in rows:
            detail = f"{r['width']}×{r['height']}" if r["status"] == "ok" else r["error"]
            print(f"{r['status']:6} {r['path']}  {detail}")
    return EXIT_OK


def _cmd_search(lib: Library, args: argparse.Namespace) -> int:
    if args.top < 1:
        print("dino-desktop: error: --top must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    scope = lib.search_scope(args.folder, args.label)
    hits = lib.search(args.image, top=args.top, scope=scope)
    if args.json:
        _print_json(
            [{"path": h.path, "score": round(h.score, 6), "offline": h.offline} for h in hits]
        )
    else:
        for h in hits:
            print(f"{h.score:.4f}  {h.path}{'  (offline)' if h.offline else ''}")
    return EXIT_OK


def _cmd_model(lib: Library, args: argparse.Namespace) -> int:
    from dino_desktop.core.progress import drive

    if args.model_command in ("import", "download"):
        # One job for both (the GUI's weights dialog runs the same one).
        if args.model_command == "import":
            job = lib.weights_job(import_file=args.file)
            verb = "Installed"
        else:
            job = lib.weights_job(download=args.source)
            verb = "Downloaded"
        update, close = _progress_bar()
        try:
            path = drive(job, update)
        except ValueError as exc:  # no download of that --source for this model
            print(f"dino-desktop: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        finally:
            close()
        if args.json:
            _print_json({"model": lib.model_name, "weights": str(path)})
        else:
            print(f"{verb} weights for {lib.model_name}: {path}")
        return EXIT_OK
    status = lib.model_status()
    if args.json:
        _print_json(status)
    else:
        print(f"Model: {status['model']} ({status['dim']}-d)")
        if status["weights"]:
            print(f"Weights: {status['weights']} (from {status['source']})")
        else:
            print("Weights: not installed. Run 'dino-desktop model download', or download")
            print(f"  {status['meta_url'] or status['download']}")
            print("  and run 'dino-desktop model import FILE'.")
        print(f"Photos waiting for embeddings: {status['pending']}")
    return EXIT_OK


def _cmd_overlay(lib: Library, args: argparse.Namespace) -> int:
    from dino_desktop.core.overlay import strip

    out = os.path.abspath(args.out)
    if not out.lower().endswith(".png"):
        print("dino-desktop: error: OUT must be a .png file", file=sys.stderr)
        return EXIT_USAGE
    if os.path.exists(out) and not args.overwrite:
        print(f"dino-desktop: error: {out} exists (use --overwrite to replace it)", file=sys.stderr)
        return EXIT_ERROR
    if len(args.others) > 7:
        print("dino-desktop: error: --with takes at most 7 photos (8 in all)", file=sys.stderr)
        return EXIT_USAGE
    if not 0.0 <= args.opacity <= 1.0 or not (args.threshold is None or 0 <= args.threshold <= 1):
        print("dino-desktop: error: --opacity and --threshold are between 0 and 1", file=sys.stderr)
        return EXIT_USAGE
    paths = [args.image, *args.others]
    for path in paths:
        if not os.path.isfile(path):
            print(f"dino-desktop: error: no such image file: {path}", file=sys.stderr)
            return EXIT_ERROR
    images = lib.overlay_engine().overlays(
        paths,
        args.mode,
        threshold=args.threshold,
        invert=args.invert,
        opacity=args.opacity,
        background=args.background,
    )
    picture = strip(images) if len(images) > 1 else images[0]
    tmp = out + ".part"
    picture.save(tmp, format="PNG")
    os.replace(tmp, out)
    if args.json:
        _print_json(
            {
                "path": out,
                "width": picture.width,
                "height": picture.height,
                "mode": args.mode,
                "photos": [os.path.abspath(p) for p in paths],
            }
        )
    else:
        print(f"Wrote {out} ({picture.width}×{picture.height})")
    return EXIT_OK


def _cmd_cluster(lib: Library, args: argparse.Namespace) -> int:
    from dino_desktop.core.progress import drive

    k: int | None = None
    if args.k != "auto":
        try:
            k = int(args.k)
        except ValueError:
            k = 0
        if k < 1:
            print("dino-desktop: error: --k must be a positive number or auto", file=sys.stderr)
            return EXIT_USAGE
    update, close = _progress_bar()
    try:
        run = drive(lib.cluster_keeping_names(k), update)
    finally:
        close()
    # Any: the values differ in type (the JSON shape), and `len` is taken of the lists.
    clusters: list[dict[str, Any]] = [
        {
            "id": c.id,
            "name": c.name,
            "size": c.size,
            "paths": [run.paths[i] for i in c.member_ids if i in run.paths],
            "outliers": [run.paths[i] for i in c.outlier_ids if i in run.paths],
        }
        for c in run.clusters
    ]
    if args.json:
        _print_json({"k": run.k, "clusters": clusters})
    else:
        print(f"{run.k} folder(s)")
        for c in clusters:
            print(f"  {c['name']}: {c['size']} photo(s), {len(c['outliers'])} outlier(s)")
    return EXIT_OK


def _cmd_export_clusters(lib: Library, args: argparse.Namespace) -> int:
    from dino_desktop.core.progress import drive

    if args.dry_run:
        plan = lib.plan_with_companions(lib.export_plan(args.dest))
        if args.json:
            _print_json(
                {
                    "dry_run": True,
                    "written": [d for _, d, _ in plan],
                    "journal": None,
                    "plan": [
                        {
                            "source": s,
                            "destination": d,
                            "companions": [{"source": cs, "destination": cd} for cs, cd in c],
                        }
                        for s, d, c in plan
                    ],
                }
            )
        else:
            for src, dst, comps in plan:
                print(f"{src} -> {dst}")
                for csrc, cdst in comps:
                    print(f"  with {csrc} -> {cdst}")
        return EXIT_OK
    update, close = _progress_bar()
    try:
        result = drive(lib.export_clusters_job(args.dest, args.mode), update)
    finally:
        close()
    written = [d for _, d in result.moved]
    if args.json:
        _print_json(
            {
                "written": written,
                "companions_written": [d for _, d in result.companions_moved],
                "journal": result.journal_id,
                "failed": [{"path": p, "error": e} for p, e in result.failed],
            }
        )
    else:
        print(
            f"Wrote {len(written)} file(s) by {args.mode} (undo: dino-desktop undo "
            f"{result.journal_id})"
        )
        for note in result.notes:
            print(f"  {note}")
        for path, error in result.failed:
            print(f"  not written: {path}: {error}")
    return EXIT_ERROR if result.failed else EXIT_OK


def _cmd_sort_by_example(lib: Library, args: argparse.Namespace) -> int:
    from dino_desktop.core.progress import drive
    from dino_desktop.core.sorting import UNSURE

    missing = [d for d in args.labels if not os.path.isdir(d)]
    if missing:
        print(f"dino-desktop: error: not a folder: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        print("dino-desktop: error: --threshold must be between 0 and 1", file=sys.stderr)
        return EXIT_USAGE
    update, close = _progress_bar()
    try:
        drive(lib.scan_example_folders(args.labels), update)
        labels = lib.labels_from_folders(args.labels)
        result = drive(
            lib.sort_by_example(
                args.classifier, args.threshold, label_ids=[lb.id for lb in labels]
            ),
            update,
        )
        exported = None
        if args.export:
            exported = drive(lib.export_sorted_job(result, args.export, args.mode), update)
    finally:
        close()
    paths = lib.paths_of(p.image_id for p in result.predictions)
    predictions = [
        {
            "path": paths[p.image_id],
            "label": UNSURE if p.unsure else p.label,
            "confidence": round(p.confidence, 4),
            "unsure": p.unsure,
            "guess": p.label,
        }
        for p in sorted(result.predictions, key=lambda p: (p.unsure, p.label, -p.confidence))
        if p.image_id in paths
    ]
    if args.json:
        out: dict[str, Any] = {
            "cv_accuracy": result.cv_accuracy,
            "cv_folds": result.cv_folds,
            "cv_note": result.cv_note,
            "classifier": result.classifier,
            "threshold": result.threshold,
            "labels": [
                {"name": lb.name, "folder": lb.folder, "examples": result.examples[lb.name]}
                for lb in labels
            ],
            "predictions": predictions,
        }
        if exported is not None:
            out["written"] = [d for _, d in exported.moved]
            out["companions_written"] = [d for _, d in exported.companions_moved]
            out["journal"] = exported.journal_id
            out["failed"] = [{"path": p, "error": e} for p, e in exported.failed]
        _print_json(out)
    else:
        accuracy = (
            f"{result.cv_accuracy:.1%} ({result.cv_note})"
            if result.cv_accuracy is not None
            else f"not measured: {result.cv_note}"
        )
        print(f"Cross-validated accuracy: {accuracy}")
        for name, items in result.by_label().items():
            examples = f", {result.examples[name]} example(s)" if name in result.examples else ""
            print(f"  {name}: {len(items)} photo(s){examples}")
        if exported is not None:
            print(
                f"Wrote {len(exported.moved)} file(s) by {args.mode} into {args.export} "
                f"(undo: dino-desktop undo {exported.journal_id})"
            )
            for path, error in exported.failed:
                print(f"  not written: {path}: {error}")
    return EXIT_ERROR if exported is not None and exported.failed else EXIT_OK


def _cmd_trash(lib: Library, args: argparse.Namespace) -> int:
    result = lib.trash(args.paths)
    if args.json:
        _print_json(
            {
                "trashed": result.done,
                "companions": result.companions,
                "journal": result.journal_id,
                "failed": [{"path": p, "error": e} for p, e in result.failed],
            }
        )
    else:
        with_them = f" with {len(result.companions)} companion file(s)" if result.companions else ""
        print(
            f"Moved {len(result.done)} photo(s){with_them} to the trash (undo: dino-desktop "
            f"undo {result.journal_id})"
        )
        for note in result.notes:
            print(f"  {note}")
        for path, error in result.failed:
            print(f"  not moved: {path}: {error}")
    return EXIT_ERROR if result.failed else EXIT_OK


def _cmd_undo(lib: Library, args: argparse.Namespace) -> int:
    result = lib.undo(args.journal)
    if args.json:
        _print_json(
            {
                "undone": result.done,
                "companions": result.companions,
                "journal": result.journal_id,
                "failed": [{"path": p, "error": e} for p, e in result.failed],
            }
        )
    else:
        with_them = f" and {len(result.companions)} companion file(s)" if result.companions else ""
        print(f"Restored {len(result.done)} file(s){with_them}")
        for note in result.notes:
            print(f"  {note}")
        for path, error in result.failed:
            print(f"  not restored: {path}: {error}")
    return EXIT_ERROR if result.failed else EXIT_OK


def _cmd_prune_thumbnails(lib: Library, args: argparse.Namespace) -> int:
    from dino_desktop.core.progress import drive

    update, close = _progress_bar()
    try:
        result = drive(lib.prune_thumbnails(), update)
    finally:
        close()
    if args.json:
        _print_json(
            {"removed": result.removed, "freed_bytes": result.freed_bytes, "kept": result.kept}
        )
    else:
        print(
            f"Removed {result.removed:,} stale thumbnail(s), "
            f"{result.freed_bytes / 1e6:,.1f} MB; kept {result.kept:,}"
        )
    return EXIT_OK


COMMANDS: dict[str, Callable[[Library, argparse.Namespace], int]] = {
    "scan": _cmd_scan,
    "status": _cmd_status,
    "list": _cmd_list,
    "search": _cmd_search,
    "model": _cmd_model,
    "duplicates": cli_dupes.cmd_duplicates,
    "dismiss": cli_dupes.cmd_dismiss,
    "undismiss": cli_dupes.cmd_undismiss,
    "overlay": _cmd_overlay,
    "cluster": _cmd_cluster,
    "export-clusters": _cmd_export_clusters,
    "sort-by-example": _cmd_sort_by_example,
    "trash": _cmd_trash,
    "undo": _cmd_undo,
    "prune-thumbnails": _cmd_prune_thumbnails,
    "watch": cli_live.cmd_watch,
    "relocate": cli_live.cmd_relocate,
    "worker": cli_shared.cmd_worker,
    "roots": cli_shared.cmd_roots,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(console=True)  # the log file, and warnings on stderr
    if args.command is None:
        from dino_desktop.gui.app import run_gui

        return run_gui(args)

    # Imported here so `--help` and argument errors stay instant.
    from dino_desktop.core import weights as emb
    from dino_desktop.core.images import ImageError
    from dino_desktop.core.library import Library
    from dino_desktop.core.records import FileOpError, LibraryBusy, LibraryError, SchemaTooNew

    try:
        lib = Library(args.library, model=args.model, weights=args.weights, device=args.device)
    except ValueError as exc:  # unknown model name
        print(f"dino-desktop: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (LibraryError, SchemaTooNew, OSError) as exc:
        print(f"dino-desktop: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if lib.settings.problem:  # a damaged settings.toml: defaults are used, say so
        logging.getLogger(__name__).warning("%s", lib.settings.problem)
    try:
        with lib:
            return COMMANDS[args.command](lib, args)
    except emb.WeightsUnavailable as exc:
        print(f"dino-desktop: {exc}", file=sys.stderr)
        return EXIT_WEIGHTS
    except LibraryBusy as exc:  # another process scans or changes files: try later
        print(f"dino-desktop: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (LibraryError, ImageError, emb.WeightsError, SchemaTooNew, FileOpError) as exc:
        print(f"dino-desktop: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("dino-desktop: interrupted; the work done so far is saved", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"dino-desktop: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
