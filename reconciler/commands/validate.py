"""Check every file of a GitOps repository and report every problem, not only the first.

Reads factory.yaml, providers/, pools/ and builds/<team>/ from a directory, or from a Git
revision with --rev (no checkout). Each problem is one line: path:line: field: message.
Ends with a one-line summary of what the repository declares.

exit codes: 0 valid, 1 invalid, 2 could not run (no such path, not a Git repository).
"""

from __future__ import annotations

import argparse
import sys

from ._common import add_output, add_repo, load_snapshot, print_json, use_color

HELP = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo(parser, positional=True)
    add_output(parser)


def summary_line(snap) -> str:
    counts = snap.counts()
    declared = (f"{counts['providers']} providers, {counts['pools']} pools, {counts['builds']} builds"
                f"{'' if counts['factory'] else ', no factory.yaml'}")
    errors = len(snap.errors)
    if errors:
        files = len({p.path for p in snap.errors})
        return f"invalid: {errors} problem{'s' * (errors != 1)} in {files} file{'s' * (files != 1)}; valid objects: {declared}"
    return f"valid: {declared}" + (f" at {snap.revision[:12]}" if snap.revision else "")


def run(args: argparse.Namespace) -> int:
    snap = load_snapshot(args)
    if args.output == "json":
        print_json({
            "valid": snap.valid,
            "revision": snap.revision,
            "counts": snap.counts(),
            "problems": [p.as_dict() for p in snap.problems],
        })
        return 0 if snap.valid else 1
    red, dim, reset = ("\033[31m", "\033[2m", "\033[0m") if use_color() else ("", "", "")
    for problem in snap.problems:
        print(f"{red}{problem}{reset}" if problem.severity == "error" else str(problem))
    print(f"{dim if snap.valid else ''}{summary_line(snap)}{reset if snap.valid else ''}", file=sys.stdout)
    return 0 if snap.valid else 1
