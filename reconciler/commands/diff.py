"""Show what a reconcile pass would change, without changing anything.

Renders the repository (the files on disk, or --rev REV) and compares it with:
  - the live clusters (default): a server-side dry run of every object against what is
    live, so defaults and admission are the server's own; providers that cannot be
    reached are reported and the rest are still compared;
  - or, with --against REV, the same repository rendered at another revision (no cluster).
Prints a unified diff per object (coloured on a terminal) and a summary line such as
"3 to create, 1 to change, 2 to prune on 2 clusters". Secret values are always masked.

  image-factory diff --against origin/main          # what this branch changes, offline
  image-factory diff --provider prod-us-east-1      # one cluster, live

exit codes (as kubectl diff): 0 no changes, 1 changes, 2 error (including a provider that
could not be compared, since then "no changes" cannot be claimed).
"""

from __future__ import annotations

import argparse
import sys

from ._common import add_repo, load_snapshot, print_json, use_color

HELP = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo(parser)
    parser.add_argument("--provider", action="append", default=None, metavar="NAME",
                        help="only this provider (repeatable)")
    parser.add_argument("--against", metavar="REV", default=None,
                        help="compare with the repository rendered at REV instead of live clusters")
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text", help="output format")


def run(args: argparse.Namespace) -> int:
    from ..desired import compute_desired
    from ..planning import make_plan
    from ..reports import plan_text
    from ..source.loading import Loader

    loader = Loader()
    snap = load_snapshot(args, loader)
    for problem in snap.errors:
        print(f"warning: {problem}", file=sys.stderr)
    providers = set(args.provider) if args.provider else None
    if providers:
        unknown = providers - set(snap.providers)
        if unknown:
            from ..errors import UsageError
            raise UsageError(f"no provider named {', '.join(sorted(unknown))} (known: {', '.join(sorted(snap.providers))})")
    if args.against:
        desired = compute_desired(snap)
        other = compute_desired(loader.load_revision(args.path, args.against), revision=args.against)
        plan = make_plan(_only(desired.clusters, providers), _only(other.clusters, providers),
                         sources=desired.sources())
    else:
        plan = _live(snap, providers)
    if args.output == "json":
        print_json(plan.as_dict())
    else:
        sys.stdout.write(plan_text(plan, color=use_color()))
        for key, reason in plan.failed:
            print(f"cluster {key.cluster}: {key}: could not be compared: {reason}")
        if not snap.valid:
            print(f"note: {len(snap.errors)} problem(s) in the repository (above); their builds are not in this diff, "
                  "and nothing would be pruned", file=sys.stderr)
    if plan.unreachable or plan.failed:
        return 2
    return 1 if plan.changes else 0


def _only(clusters: dict, providers: set | None) -> dict:
    return clusters if providers is None else {k: v for k, v in clusters.items() if k in providers}


def _live(snap, providers):
    from ..cluster import ConnectionPool
    from ..clusters import check_health, keyring_from_env, links, live_plan
    from ..desired import compute_desired

    keyring = keyring_from_env()
    provider_links = links(snap, keyring, providers)
    pool = ConnectionPool()
    try:
        health, details = check_health(pool, provider_links)
        unreachable = {name: h.reason for name, h in health.items() if h.state == "Unhealthy"}
        desired = compute_desired(snap, health=health)
        return live_plan(pool, provider_links, desired.clusters, source_ok=snap.valid, unreachable=unreachable)
    finally:
        pool.close()
