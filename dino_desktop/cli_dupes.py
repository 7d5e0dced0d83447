"""The command line's duplicate commands: `duplicates`, `dismiss` and `undismiss` (see cli.py).

`duplicates` lists groups (keeper rules from `--prefer` or the settings; each
member says why it was or was not kept and what its relation was measured
from), filters them (`--label`, `--folder`, `--min-bytes`) and with `--remove`
trashes the copies of every listed group as one undoable operation (`--dry-run`
first says what would go). `dismiss` remembers "not duplicates" / "keep all";
`undismiss` takes such an answer back.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dino_desktop.core.duplicates import Group, Member
    from dino_desktop.core.library import Library

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    from dino_desktop.core.duplicates import RELATIONS
    from dino_desktop.core.keeper import DEFAULT_RULES, RULES

    p = sub.add_parser("duplicates", parents=[common], help="find duplicate groups")
    p.add_argument("--method", choices=["exact", "phash", "dino"], default="exact")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="phash: max Hamming distance (bits of 64); dino: min cosine (default: documented)",
    )
    p.add_argument(
        "--upper",
        type=float,
        default=None,
        help="dino: ignore pairs above this cosine (keep bursts apart from copies)",
    )
    p.add_argument(
        "--rotations",
        action="store_true",
        help="phash: also match the 8 rotations/mirrors (decodes the photos)",
    )
    p.add_argument(
        "--prefer",
        metavar="RULE,...",
        default=None,
        help=f"keeper rules in order, from {', '.join(RULES)} (reference always first; "
        f"default: the settings, else {','.join(DEFAULT_RULES)})",
    )
    p.add_argument(
        "--include-dismissed",
        action="store_true",
        help="also list groups and members answered 'not duplicates' or 'keep all'",
    )
    p.add_argument(
        "--label",
        metavar="LABEL,...",
        default=None,
        help=f"only groups with a member of these relations ({', '.join(RELATIONS)})",
    )
    p.add_argument("--folder", metavar="DIR", default=None, help="only groups with a member here")
    p.add_argument(
        "--min-bytes", type=int, default=0, metavar="N", help="only groups freeing at least N bytes"
    )
    p.add_argument(
        "--remove",
        action="store_true",
        help="trash the copies of every listed group (keepers stay; one undoable operation)",
    )
    p.add_argument("--dry-run", action="store_true", help="with --remove: only say what would go")
    p.add_argument(
        "--include-bursts",
        action="store_true",
        help="with --remove: also remove other exposures (burst, similar shot)",
    )
    p.add_argument(
        "--include-similar",
        action="store_true",
        help="with --remove: also remove look-alikes the evidence did not decide (similar)",
    )
    p.add_argument(
        "--no-merge",
        action="store_true",
        help="with --remove: do not carry the copies' metadata into the keepers' XMP sidecars",
    )

    p = sub.add_parser(
        "dismiss",
        parents=[common],
        help="remember that photos are not duplicates (they are not proposed again "
        "until one of them changes)",
    )
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument(
        "--keep-all", action="store_true", help="answer 'keep all' rather than 'not duplicates'"
    )
    p.add_argument(
        "--only",
        metavar="PATH",
        default=None,
        help="only this photo is not a duplicate of the others (one member out of a group)",
    )
    p.add_argument("--list", action="store_true", help="list the remembered answers")

    p = sub.add_parser("undismiss", parents=[common], help="take back a 'not duplicates' answer")
    p.add_argument("answer", nargs="?", type=int, metavar="ID", help="default: the latest")


def _member_json(m: Member) -> dict[str, Any]:
    return {
        "path": m.path,
        "score": round(m.score, 6),
        "relation": m.relation,
        "why": m.why,
        "evidence": m.evidence,
        "transform": m.transform,
        "crop_box": list(m.crop_box) if m.crop_box else None,
        "crop_in": m.crop_in,
        "reference": m.is_reference,
        "dismissed": m.dismissed,
        "companions": list(m.companions),
    }


def _group_json(g: Group) -> dict[str, Any]:
    return {
        "method": g.method,
        "keep": g.keeper.path,
        "why": g.why,
        "warning": g.warning,
        "dismissed": g.dismissed,
        "reclaimable": g.reclaimable,
        "members": [_member_json(m) for m in g.members],
    }


def _error(message: str) -> None:
    print(f"dino-desktop: error: {message}", file=sys.stderr)


def cmd_duplicates(lib: Library, args: argparse.Namespace) -> int:
    from dino_desktop.cli import _print_json, _progress_bar
    from dino_desktop.core.duplicates import RELATIONS, select_groups
    from dino_desktop.core.progress import drive
    from dino_desktop.core.records import LibraryError

    if not args.remove and (
        args.dry_run or args.include_bursts or args.include_similar or args.no_merge
    ):
        _error("--dry-run, --include-bursts, --include-similar and --no-merge go with --remove")
        return EXIT_USAGE
    labels = None
    if args.label is not None:
        labels = [w.strip() for w in args.label.split(",") if w.strip()]
        unknown = [w for w in labels if w not in RELATIONS]
        if unknown:
            _error(f"unknown label(s) {', '.join(unknown)}; choose from {', '.join(RELATIONS)}")
            return EXIT_USAGE
    try:
        rules = lib.keeper_rules(args.prefer) if args.prefer is not None else None
        job = lib.duplicates(
            args.method,
            args.threshold,
            upper=args.upper,
            rotations=args.rotations,
            rules=rules,
            include_dismissed=args.include_dismissed and not args.remove,
        )
    except LibraryError as exc:  # an option that does not fit the method, a bad rule
        _error(str(exc))
        return EXIT_USAGE
    update, close = _progress_bar()
    try:
        groups = drive(job, update)
        groups = select_groups(
            groups,
            labels=labels,
            folder=os.path.abspath(args.folder) if args.folder else None,
            min_bytes=args.min_bytes,
        )
        if args.remove:
            return _remove(lib, args, groups, update)
    finally:
        close()
    if args.json:
        _print_json([_group_json(g) for g in groups])
        return EXIT_OK
    total = sum(g.reclaimable for g in groups)
    print(f"{len(groups)} groups; {total / 1e6:.1f} MB could be freed")
    for g in groups:
        mark = " [dismissed]" if g.dismissed else ""
        print(f"keep   {g.keeper.path}{mark}")
        if g.why:
            print(f"         {g.why}")
        if g.warning:
            print(f"         warning: {g.warning}")
        for m in g.others:
            tags = (" [reference]" if m.is_reference else "") + (
                " [dismissed]" if m.dismissed else ""
            )
            print(f"  {m.relation:12} {m.score:.3f}  {m.path}{tags}")
            if m.evidence:
                print(f"               {m.evidence}")
    return EXIT_OK


def _remove(lib: Library, args: argparse.Namespace, groups: list[Group], update: Any) -> int:
    from dino_desktop.cli import _print_json
    from dino_desktop.core.progress import drive

    plan = drive(
        lib.plan_removal(
            groups, include_exposures=args.include_bursts, include_similar=args.include_similar
        ),
        update,
    )
    if args.dry_run:
        merges = [] if args.no_merge else drive(lib.metadata_merges(plan), update)
        by_keeper = {m.keeper: m for m in merges}
        if args.json:
            _print_json(
                {
                    "dry_run": True,
                    "groups": plan.groups,
                    "files": plan.files,
                    "bytes": plan.bytes,
                    "folders": list(plan.folders),
                    "left_exposures": plan.left_exposures,
                    "left_similar": plan.left_similar,
                    "warned": plan.warned,
                    "plan": [
                        {
                            "keep": r.keeper.path,
                            "remove": [m.path for m in r.copies],
                            "merge": by_keeper[r.keeper.path].lines()
                            if r.keeper.path in by_keeper
                            else [],
                        }
                        for r in plan.removals
                    ],
                }
            )
        else:
            print(f"Dry run: {plan.summary()}")
            for r in plan.removals:
                print(f"keep   {r.keeper.path}")
                for m in r.copies:
                    print(f"  trash {m.relation:12} {m.path}")
                if r.keeper.path in by_keeper:
                    for line in by_keeper[r.keeper.path].lines():
                        print(f"  carry {line}")
        return EXIT_OK
    if not plan.paths:
        if args.json:
            _print_json({"trashed": [], "companions": [], "journal": None, "failed": []})
        else:
            print("Nothing to remove.")
        return EXIT_OK
    result = drive(lib.remove_duplicates(plan, carry_metadata=not args.no_merge), update)
    merged = _merged_sidecars(lib, result.journal_id)
    if args.json:
        _print_json(
            {
                "trashed": result.done,
                "companions": result.companions,
                "merged": merged,
                "journal": result.journal_id,
                "failed": [{"path": p, "error": e} for p, e in result.failed],
            }
        )
    else:
        print(
            f"Moved {len(result.done)} copies to the trash; metadata carried into "
            f"{len(merged)} sidecar(s) (undo: dino-desktop undo {result.journal_id})"
        )
        for note in result.notes:
            print(f"  {note}")
        for path, error in result.failed:
            print(f"  not moved: {path}: {error}")
    return EXIT_ERROR if result.failed else EXIT_OK


def _merged_sidecars(lib: Library, journal_id: int | None) -> list[str]:
    """The sidecars the removal wrote (from its journal entry)."""
    if journal_id is None:
        return []
    entry = lib.journal_entry(journal_id)
    return [r["sidecar"] for r in entry.get("merges", []) if r.get("status") == "done"]


def cmd_dismiss(lib: Library, args: argparse.Namespace) -> int:
    from dino_desktop.cli import _print_json
    from dino_desktop.core.records import LibraryError

    if args.list:
        answers = lib.dismissals()
        if args.json:
            _print_json(
                [
                    {
                        "id": a.id,
                        "kind": a.kind,
                        "paths": list(a.paths),
                        "only": a.subject,
                        "valid": a.valid,
                    }
                    for a in answers
                ]
            )
        else:
            for a in answers:
                state = "" if a.valid else " (a file changed since: no longer applies)"
                only = f" only {a.subject}" if a.subject else ""
                print(f"#{a.id} {a.kind}{only}{state}")
                for p in a.paths:
                    print(f"    {p}")
        return EXIT_OK
    paths = [os.path.abspath(p) for p in args.paths]
    if args.only:
        only = os.path.abspath(args.only)
        if only not in paths:
            paths.append(only)
    if len(paths) < 2:
        _error("name at least two photos (or --list)")
        return EXIT_USAGE
    ids = {p: found[0] for p in paths if (found := lib.find_image(p)) is not None}
    missing = [p for p in paths if p not in ids]
    if missing:
        _error(f"not in the library: {', '.join(missing)}")
        return EXIT_ERROR
    try:
        answer = lib.dismiss(
            [ids[p] for p in paths],
            keep_all=args.keep_all,
            member=ids[os.path.abspath(args.only)] if args.only else None,
        )
    except LibraryError as exc:
        _error(str(exc))
        return EXIT_USAGE
    if args.json:
        _print_json(
            {
                "dismissed": answer,
                "kind": "keep-all" if args.keep_all else "not-duplicates",
                "paths": paths,
            }
        )
    else:
        print(f"Remembered (#{answer}): not proposed again until one of them changes")
    return EXIT_OK


def cmd_undismiss(lib: Library, args: argparse.Namespace) -> int:
    from dino_desktop.cli import _print_json

    answer = lib.undismiss(args.answer)
    if args.json:
        _print_json({"undismissed": answer})
    else:
        print(f"Answer #{answer} taken back: those photos are proposed again")
    return EXIT_OK
